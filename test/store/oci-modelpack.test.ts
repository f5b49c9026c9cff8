/**
 * The acquired model pushed as a ModelPack artifact to a real registry and read back as another tool would: by digest,
 * with the ModelPack artifact type, config and layer media types, and each file's path in its layer annotation.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELPACK } from '../../contract/delivery';
import type { ArtifactManifest } from '../../contract/types';
import { RegistryClient, RegistryError } from '../../activities/registry';
import { FilesystemStore } from '../../activities/store/filesystem';
import { manifestDigest } from '../../activities/store/manifest';
import { modelLayerMediaType, modelTag, publishModel, pushModelArtifact } from '../../activities/store/modelpack';
import { OciStore } from '../../activities/store/oci-store';
import { startTestRegistry, type TestRegistry } from './oci-registry';

const FILES: Record<string, string> = {
  'model.safetensors': 'weights weights weights',
  'config.json': '{"hidden_size": 4}',
  'tokenizer.json': '{"vocab": {}}',
  'README.md': '# tiny model',
  'src/infer.py': 'print("hi")',
  'notes/blank.txt': '',
};

describe('ModelPack artifact', () => {
  let registry: TestRegistry;
  let work: string;
  let store: OciStore;
  let manifest: ArtifactManifest;

  beforeAll(async () => {
    registry = await startTestRegistry();
    work = await mkdtemp(join(tmpdir(), 'mrel-modelpack-'));
    store = new OciStore(
      { registry: registry.registry, repository: 'modelrelease/store' },
      { cacheDir: join(work, 'cache') },
    );
    const files = [];
    for (const [path, content] of Object.entries(FILES)) {
      const blob = await store.putBytes(content, { path });
      files.push({ path, size: blob.size, sha256: blob.sha256 });
    }
    manifest = {
      model: 'Tiny Model',
      version: '1.0.0+build.7',
      source: 'file:///srv/models/tiny',
      resolvedRevision: 'file:///srv/models/tiny',
      files,
      totalSize: files.reduce((n, f) => n + f.size, 0),
      manifestDigest: manifestDigest(files),
    };
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes the model by digest with ModelPack media types, config and file path annotations', async () => {
    const artifact = await pushModelArtifact(store, manifest);
    expect(artifact.artifactType).toBe(MODELPACK.artifactType);
    expect(artifact.reference).toBe(`${registry.registry}/modelrelease/store@${artifact.digest}`);

    // Read back as another tool would: a fresh client, by digest.
    const reader = new RegistryClient({ registry: registry.registry, repository: 'modelrelease/store' });
    const fetched = await reader.getManifest(artifact.digest);
    const oci = fetched.json as {
      mediaType: string;
      artifactType: string;
      config: { mediaType: string; digest: string };
      layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[];
    };
    expect(oci.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(oci.artifactType).toBe(MODELPACK.artifactType);
    expect(oci.config.mediaType).toBe(MODELPACK.config);
    const byPath = Object.fromEntries(oci.layers.map((l) => [l.annotations[MODELPACK.filepathAnnotation], l]));
    expect(Object.keys(byPath).sort()).toEqual(Object.keys(FILES).sort());
    expect(byPath['model.safetensors']?.mediaType).toBe(MODELPACK.weight);
    expect(byPath['config.json']?.mediaType).toBe(MODELPACK.weightConfig);
    expect(byPath['tokenizer.json']?.mediaType).toBe(MODELPACK.weightConfig);
    expect(byPath['README.md']?.mediaType).toBe(MODELPACK.doc);
    expect(byPath['src/infer.py']?.mediaType).toBe(MODELPACK.code);
    for (const file of manifest.files) {
      expect(byPath[file.path]).toMatchObject({ digest: `sha256:${file.sha256}`, size: file.size });
      // Raw layers are the files themselves: each layer is the blob acquire stored.
      expect(await reader.headBlob(file.sha256)).toBe(file.size);
    }

    const configBlob = await store.read(oci.config.digest.slice('sha256:'.length), 1 << 20);
    const config = JSON.parse(configBlob.toString('utf8')) as {
      descriptor: Record<string, unknown>;
      config: Record<string, unknown>;
      modelfs: { type: string; diffIds: string[] };
    };
    expect(config.descriptor).toEqual({ name: 'Tiny Model', version: '1.0.0+build.7' });
    expect(config.config).toEqual({ format: 'safetensors' });
    expect(config.modelfs.type).toBe('layers');
    expect(config.modelfs.diffIds).toEqual(oci.layers.map((l) => l.digest));
    // No host path of a local source reaches the artifact.
    expect(fetched.bytes.toString('utf8')).not.toContain('/srv/models');
    expect(configBlob.toString('utf8')).not.toContain('/srv/models');

    // Tagged for people, with what a tag may hold.
    const tagged = await reader.headManifest(modelTag(manifest.model, manifest.version));
    expect(modelTag(manifest.model, manifest.version)).toBe('Tiny-Model-1.0.0-build.7');
    expect(tagged?.digest).toBe(artifact.digest);
  });

  it('gives the same digest when the same model is pushed again', async () => {
    const first = await pushModelArtifact(store, manifest);
    const again = await pushModelArtifact(store, { ...manifest, files: [...manifest.files].reverse() });
    expect(again).toEqual(first);
  });

  it('refuses a model whose files are not in the store, saying to acquire again', async () => {
    const missing = createHash('sha256').update('never acquired').digest('hex');
    const files = [...manifest.files, { path: 'extra.bin', size: 14, sha256: missing }];
    const error = await pushModelArtifact(store, { ...manifest, files, manifestDigest: manifestDigest(files) }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).code).toBe('RegistryNotFound');
    expect((error as Error).message).toMatch(/acquire the release again/);
  });

  it('publishes only through a registry store: the filesystem store has no artifact', async () => {
    expect(await publishModel(new FilesystemStore(join(work, 'fs-store')), manifest)).toBeUndefined();
    expect((await publishModel(store, manifest))?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('classifies files by kind and marks guesses as untested', () => {
    expect(modelLayerMediaType('onnx/model.onnx')).toEqual({ mediaType: MODELPACK.weight, guessed: false });
    expect(modelLayerMediaType('group1-shard1of2.bin').mediaType).toBe(MODELPACK.weight);
    expect(modelLayerMediaType('model.json').mediaType).toBe(MODELPACK.weightConfig);
    expect(modelLayerMediaType('LICENSE').mediaType).toBe(MODELPACK.doc);
    expect(modelLayerMediaType('eval/data.csv').mediaType).toBe(MODELPACK.dataset);
    expect(modelLayerMediaType('mystery.xyz')).toEqual({ mediaType: MODELPACK.weight, guessed: true });
    expect(modelTag('.hidden/model', 'v1:2')).toBe('hidden-model-v1-2');
  });
});
