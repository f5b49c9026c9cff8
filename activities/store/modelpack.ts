/**
 * The acquired model as a CNCF ModelPack artifact (github.com/modelpack/model-spec): an OCI image manifest with
 * artifactType `application/vnd.cncf.model.manifest.v1+json`, a model config blob (descriptor, config, modelfs), and
 * one raw layer per file whose digest is the file's sha256, so the layers are the very blobs acquire stored and
 * nothing is uploaded twice. Each layer carries its path in `org.cncf.model.filepath`. The manifest is built from the
 * sorted file list with no timestamps, so the same model always gives the same digest; it is tagged
 * `<model>-<version>` for people and handed on by digest.
 */
import { posix } from 'node:path';
import type { ArtifactManifest } from '../../contract/types';
import { MODELPACK, type ModelArtifact } from '../../contract/delivery';
import { canonicalJson } from '../common/canonical-json';
import { OCI_MANIFEST, RegistryError } from '../registry';
import type { ArtifactStore } from './artifact-store';
import { sortFiles } from './manifest';
import { OciStore } from './oci-store';

/** Annotation naming the release's manifest digest (path + sha256 of every file), linking artifact and evidence. */
export const MANIFEST_DIGEST_ANNOTATION = 'io.modelrelease.manifest-digest';
const UNTESTED_ANNOTATION = 'org.cncf.model.file.mediatype.untested';

export interface PushModelOptions {
  /** The human tag (default `<model>-<version>`, sanitized). */
  tag?: string;
}

/** The ModelPack layer media type for a file, and whether the kind was only guessed. */
export function modelLayerMediaType(path: string): { mediaType: string; guessed: boolean } {
  const name = posix.basename(path).toLowerCase();
  const ext = posix.extname(name);
  if (WEIGHT_CONFIG_NAMES.has(name) || name.endsWith('.index.json') || TOKENIZER.test(name)) {
    return { mediaType: MODELPACK.weightConfig, guessed: false };
  }
  if (WEIGHT_EXTENSIONS.has(ext) || /^group\d+-shard\d+of\d+(\.bin)?$/.test(name)) {
    return { mediaType: MODELPACK.weight, guessed: false };
  }
  if (DOC_NAMES.test(name) || DOC_EXTENSIONS.has(ext)) return { mediaType: MODELPACK.doc, guessed: false };
  if (CODE_EXTENSIONS.has(ext)) return { mediaType: MODELPACK.code, guessed: false };
  if (DATASET_EXTENSIONS.has(ext)) return { mediaType: MODELPACK.dataset, guessed: false };
  if (ext === '.json' || ext === '.yaml' || ext === '.yml' || ext === '.txt') {
    return { mediaType: MODELPACK.weightConfig, guessed: true };
  }
  return { mediaType: MODELPACK.weight, guessed: true };
}

const WEIGHT_EXTENSIONS = new Set([
  '.safetensors',
  '.bin',
  '.pt',
  '.pth',
  '.ckpt',
  '.onnx',
  '.gguf',
  '.ggml',
  '.h5',
  '.hdf5',
  '.keras',
  '.pb',
  '.tflite',
  '.npy',
  '.npz',
  '.msgpack',
  '.pkl',
  '.joblib',
  '.params',
  '.mlmodel',
]);
const WEIGHT_CONFIG_NAMES = new Set([
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'model.json',
  'merges.txt',
]);
const TOKENIZER = /^(tokenizer.*|vocab\..*|spiece\.model|sentencepiece\..*)$/;
const DOC_NAMES = /^(readme|license|licence|notice|copying|model_card|modelcard)(\..*)?$/;
const DOC_EXTENSIONS = new Set(['.md', '.rst', '.pdf', '.html']);
const CODE_EXTENSIONS = new Set(['.py', '.ipynb', '.sh', '.js', '.ts', '.c', '.cc', '.cpp', '.h', '.go', '.rs']);
const DATASET_EXTENSIONS = new Set(['.csv', '.tsv', '.parquet', '.jsonl', '.arrow']);

const FORMATS: Record<string, string> = {
  '.safetensors': 'safetensors',
  '.onnx': 'onnx',
  '.gguf': 'gguf',
  '.pt': 'pt',
  '.pth': 'pt',
  '.h5': 'keras',
  '.keras': 'keras',
  '.tflite': 'tflite',
};

/** An OCI tag for people: `<model>-<version>` with anything a tag may not hold replaced by `-`. */
export function modelTag(model: string, version: string): string {
  const tag = `${model}-${version}`.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[.-]+/, '');
  return (tag === '' ? 'model' : tag).slice(0, 128);
}

/**
 * The ModelPack model config (config.md): descriptor, config and modelfs, with only what is known for certain. No
 * creation time (it would change the digest on every push) and no source for local sources (a host path).
 */
export function modelPackConfig(manifest: ArtifactManifest): Record<string, unknown> {
  const files = sortFiles(manifest.files);
  const weightFormats = new Set(
    files
      .filter((f) => modelLayerMediaType(f.path).mediaType === MODELPACK.weight)
      .map((f) => FORMATS[posix.extname(f.path).toLowerCase()]),
  );
  const [format] = weightFormats;
  const descriptor: Record<string, unknown> = { name: manifest.model, version: manifest.version };
  if (manifest.source.startsWith('hf://')) {
    descriptor.sourceURL = manifest.source;
    descriptor.revision = manifest.resolvedRevision;
  }
  return {
    descriptor,
    config: weightFormats.size === 1 && format ? { format } : {},
    modelfs: { type: 'layers', diffIds: files.map((f) => `sha256:${f.sha256}`) },
  };
}

/**
 * Pushes the model as a ModelPack artifact to the store's repository and returns it pinned by digest. Every file must
 * already be a blob of the store (acquire put it there); the registry refuses a manifest naming a missing blob.
 * Idempotent: the same manifest gives the same bytes, so a retry re-puts an identical manifest.
 */
export async function pushModelArtifact(
  store: OciStore,
  manifest: ArtifactManifest,
  options: PushModelOptions = {},
): Promise<ModelArtifact> {
  if (manifest.files.length === 0) {
    throw new RegistryError('RegistryRejected', `model ${manifest.model} ${manifest.version} has no files to push`);
  }
  const config = Buffer.from(canonicalJson(modelPackConfig(manifest)));
  const configBlob = await store.putBytes(config, { path: `ModelPack config of ${manifest.model}` });
  const layers = sortFiles(manifest.files).map((file) => {
    const { mediaType, guessed } = modelLayerMediaType(file.path);
    return {
      mediaType,
      digest: `sha256:${file.sha256}`,
      size: file.size,
      annotations: {
        [MODELPACK.filepathAnnotation]: file.path,
        // What `oras pull` (the init-container mount) names each file by: without it the layer is not written out.
        'org.opencontainers.image.title': file.path,
        ...(guessed ? { [UNTESTED_ANNOTATION]: 'true' } : {}),
      },
    };
  });
  const body = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: MODELPACK.artifactType,
    config: { mediaType: MODELPACK.config, digest: `sha256:${configBlob.sha256}`, size: configBlob.size },
    layers,
    annotations: {
      'org.opencontainers.image.title': manifest.model,
      'org.opencontainers.image.version': manifest.version,
      [MANIFEST_DIGEST_ANNOTATION]: manifest.manifestDigest,
    },
  };
  const bytes = Buffer.from(canonicalJson(body));
  const tag = options.tag ?? modelTag(manifest.model, manifest.version);
  let digest: string;
  try {
    digest = await store.client.putManifest(tag, bytes, OCI_MANIFEST);
  } catch (err) {
    const codes = (err as RegistryError).details?.codes;
    if (Array.isArray(codes) && codes.includes('MANIFEST_BLOB_UNKNOWN')) {
      throw new RegistryError(
        'RegistryNotFound',
        `${store.description} lacks a file of model ${manifest.model} ${manifest.version}: acquire the release again`,
        { cause: err },
      );
    }
    throw err;
  }
  const { registry, repository } = store.location;
  return { reference: `${registry}/${repository}@${digest}`, digest, artifactType: MODELPACK.artifactType };
}

/**
 * The model as an OCI artifact when the worker's store is a registry, else undefined (the filesystem store has no
 * registry to push to): what acquire records in `ManifestRef.artifact`.
 */
export async function publishModel(
  store: ArtifactStore,
  manifest: ArtifactManifest,
): Promise<ModelArtifact | undefined> {
  return store instanceof OciStore ? pushModelArtifact(store, manifest) : undefined;
}
