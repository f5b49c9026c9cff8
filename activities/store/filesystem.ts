/**
 * The filesystem artifact store, the embedded default: `<root>/sha256/<first 2 hex>/<sha256>`.
 * Blobs are written to `<storeRoot>/tmp/` while they are hashed and renamed into place only once complete and
 * verified, so a name in the store always holds exactly the bytes its digest says, even after a crash mid-transfer.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PRIVATE_DIR, PRIVATE_FILE } from '../common/private-files';
import { DigestMismatchError } from '../acquire/errors';
import {
  BlobNotFoundError,
  BlobTooLargeError,
  checkDigest,
  type ArtifactStore,
  type PutOptions,
  type StoredBlob,
} from './artifact-store';

/**
 * Bytes per read and per queued write. Large chunks keep the per-chunk overhead of streams negligible next to the
 * hashing, and a write queue a few chunks deep lets the disk write of one chunk overlap the hashing of the next.
 */
export const CHUNK_BYTES = 1 << 20;
const WRITE_QUEUE_BYTES = 4 * CHUNK_BYTES;

/**
 * Bytes per read and write when storing from a local file. At this size the per-call costs (thread-pool hop,
 * promise, syscall) are a few percent of hashing the chunk; three buffers of it per file in flight stay small.
 */
export const FILE_CHUNK_BYTES = 8 << 20;

/** Where the blob with this sha256 lives under a filesystem store's root. */
export function storePath(storeRoot: string, sha256: string): string {
  // Digests arrive from manifests in requests; anything but hex could address a path outside the store.
  checkDigest(sha256);
  return join(storeRoot, 'sha256', sha256.slice(0, 2), sha256);
}

export type StoreStreamOptions = PutOptions;

/** The store on a local (or mounted) filesystem. Blobs are private to the service user (0600 in 0700 folders). */
export class FilesystemStore implements ArtifactStore {
  readonly description = 'filesystem store';
  constructor(private readonly root: string) {}

  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(storePath(this.root, sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async open(sha256: string): Promise<Readable> {
    return createReadStream(await this.localFile(sha256), { highWaterMark: CHUNK_BYTES });
  }

  async read(sha256: string, maxBytes: number): Promise<Buffer> {
    const size = await this.size(sha256);
    if (size === undefined) throw new BlobNotFoundError(sha256);
    if (size > maxBytes) throw new BlobTooLargeError(sha256, size, maxBytes);
    return readFile(storePath(this.root, sha256));
  }

  async localFile(sha256: string): Promise<string> {
    const path = storePath(this.root, sha256);
    if ((await this.size(sha256)) === undefined) throw new BlobNotFoundError(sha256);
    return path;
  }

  put(source: Readable, options: PutOptions): Promise<StoredBlob> {
    return storeStream(this.root, source, options);
  }

  putFile(file: FileHandle, options: PutOptions): Promise<StoredBlob> {
    return storeFile(this.root, file, options);
  }

  putBytes(bytes: Uint8Array | string, options: Partial<PutOptions> = {}): Promise<StoredBlob> {
    const buffer =
      typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return storeStream(this.root, Readable.from([buffer]), { path: 'blob', ...options });
  }
}

/**
 * Stream `source` into the store, hashing on the way; memory stays at a few chunks whatever the size.
 * Idempotent: a blob already present is kept and the fresh copy dropped.
 */
export async function storeStream(
  storeRoot: string,
  source: Readable,
  options: StoreStreamOptions,
): Promise<StoredBlob> {
  const tmpDir = join(storeRoot, 'tmp');
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR });
  const tmpPath = join(tmpDir, `${randomUUID()}.part`);
  const hash = createHash('sha256');
  let size = 0;
  const { onProgress } = options;
  try {
    await pipeline(
      source,
      async function* hashChunks(chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          size += chunk.length;
          onProgress?.(size);
          yield chunk;
        }
      },
      createWriteStream(tmpPath, { highWaterMark: WRITE_QUEUE_BYTES, mode: PRIVATE_FILE }),
      { signal: options.signal },
    );
    const sha256 = hash.digest('hex');
    if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
      throw new DigestMismatchError(options.path, options.expectedSha256, sha256);
    }
    await commit(storeRoot, tmpPath, sha256);
    return { sha256, size };
  } finally {
    // After a successful commit the temp file is gone already; after any failure it must not linger.
    await rm(tmpPath, { force: true });
  }
}

/**
 * Copy an open local file into the store from its start to its end, hashing the bytes written. Several times faster
 * than a stream: large reads and writes run in the thread pool while this thread hashes, and no stream machinery
 * sits in between. The caller keeps and closes `file`.
 */
export async function storeFile(storeRoot: string, file: FileHandle, options: PutOptions): Promise<StoredBlob> {
  const { size: sizeHint } = await file.stat();
  const tmpDir = join(storeRoot, 'tmp');
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR });
  const tmpPath = join(tmpDir, `${randomUUID()}.part`);
  const hash = createHash('sha256');
  try {
    const out = await open(tmpPath, 'wx', PRIVATE_FILE);
    let size: number;
    try {
      size = await copyHashing(file, out, hash, sizeHint, options);
    } finally {
      await out.close();
    }
    const sha256 = hash.digest('hex');
    if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
      throw new DigestMismatchError(options.path, options.expectedSha256, sha256);
    }
    await commit(storeRoot, tmpPath, sha256);
    return { sha256, size };
  } finally {
    await rm(tmpPath, { force: true });
  }
}

/**
 * Reads `from` until its end into a ring of three buffers; each chunk is hashed here and then written to `to` from
 * the same buffer, so the stored bytes are exactly the hashed ones even if the source changes meanwhile. While one
 * chunk is hashed, the next is read and the previous written in the thread pool.
 */
async function copyHashing(
  from: FileHandle,
  to: FileHandle,
  hash: Hash,
  sizeHint: number,
  { signal, onProgress }: PutOptions,
): Promise<number> {
  // A small file gets small buffers; the size is only a hint (the file is read until its end, whatever it says).
  const chunkBytes = Math.min(FILE_CHUNK_BYTES, Math.max(16 << 10, sizeHint));
  const buffers: Buffer[] = [];
  const buffer = (i: number) => (buffers[i % 3] ??= Buffer.allocUnsafeSlow(chunkBytes));
  let position = 0;
  let reading = from.read(buffer(0), 0, chunkBytes, 0);
  let writing: Promise<void> = Promise.resolve();
  // A failure of one in-flight operation surfaces when it is awaited, not as an unhandled rejection meanwhile.
  void reading.catch(() => undefined);
  try {
    for (let i = 0; ; i++) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      signal?.throwIfAborted();
      const chunk = buffer(i).subarray(0, bytesRead);
      const at = position;
      position += bytesRead;
      // Buffer i + 1 last held chunk i - 2, whose write ended before the write of chunk i - 1 began (below).
      reading = from.read(buffer(i + 1), 0, chunkBytes, position);
      void reading.catch(() => undefined);
      // Hashed in CHUNK_BYTES slices so that progress reports keep their pace whatever the read size.
      for (let offset = 0; offset < bytesRead; offset += CHUNK_BYTES) {
        hash.update(chunk.subarray(offset, offset + CHUNK_BYTES));
        onProgress?.(at + Math.min(offset + CHUNK_BYTES, bytesRead));
      }
      await writing;
      writing = writeFully(to, chunk, at);
      void writing.catch(() => undefined);
    }
    await writing;
    return position;
  } finally {
    // Nothing may still be reading or writing once the caller closes the handles.
    await Promise.allSettled([reading, writing]);
  }
}

async function writeFully(to: FileHandle, chunk: Buffer, position: number): Promise<void> {
  for (let done = 0; done < chunk.length;) {
    const { bytesWritten } = await to.write(chunk, done, chunk.length - done, position + done);
    done += bytesWritten;
  }
}

async function commit(storeRoot: string, tmpPath: string, sha256: string): Promise<void> {
  const target = storePath(storeRoot, sha256);
  if (await exists(target)) return;
  await mkdir(join(storeRoot, 'sha256', sha256.slice(0, 2)), { recursive: true, mode: PRIVATE_DIR });
  // rename is atomic: a concurrent acquire of the same blob just replaces identical bytes.
  await rename(tmpPath, target);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
