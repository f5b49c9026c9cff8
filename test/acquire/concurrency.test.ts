/**
 * Acquire stores several files at once: the manifest is the same as one at a time would give, and the first failure
 * stops the rest without leaving half-written blobs behind.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect } from 'vitest';
import { acquireArtifacts, DigestMismatchError } from '../../activities/acquire';
import { ACQUIRE_CONCURRENCY } from '../../activities/acquire/acquire';
import { manifestDigest } from '../../activities/store';
import { sha256, test, writeTree } from './fixtures';

const FILES = 40;
const tree = Object.fromEntries(
  Array.from({ length: FILES }, (_, i) => [
    `shards/part-${String(i).padStart(3, '0')}.bin`,
    Buffer.alloc(50_000 + i, i),
  ]),
);

describe('acquire stores files concurrently', () => {
  test('every file, in path order, with the digest a sequential store gives', async ({ tmp, storeRoot }) => {
    expect(ACQUIRE_CONCURRENCY).toBeGreaterThan(1);
    const root = join(tmp, 'model');
    await writeTree(root, tree);
    const manifest = await acquireArtifacts(
      { name: 'sharded', version: '1.0.0', source: pathToFileURL(root).href },
      { storeRoot },
    );
    expect(manifest.files.map((f) => f.path)).toEqual(Object.keys(tree).sort());
    for (const file of manifest.files) expect(file.sha256).toBe(sha256(tree[file.path] as Buffer));
    expect(manifest.manifestDigest).toBe(
      manifestDigest(
        Object.entries(tree).map(([path, bytes]) => ({ path, size: bytes.length, sha256: sha256(bytes) })),
      ),
    );
  });

  test('the first failure stops the others and no temp file is left', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, tree);
    const wrong = 'shards/part-007.bin';
    const error = await acquireArtifacts(
      {
        name: 'sharded',
        version: '1.0.0',
        source: pathToFileURL(root).href,
        digests: { [wrong]: '0'.repeat(64) },
      },
      { storeRoot },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect((error as Error).message).toContain(wrong);
    const leftovers = await readdir(join(storeRoot, 'tmp')).catch(() => []);
    expect(leftovers).toEqual([]);
  });
});
