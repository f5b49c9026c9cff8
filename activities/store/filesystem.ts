/**
 * The filesystem artifact store, the embedded default: `<root>/sha256/<first 2 hex>/<sha256>`.
 * Blobs are written to `<storeRoot>/tmp/` while they are hashed and renamed into place only once complete and
 * verified, so a name in the store always holds exactly the bytes its digest says, even after a crash mid-transfer.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
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
 * Bytes per read when hashing a local file's copy. At this size the per-call costs (thread-pool hop, promise,
 * syscall) are a few percent of hashing the chunk; two buffers of it per file in flight stay small.
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
 * Copy an open local file into the store. The kernel copies it (copy_file_range, no round trip through this
 * process) while this thread reads back and hashes what the copy holds so far, so the blob is named by the digest of
 * exactly the bytes stored even if the source changes meanwhile. Where an open file cannot be named again (no
 * /proc/self/fd), the file is streamed through like any other source. The caller keeps and closes `file`.
 */
export async function storeFile(storeRoot: string, file: FileHandle, options: PutOptions): Promise<StoredBlob> {
  // The name of the very file that was opened (and checked) by the caller, whatever its path now points to.
  const source = `/proc/self/fd/${file.fd}`;
  if (!(await exists(source))) {
    return storeStream(
      storeRoot,
      file.createReadStream({ start: 0, autoClose: false, highWaterMark: CHUNK_BYTES }),
      options,
    );
  }
  const { size: sizeHint } = await file.stat();
  const tmpDir = join(storeRoot, 'tmp');
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR });
  const tmpPath = join(tmpDir, `${randomUUID()}.part`);
  const hash = createHash('sha256');
  let copying: Promise<void> | undefined;
  try {
    // Created private before the copy truncates and fills it: the copy keeps the inode this handle reads.
    const copy = await open(tmpPath, 'wx+', PRIVATE_FILE);
    let size: number;
    try {
      copying = copyFile(source, tmpPath);
      size = await hashCopy(copy, copying, hash, sizeHint, options);
    } finally {
      await copy.close();
    }
    const sha256 = hash.digest('hex');
    if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
      throw new DigestMismatchError(options.path, options.expectedSha256, sha256);
    }
    // The copy took the source's mode; blobs are private.
    await chmod(tmpPath, PRIVATE_FILE);
    await commit(storeRoot, tmpPath, sha256);
    return { sha256, size };
  } finally {
    await rm(tmpPath, { force: true });
    // A kernel copy cannot be interrupted: after a cancellation or failure it runs to its end on its own, and its
    // file is removed again once it has (it may have been created anew after the removal above).
    void copying
      ?.then(
        () => rm(tmpPath, { force: true }),
        () => rm(tmpPath, { force: true }),
      )
      .catch(() => undefined);
  }
}

/**
 * Reads `copy` from its start while `copying` fills it and hashes every byte; the bytes hashed are the bytes the
 * store keeps. Resolves with the size once the copy has ended and all of it has been read.
 */
async function hashCopy(
  copy: FileHandle,
  copying: Promise<void>,
  hash: Hash,
  sizeHint: number,
  { signal, onProgress }: PutOptions,
): Promise<number> {
  let copied = false;
  const ended = copying.then(() => {
    copied = true;
  });
  // A failed copy surfaces where it is awaited below, not as an unhandled rejection meanwhile.
  ended.catch(() => undefined);
  // A small file gets small buffers; the size is only a hint (the copy is read until it has ended).
  const chunkBytes = Math.min(FILE_CHUNK_BYTES, Math.max(16 << 10, sizeHint));
  const buffers = [Buffer.allocUnsafeSlow(chunkBytes), Buffer.allocUnsafeSlow(chunkBytes)] as const;
  let position = 0;
  let next = 0;
  // Whether the copy had ended when a read began: only then does an empty read mean the end.
  const read = () => {
    const whole = copied;
    const reading = copy.read(buffers[next % 2]!, 0, chunkBytes, position).then((r) => ({ ...r, whole }));
    reading.catch(() => undefined);
    return reading;
  };
  let reading = read();
  try {
    for (;;) {
      const { bytesRead, buffer, whole } = await reading;
      signal?.throwIfAborted();
      if (bytesRead === 0) {
        if (whole) break;
        // Caught up with the copy: wait for more of it (or its end).
        await Promise.race([ended, delay(1)]);
        reading = read();
        continue;
      }
      const chunk = buffer.subarray(0, bytesRead);
      const at = position;
      position += bytesRead;
      // The other buffer: the one hashed last round, done with.
      next++;
      reading = read();
      // Hashed in CHUNK_BYTES slices so that progress reports keep their pace whatever the read size.
      for (let offset = 0; offset < bytesRead; offset += CHUNK_BYTES) {
        hash.update(chunk.subarray(offset, offset + CHUNK_BYTES));
        onProgress?.(at + Math.min(offset + CHUNK_BYTES, bytesRead));
      }
    }
    await ended;
    return position;
  } finally {
    // Nothing may still be reading once the caller closes the handle.
    await reading.then(
      () => undefined,
      () => undefined,
    );
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
