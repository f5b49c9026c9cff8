/**
 * Manifests by digest: acquire hands on a small reference whatever the model's file count, and every later stage
 * loads the full list from the store, checked against the digest the reference names.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAcquireActivities } from '../../activities/acquire';
import { canonicalJson } from '../../activities/common/canonical-json';
import { FilesystemStore, loadManifest } from '../../activities/store';
import type { ArtifactManifest, ManifestRef } from '../../contract/types';

const FILE_COUNT = 20_000;
const SHARDS = 100;

describe('a model of 20,000 small files', () => {
  let tmp: string;
  let store: FilesystemStore;
  let ref: ManifestRef;
  let source: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'manifest-test-'));
    const root = join(tmp, 'model');
    for (let shard = 0; shard < SHARDS; shard++) {
      const dir = join(root, `shard-${String(shard).padStart(3, '0')}`);
      await mkdir(dir, { recursive: true });
      const writes: Promise<void>[] = [];
      for (let i = shard; i < FILE_COUNT; i += SHARDS)
        writes.push(writeFile(join(dir, `part-${i}.txt`), `part ${i}\n`));
      await Promise.all(writes);
    }
    store = new FilesystemStore(join(tmp, 'store'));
    source = pathToFileURL(root).href;
    const { acquireModel } = createAcquireActivities({ store });
    ref = await acquireModel({ model: { name: 'many-files', version: '1.0.0', source } });
  }, 600_000);

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('acquire returns a reference of under 1 KB of JSON', () => {
    expect(Buffer.byteLength(JSON.stringify(ref))).toBeLessThan(1024);
    expect(ref).toMatchObject({ model: 'many-files', version: '1.0.0', source, fileCount: FILE_COUNT });
    expect(ref).not.toHaveProperty('files');
  });

  test('loadManifest returns every file, matching the reference', async () => {
    const manifest = await loadManifest(store, ref);
    expect(manifest.files).toHaveLength(FILE_COUNT);
    expect(manifest.manifestDigest).toBe(ref.manifestDigest);
    expect(manifest.totalSize).toBe(ref.totalSize);
    expect(manifest.files.reduce((n, f) => n + f.size, 0)).toBe(ref.totalSize);
    expect(new Set(manifest.files.map((f) => f.path)).size).toBe(FILE_COUNT);
    expect(manifest.files).toContainEqual(expect.objectContaining({ path: 'shard-007/part-19907.txt', size: 11 }));
  });

  test('a manifest blob whose files do not match the digest is refused', async () => {
    const manifest = await loadManifest(store, ref);
    const [first, ...rest] = manifest.files;
    // Another list under the same manifest digest: one file's content swapped, as a tampered store would hold.
    const tampered: ArtifactManifest = { ...manifest, files: [{ ...first!, sha256: 'f'.repeat(64) }, ...rest] };
    const blob = await store.putBytes(canonicalJson(tampered));

    await expect(loadManifest(store, { ...ref, blob: blob.sha256 })).rejects.toThrow(
      /does not match manifest digest .*acquire the release again/,
    );
    // A list with a file dropped is refused the same way.
    const shorter = await store.putBytes(canonicalJson({ ...manifest, files: rest }));
    await expect(loadManifest(store, { ...ref, blob: shorter.sha256 })).rejects.toThrow(/does not match/);
  });
});
