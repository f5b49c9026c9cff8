/**
 * The content-addressed artifact store: `<storeRoot>/sha256/<first 2 hex>/<sha256>`.
 * Blobs are written to `<storeRoot>/tmp/` while they are hashed and renamed into place only once complete and
 * verified, so a name in the store always holds exactly the bytes its digest says, even after a crash mid-transfer.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PRIVATE_DIR, PRIVATE_FILE } from '../common/private-files';
import { DigestMismatchError } from './errors';

/**
 * Bytes per read and per queued write. Large chunks keep the per-chunk overhead of streams negligible next to the
 * hashing, and a write queue a few chunks deep lets the disk write of one chunk overlap the hashing of the next.
 */
export const CHUNK_BYTES = 1 << 20;
const WRITE_QUEUE_BYTES = 4 * CHUNK_BYTES;

/** Where the blob with this sha256 lives in the store. */
export function storePath(storeRoot: string, sha256: string): string {
  // Digests arrive from manifests in requests; anything but hex could address a path outside the store.
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new RangeError(`not a lower-case hex sha256: ${JSON.stringify(sha256)}`);
  return join(storeRoot, 'sha256', sha256.slice(0, 2), sha256);
}

export interface StoredBlob {
  sha256: string;
  size: number;
}

export interface StoreStreamOptions {
  /** The file's manifest path, for messages. */
  path: string;
  /** When set, content with another digest is refused and never enters the store. */
  expectedSha256?: string;
  signal?: AbortSignal;
  /** Called after each chunk with the bytes stored so far. */
  onProgress?: (bytes: number) => void;
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
