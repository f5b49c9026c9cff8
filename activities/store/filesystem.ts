/**
 * The filesystem artifact store, the embedded default: `<root>/sha256/<first 2 hex>/<sha256>`.
 * Blobs are written to `<storeRoot>/tmp/` while they are hashed and renamed into place only once complete and
 * verified, so a name in the store always holds exactly the bytes its digest says, even after a crash mid-transfer.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
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
