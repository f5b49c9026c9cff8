/**
 * The registry-backed artifact store: every blob lives in one repository of an OCI registry
 * (`127.0.0.1:5000/modelrelease/store`), addressed by its sha256 like the filesystem store's, so workers on
 * different machines share blobs through the registry alone. Uploads are hashed on the way and committed only when
 * the digest is the expected one; reads are verified against the digest they were asked for. Readers that need a
 * file get a verified copy in a private cache (0600 files in 0700 folders) under the worker's data directory.
 */
import { createHash } from 'node:crypto';
import { pipeline as pipeStreams, Readable, Transform } from 'node:stream';
import { DigestMismatchError } from '../acquire/errors';
import {
  RegistryClient,
  RegistryError,
  type CredentialLookup,
  type RegistryClientOptions,
  type RepositoryLocation,
} from '../registry';
import {
  BlobNotFoundError,
  BlobTooLargeError,
  checkDigest,
  type ArtifactStore,
  type PutOptions,
  type StoredBlob,
} from './artifact-store';
import { FilesystemStore, storePath, storeStream } from './filesystem';

export interface OciStoreOptions {
  /** Where verified copies for localFile() are kept; private to the service user. */
  cacheDir: string;
  /** Registry credentials (dockerCredentialLookup()); anonymous when not given. */
  credentials?: CredentialLookup;
  /** Registry hosts spoken to over plain HTTP besides loopback ones. */
  insecureRegistries?: readonly string[];
  fetch?: typeof fetch;
  /** Upload chunk size in bytes (the registry client's default when not given). */
  chunkBytes?: number;
}

export class OciStore implements ArtifactStore {
  readonly description: string;
  /** The registry client, shared with pushes of model artifacts to the same repository. */
  readonly client: RegistryClient;
  /** Verified copies for localFile(), laid out and written as a filesystem store's blobs. */
  private readonly cache: FilesystemStore;
  private readonly downloads = new Map<string, Promise<string>>();

  constructor(
    readonly location: RepositoryLocation,
    private readonly options: OciStoreOptions,
  ) {
    const clientOptions: RegistryClientOptions = {
      credentials: options.credentials,
      insecureRegistries: options.insecureRegistries,
      fetch: options.fetch,
      chunkBytes: options.chunkBytes,
    };
    this.client = new RegistryClient(location, clientOptions);
    this.cache = new FilesystemStore(options.cacheDir);
    this.description = `registry store ${location.registry}/${location.repository}`;
  }

  /** Asks the registry, not the cache: the registry is what other workers and the cluster read. */
  async size(sha256: string): Promise<number | undefined> {
    return this.client.headBlob(checkDigest(sha256));
  }

  async open(sha256: string): Promise<Readable> {
    if (await this.isCached(sha256)) return this.cache.open(sha256);
    const blob = await this.client.openBlob(sha256);
    if (!blob) throw new BlobNotFoundError(sha256);
    return verified(blob.stream, sha256, this.description);
  }

  async read(sha256: string, maxBytes: number): Promise<Buffer> {
    if (await this.isCached(sha256)) return this.cache.read(sha256, maxBytes);
    const blob = await this.client.openBlob(sha256);
    if (!blob) throw new BlobNotFoundError(sha256);
    if (blob.size > maxBytes) {
      blob.stream.destroy();
      throw new BlobTooLargeError(sha256, blob.size, maxBytes);
    }
    const parts: Buffer[] = [];
    let size = 0;
    // A registry may omit or misstate the length: the bound holds on the bytes themselves.
    for await (const chunk of verified(blob.stream, sha256, this.description)) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        blob.stream.destroy();
        throw new BlobTooLargeError(sha256, size, maxBytes);
      }
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts, size);
  }

  async localFile(sha256: string): Promise<string> {
    if (await this.isCached(sha256)) return this.cache.localFile(sha256);
    // Concurrent readers of one blob (three evaluation gates) share one download.
    let download = this.downloads.get(sha256);
    if (!download) {
      download = this.download(sha256).finally(() => this.downloads.delete(sha256));
      this.downloads.set(sha256, download);
    }
    return download;
  }

  /**
   * Streams `source` up, hashing on the way. With an expected digest the registry is asked first: a blob it already
   * holds is kept and the source is not read. Content with another digest is refused before it is committed.
   */
  async put(source: Readable, options: PutOptions): Promise<StoredBlob> {
    const expected = options.expectedSha256 === undefined ? undefined : checkDigest(options.expectedSha256);
    if (expected !== undefined) {
      const held = await this.client.headBlob(expected);
      if (held !== undefined) {
        source.destroy();
        options.onProgress?.(held);
        return { sha256: expected, size: held };
      }
    }
    return this.client.uploadBlob(source, {
      signal: options.signal,
      onProgress: options.onProgress,
      beforeCommit: (sha256) => {
        if (expected !== undefined && sha256 !== expected)
          throw new DigestMismatchError(options.path, expected, sha256);
      },
    });
  }

  putBytes(bytes: Uint8Array | string, options: Partial<PutOptions> = {}): Promise<StoredBlob> {
    const buffer =
      typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const expected = options.expectedSha256 === undefined ? undefined : checkDigest(options.expectedSha256);
    return this.client.uploadBlob(Readable.from([buffer]), {
      signal: options.signal,
      onProgress: options.onProgress,
      beforeCommit: (sha256) => {
        if (expected !== undefined && sha256 !== expected) {
          throw new DigestMismatchError(options.path ?? 'blob', expected, sha256);
        }
      },
    });
  }

  private async isCached(sha256: string): Promise<boolean> {
    return (await this.cache.size(sha256)) !== undefined;
  }

  /**
   * Streams the blob into the cache through a verifier; the cache renames it into place only once complete, so a
   * cache name always holds its digest's bytes.
   */
  private async download(sha256: string): Promise<string> {
    const blob = await this.client.openBlob(sha256);
    if (!blob) throw new BlobNotFoundError(sha256);
    await storeStream(this.options.cacheDir, verified(blob.stream, sha256, this.description), {
      path: `blob sha256:${sha256}`,
    });
    return storePath(this.options.cacheDir, sha256);
  }
}

/** The registry's stream through a verifier; a failure of either ends the returned stream with that error. */
function verified(source: Readable, sha256: string, store: string): Readable {
  return pipeStreams(source, verifying(sha256, store), () => {
    // Errors reach the reader through the returned stream.
  });
}

/** Passes bytes through and fails at the end when they do not hash to `sha256`. */
function verifying(sha256: string, store: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest('hex');
      if (actual === sha256) done();
      else {
        done(
          new RegistryError(
            'RegistryRejected',
            `the ${store} sent bytes hashing to sha256:${actual.slice(0, 12)}… for blob sha256:${sha256.slice(0, 12)}…: the registry's copy is damaged; acquire the release again`,
          ),
        );
      }
    },
  });
}
