/**
 * The registry store against a real registry (Debian's docker-registry on 127.0.0.1): blobs go in by digest and come
 * back verified, a wrong digest never becomes a blob, pushes are idempotent, and two workers with nothing in common
 * but the registry read each other's blobs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestMismatchError } from '../../activities/acquire/errors';
import { BlobNotFoundError, BlobTooLargeError } from '../../activities/store/artifact-store';
import { OciStore } from '../../activities/store/oci-store';
import { startTestRegistry, type TestRegistry } from './oci-registry';

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** A stream of `buffer` in uneven pieces, as a network or file source delivers it. */
function pieces(buffer: Buffer, size = 100_003): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < buffer.length; at += size) parts.push(buffer.subarray(at, at + size));
  return Readable.from(parts);
}

describe('registry artifact store', () => {
  let registry: TestRegistry;
  let work: string;
  const stores: OciStore[] = [];
  const store = (name: string, chunkBytes = 256 * 1024) => {
    const s = new OciStore(
      { registry: registry.registry, repository: 'modelrelease/store' },
      { cacheDir: join(work, name, 'cache'), chunkBytes },
    );
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    registry = await startTestRegistry();
    work = await mkdtemp(join(tmpdir(), 'mrel-oci-store-'));
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('stores a small blob and gives it back through size, open, read and localFile', async () => {
    const s = store('small');
    const bytes = Buffer.from('{"weights": [1, 2, 3]}\n');
    const progress: number[] = [];
    const blob = await s.put(Readable.from([bytes]), { path: 'config.json', onProgress: (n) => progress.push(n) });
    expect(blob).toEqual({ sha256: sha256(bytes), size: bytes.length });
    expect(progress.at(-1)).toBe(bytes.length);
    expect(await s.size(blob.sha256)).toBe(bytes.length);
    expect(await text(await s.open(blob.sha256))).toBe(bytes.toString());
    expect(await s.read(blob.sha256, 1024)).toEqual(bytes);
    const file = await s.localFile(blob.sha256);
    expect(await readFile(file)).toEqual(bytes);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    expect(s.description).toBe(`registry store ${registry.registry}/modelrelease/store`);
  });

  it('streams a blob larger than one upload chunk up in PATCH chunks and reads it back intact', async () => {
    const s = store('large');
    const bytes = randomBytes(1_300_000 + 17);
    const blob = await s.put(pieces(bytes), { path: 'weights.bin', expectedSha256: sha256(bytes) });
    expect(blob).toEqual({ sha256: sha256(bytes), size: bytes.length });
    // A different worker (its own empty cache) reads it from the registry.
    const other = store('large-reader');
    expect(await other.size(blob.sha256)).toBe(bytes.length);
    expect(sha256(await readFile(await other.localFile(blob.sha256)))).toBe(blob.sha256);
    const chunks: Buffer[] = [];
    for await (const chunk of await other.open(blob.sha256)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('refuses content whose digest is not the expected one and commits nothing of it', async () => {
    const s = store('mismatch');
    const small = Buffer.from('not the weights you pinned');
    const large = randomBytes(700_000);
    const pinned = sha256('the weights you pinned');
    for (const bytes of [small, large]) {
      const error = await s.put(pieces(bytes), { path: 'weights.bin', expectedSha256: pinned }).catch((e) => e);
      expect(error).toBeInstanceOf(DigestMismatchError);
      expect((error as Error).message).toContain('weights.bin');
      expect(await s.size(sha256(bytes))).toBeUndefined();
      expect(await s.size(pinned)).toBeUndefined();
    }
    await expect(s.putBytes(small, { path: 'evidence.json', expectedSha256: pinned })).rejects.toBeInstanceOf(
      DigestMismatchError,
    );
    expect(await s.size(sha256(small))).toBeUndefined();
  });

  it('is idempotent: a blob already held is kept, and a pinned one is not even read again', async () => {
    const s = store('idempotent');
    const bytes = randomBytes(600_000);
    const first = await s.put(pieces(bytes), { path: 'a.bin' });
    const second = await s.put(pieces(bytes), { path: 'a.bin' });
    expect(second).toEqual(first);
    let pulled = 0;
    const counting = new Readable({
      read() {
        pulled++;
        this.push(null);
      },
    });
    const third = await s.put(counting, { path: 'a.bin', expectedSha256: first.sha256 });
    expect(third).toEqual(first);
    expect(pulled).toBe(0);
    const bytesBlob = await s.putBytes('{"same": true}');
    expect(await s.putBytes('{"same": true}')).toEqual(bytesBlob);
  });

  it('stores an empty blob', async () => {
    const s = store('empty');
    const blob = await s.put(Readable.from([]), { path: 'empty.txt' });
    expect(blob).toEqual({ sha256: sha256(''), size: 0 });
    expect(await s.read(blob.sha256, 10)).toEqual(Buffer.alloc(0));
  });

  it('bounds read() and reports absent blobs as BlobNotFoundError', async () => {
    const s = store('bounds');
    const blob = await s.putBytes(Buffer.alloc(5000, 1));
    await expect(s.read(blob.sha256, 4999)).rejects.toBeInstanceOf(BlobTooLargeError);
    const absent = sha256('never stored');
    expect(await s.size(absent)).toBeUndefined();
    await expect(s.open(absent)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(s.read(absent, 10)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(s.localFile(absent)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(s.size('../../etc/passwd')).rejects.toThrow(/not a lower-case hex sha256/);
  });

  it("lets workers that share only the registry read each other's blobs", async () => {
    const workerA = store('machine-a');
    const workerB = store('machine-b');
    const fromA = await workerA.putBytes('written on machine A');
    const fromB = await workerB.put(Readable.from([Buffer.from('written on machine B')]), { path: 'b.txt' });
    expect((await workerB.read(fromA.sha256, 100)).toString()).toBe('written on machine A');
    expect(await readFile(await workerA.localFile(fromB.sha256), 'utf8')).toBe('written on machine B');
    expect(await readFile(await workerB.localFile(fromA.sha256), 'utf8')).toBe('written on machine A');
  });
});
