/**
 * The filesystem store takes a local file through putFile (a kernel copy, hashed as it is written) as well as a
 * stream through put: both must leave the same private blob, named by the digest of exactly the bytes stored, and a
 * refused or cancelled copy must leave nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DigestMismatchError } from '../../activities/acquire/errors';
import { FILE_CHUNK_BYTES, FilesystemStore, storePath } from '../../activities/store/filesystem';
import type { PutOptions, StoredBlob } from '../../activities/store/artifact-store';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('FilesystemStore.putFile', () => {
  let tmp: string;
  let storeRoot: string;
  let store: FilesystemStore;

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'fs-store-test-'));
    storeRoot = join(tmp, 'store');
    store = new FilesystemStore(storeRoot);
  });
  afterEach(() => rm(tmp, { recursive: true, force: true }));

  async function putFile(content: Buffer, options: Partial<PutOptions> = {}): Promise<StoredBlob> {
    const path = join(tmp, 'source.bin');
    await writeFile(path, content);
    // A source anyone may read: the blob must be private all the same.
    await chmod(path, 0o755);
    const handle = await open(path);
    try {
      return await store.putFile(handle, { path: 'model.bin', ...options });
    } finally {
      await handle.close();
    }
  }

  const leftovers = () => readdir(join(storeRoot, 'tmp')).catch(() => []);
  const blobs = () => readdir(join(storeRoot, 'sha256'), { recursive: true }).catch(() => []);

  test('a file of several chunks is stored as the same private blob a stream gives', async () => {
    // Two and a half chunks and an odd tail, each block different, so that a reordered or repeated chunk shows.
    const content = randomBytes(FILE_CHUNK_BYTES * 2 + FILE_CHUNK_BYTES / 2 + 13);
    const progress: number[] = [];

    const blob = await putFile(content, { onProgress: (bytes) => progress.push(bytes) });

    expect(blob).toEqual({ sha256: sha256(content), size: content.length });
    const stored = storePath(storeRoot, blob.sha256);
    expect((await readFile(stored)).equals(content)).toBe(true);
    expect((await stat(stored)).mode & 0o777).toBe(0o600);
    expect((await stat(join(storeRoot, 'sha256', blob.sha256.slice(0, 2)))).mode & 0o777).toBe(0o700);
    expect((await stat(join(storeRoot, 'tmp'))).mode & 0o777).toBe(0o700);
    // Progress keeps a pace of a MiB or less whatever the read size, rises, and ends at the size.
    expect(progress.length).toBeGreaterThanOrEqual(content.length >> 20);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(content.length);
    expect(await leftovers()).toEqual([]);

    const viaStream = await new FilesystemStore(join(tmp, 'other')).put(Readable.from([content]), { path: 'x' });
    expect(viaStream).toEqual(blob);
  });

  test('empty and tiny files are stored too', async () => {
    for (const content of [Buffer.alloc(0), Buffer.from('x'), randomBytes(100_000)]) {
      const blob = await putFile(content);
      expect(blob).toEqual({ sha256: sha256(content), size: content.length });
      expect((await readFile(storePath(storeRoot, blob.sha256))).equals(content)).toBe(true);
    }
  });

  test('a blob already held is kept, and the fresh copy dropped', async () => {
    const content = randomBytes(3 << 20);
    const first = await putFile(content);
    const before = await stat(storePath(storeRoot, first.sha256));
    expect(await putFile(content)).toEqual(first);
    expect((await stat(storePath(storeRoot, first.sha256))).ino).toBe(before.ino);
    expect(await leftovers()).toEqual([]);
  });

  test('content with another digest than the expected one is refused and never enters the store', async () => {
    const content = randomBytes(FILE_CHUNK_BYTES + 5);
    const expected = '0'.repeat(64);
    const error = await putFile(content, { expectedSha256: expected }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error).toMatchObject({ path: 'model.bin', expected, actual: sha256(content) });
    expect(await blobs()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });

  test('cancelling mid-copy rejects with the reason and leaves neither a blob nor a temp file', async () => {
    const content = randomBytes(FILE_CHUNK_BYTES * 3);
    const controller = new AbortController();
    const reason = new Error('release cancelled');
    let reports = 0;
    const error = await putFile(content, {
      signal: controller.signal,
      onProgress: () => {
        if (++reports === 1) controller.abort(reason);
      },
    }).catch((e: unknown) => e);
    expect(error).toBe(reason);
    // The copy stopped at the first chunk boundary after the abort, not at the end of the file.
    expect(reports).toBeLessThan(content.length >> 20);
    expect(await blobs()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });
});
