/**
 * The artifact store every stage reads and writes by sha256 digest: model files, manifests, datasets and evidence.
 * Nothing outside a store implementation knows where or how blobs are kept, so no host path reaches a manifest,
 * a result, the workflow history or a rendered object. The filesystem store is the embedded default; a
 * registry-backed store implements the same interface.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface StoredBlob {
  sha256: string;
  size: number;
}

export interface PutOptions {
  /** What the blob is (a manifest path, `evidence/scan.json`), for messages only. */
  path: string;
  /** When set, content with another digest is refused and never enters the store. */
  expectedSha256?: string;
  signal?: AbortSignal;
  /** Called as bytes arrive with the bytes stored so far. */
  onProgress?: (bytes: number) => void;
}

export interface ArtifactStore {
  /** A short description for logs and messages ("filesystem store"); never a path or a credential. */
  readonly description: string;
  /** The blob's size, or undefined when the store does not hold it. */
  size(sha256: string): Promise<number | undefined>;
  /** A stream of the blob's bytes (rejects with BlobNotFoundError when absent). */
  open(sha256: string): Promise<Readable>;
  /** The whole blob, refused (BlobTooLargeError) when it is larger than `maxBytes`. */
  read(sha256: string, maxBytes: number): Promise<Buffer>;
  /**
   * A local file holding exactly the blob's bytes, for readers that need random access (scanners, HDF5, tfjs).
   * The filesystem store hands out the blob itself; remote stores a verified cached copy. Callers only read it.
   */
  localFile(sha256: string): Promise<string>;
  /** Streams `source` in, hashing on the way; idempotent (a blob already held is kept). */
  put(source: Readable, options: PutOptions): Promise<StoredBlob>;
  /**
   * Stores an open local file from its start to its end, hashing the bytes stored; the caller closes it. Optional:
   * a store without it is given the file as a stream (put).
   */
  putFile?(file: FileHandle, options: PutOptions): Promise<StoredBlob>;
  /** Stores bytes already in memory (manifests, evidence). */
  putBytes(bytes: Uint8Array | string, options?: Partial<PutOptions>): Promise<StoredBlob>;
}

export class BlobNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(
      `the artifact store holds no blob sha256:${sha256}: acquire the release again (the store may have been pruned)`,
    );
    this.name = 'BlobNotFoundError';
  }
}

export class BlobTooLargeError extends Error {
  constructor(
    readonly sha256: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`blob sha256:${sha256.slice(0, 12)}… is ${size} bytes, more than the ${maxBytes} this reader accepts`);
    this.name = 'BlobTooLargeError';
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Digests arrive from requests and histories; anything but lower-case hex could address something else. */
export function checkDigest(sha256: string): string {
  if (!SHA256.test(sha256)) throw new RangeError(`not a lower-case hex sha256: ${JSON.stringify(sha256.slice(0, 80))}`);
  return sha256;
}
