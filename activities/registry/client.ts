/**
 * A client for one repository of an OCI distribution (Docker Registry v2) registry, for pulling and pushing:
 * manifests (HEAD, GET, PUT), blobs (HEAD, GET, upload, cross-repository mount). Small blobs go up in one POST + PUT;
 * larger ones stream in PATCH chunks of a few MiB and are committed by a final PUT only after their digest is known
 * and accepted, so content that hashes to the wrong digest never becomes a blob. Authentication answers the
 * registry's challenge (anonymous, Basic, or a Bearer token with pull/push scope). Loopback registries, and those
 * listed as insecure, are spoken to over plain HTTP, as dockerd does.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { basicAuthorization, fetchBearerToken, parseChallenge } from './auth';
import type { CredentialLookup, RegistryCredentials } from './credentials';
import { describeFetchError, RegistryError, RegistryUnavailableError } from './errors';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** The Accept header of a manifest request: every kind of image and index this product reads. */
export const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ');

/** Manifests larger than this are refused when read (a model of ~40,000 files). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
/** Blobs up to this size go up in one request; larger ones in PATCH chunks of this size. */
export const UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024;

/** Where a repository lives: `127.0.0.1:5000` and `modelrelease/store`. */
export interface RepositoryLocation {
  registry: string;
  repository: string;
}

export interface RegistryClientOptions {
  fetch?: typeof fetch;
  /** Registry hosts spoken to over plain HTTP besides loopback ones (host[:port]). */
  insecureRegistries?: readonly string[];
  /** Where credentials come from (dockerCredentialLookup()); anonymous when not given. */
  credentials?: CredentialLookup;
  /**
   * What a refused login tells the user to do about the credentials (default: check the registry's entry in the
   * Docker config file, or `docker login` to it).
   */
  credentialsAdvice?: string;
  /** What the client asks a token service for (default pull,push). */
  actions?: 'pull' | 'pull,push';
  /** Per-request limit in milliseconds on the response headers (default 60 s); streamed bodies may take longer. */
  timeoutMs?: number;
  /** Upload chunk size (default UPLOAD_CHUNK_BYTES). */
  chunkBytes?: number;
  signal?: AbortSignal;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

export interface FetchedManifest extends ManifestHead {
  bytes: Buffer;
  json: unknown;
}

export interface UploadOptions {
  signal?: AbortSignal;
  /** Called as bytes arrive with the bytes sent so far. */
  onProgress?: (bytes: number) => void;
  /**
   * Called with the content's digest before the blob is committed; throwing cancels the upload, so that nothing of
   * the content stays in the registry (a digest mismatch).
   */
  beforeCommit?: (sha256: string, size: number) => void | Promise<void>;
}

export interface UploadedBlob {
  sha256: string;
  size: number;
}

/** Loopback registries speak plain HTTP (as dockerd allows by default); others only when listed. */
export function isPlainHttp(registry: string, insecure: readonly string[]): boolean {
  if (insecure.includes(registry)) return true;
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0]!;
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export class RegistryClient {
  private readonly fetchImpl: typeof fetch;
  private readonly base: string;
  private authorization?: string;
  private credentials?: Promise<RegistryCredentials | undefined>;
  private readonly scopes = new Set<string>();

  constructor(
    readonly location: RepositoryLocation,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.fetchImpl = options.fetch ?? fetch;
    const scheme = isPlainHttp(location.registry, options.insecureRegistries ?? []) ? 'http' : 'https';
    const host = location.registry === 'docker.io' ? 'registry-1.docker.io' : location.registry;
    this.base = `${scheme}://${host}/v2/${location.repository}`;
    this.scopes.add(`repository:${location.repository}:${options.actions ?? 'pull,push'}`);
  }

  /** `registry/repository`, for messages. */
  get name(): string {
    return `${this.location.registry}/${this.location.repository}`;
  }

  async headManifest(reference: string): Promise<ManifestHead | undefined> {
    const res = await this.request('HEAD', `/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (res.status === 404) return undefined;
    await this.check(res, `manifest ${reference}`);
    const digest = res.headers.get('docker-content-digest') ?? '';
    return {
      digest,
      mediaType: res.headers.get('content-type')?.split(';')[0]?.trim() ?? '',
      size: Number(res.headers.get('content-length') ?? 0),
    };
  }

  /** Fetches a manifest by tag or digest, verified against the digest it is fetched by (and bounded). */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.request('GET', `/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
    await this.check(res, `manifest ${reference}`);
    const bytes = await readBounded(res, MAX_MANIFEST_BYTES, () => `${this.name} manifest ${reference}`);
    const digest = `sha256:${sha256Hex(bytes)}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('RegistryRejected', `${this.name}@${reference}: the manifest hashes to ${digest}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError('RegistryRejected', `${this.name} manifest ${reference} is not JSON`);
    }
    const declared = (json as { mediaType?: unknown }).mediaType;
    const mediaType =
      typeof declared === 'string' ? declared : (res.headers.get('content-type')?.split(';')[0]?.trim() ?? '');
    return { digest, mediaType, size: bytes.length, bytes, json };
  }

  /** Puts a manifest under a tag or its digest; returns its digest (`sha256:…`). */
  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const digest = `sha256:${sha256Hex(bytes)}`;
    const res = await this.request('PUT', `/manifests/${reference}`, {
      headers: { 'Content-Type': mediaType },
      body: bytes,
    });
    await this.check(res, `manifest ${reference}`);
    await res.body?.cancel();
    const told = res.headers.get('docker-content-digest');
    if (told && told !== digest) {
      throw new RegistryError(
        'RegistryRejected',
        `${this.name} stored manifest ${reference} as ${told}, not ${digest}`,
      );
    }
    return digest;
  }

  /** The blob's size, or undefined when the repository does not hold it. */
  async headBlob(sha256: string): Promise<number | undefined> {
    const res = await this.request('HEAD', `/blobs/sha256:${sha256}`, {});
    if (res.status === 404) return undefined;
    await this.check(res, `blob sha256:${sha256}`);
    return Number(res.headers.get('content-length') ?? 0);
  }

  /** A stream of the blob's bytes as the registry sends them (the caller verifies), or undefined when absent. */
  async openBlob(sha256: string): Promise<{ stream: Readable; size: number } | undefined> {
    const res = await this.request('GET', `/blobs/sha256:${sha256}`, {});
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    await this.check(res, `blob sha256:${sha256}`);
    if (!res.body) throw new RegistryUnavailableError(`${this.name} sent no body for blob sha256:${sha256}`);
    return {
      stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
      size: Number(res.headers.get('content-length') ?? -1),
    };
  }

  /** Mounts a blob from another repository of the same registry; false when the registry would not. */
  async mountBlob(sha256: string, fromRepository: string): Promise<boolean> {
    this.scopes.add(`repository:${fromRepository}:pull`);
    const query = new URLSearchParams({ mount: `sha256:${sha256}`, from: fromRepository });
    const res = await this.request('POST', `/blobs/uploads/?${query}`, {});
    if (res.status === 201) {
      await res.body?.cancel();
      return true;
    }
    await this.check(res, `mount of blob sha256:${sha256}`);
    await res.body?.cancel();
    // 202: the registry opened an ordinary upload instead; it is not wanted.
    const location = res.headers.get('location');
    if (location) await this.cancelUpload(location);
    return false;
  }

  /**
   * Streams `source` up as a blob, hashing on the way. A source that ends within the first chunk goes up in one
   * request; a longer one in PATCH chunks (one chunk read ahead while the previous is sent), so memory stays at two
   * chunks whatever the size. Nothing is committed before `beforeCommit` has accepted the digest.
   */
  async uploadBlob(source: Readable, options: UploadOptions = {}): Promise<UploadedBlob> {
    const chunkBytes = this.options.chunkBytes ?? UPLOAD_CHUNK_BYTES;
    const hash = createHash('sha256');
    const chunks = readChunks(source, chunkBytes, hash, options);
    const first = await chunks.next();
    const firstChunk = first.done ? Buffer.alloc(0) : first.value;
    const second = first.done ? { done: true as const, value: undefined } : await chunks.next();
    if (second.done) {
      const sha256 = hash.digest('hex');
      await options.beforeCommit?.(sha256, firstChunk.length);
      if ((await this.headBlob(sha256)) === undefined) await this.putSmallBlob(sha256, firstChunk);
      return { sha256, size: firstChunk.length };
    }
    let location = await this.startUpload();
    let offset = 0;
    try {
      let current: Buffer | undefined = firstChunk;
      let reading: Promise<IteratorResult<Buffer>> = Promise.resolve(second);
      while (current) {
        // The next chunk is read while this one is on the wire; both settle before either failure is acted on.
        const [sent, read]: [PromiseSettledResult<string>, PromiseSettledResult<IteratorResult<Buffer>>] =
          await Promise.allSettled([this.patchChunk(location, current, offset), reading]);
        if (sent.status === 'rejected') throw sent.reason;
        if (read.status === 'rejected') throw read.reason;
        location = sent.value;
        offset += current.length;
        current = read.value.done ? undefined : read.value.value;
        if (current) reading = chunks.next();
      }
      const sha256 = hash.digest('hex');
      await options.beforeCommit?.(sha256, offset);
      const url = this.absolute(location);
      url.searchParams.set('digest', `sha256:${sha256}`);
      const res = await this.request('PUT', url, {});
      await this.check(res, `upload of blob sha256:${sha256}`);
      await res.body?.cancel();
      return { sha256, size: offset };
    } catch (err) {
      source.destroy();
      await this.cancelUpload(location);
      throw err;
    }
  }

  private async putSmallBlob(sha256: string, bytes: Buffer): Promise<void> {
    const location = await this.startUpload();
    const url = this.absolute(location);
    url.searchParams.set('digest', `sha256:${sha256}`);
    const res = await this.request('PUT', url, {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: bytes,
    });
    if (!res.ok) await this.cancelUpload(location);
    await this.check(res, `upload of blob sha256:${sha256}`);
    await res.body?.cancel();
  }

  private async startUpload(): Promise<string> {
    const res = await this.request('POST', '/blobs/uploads/', {});
    await this.check(res, 'blob upload');
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) throw new RegistryError('RegistryRejected', `${this.name} opened an upload without a location`);
    return location;
  }

  private async patchChunk(location: string, chunk: Buffer, offset: number): Promise<string> {
    const res = await this.request('PATCH', this.absolute(location), {
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Range': `${offset}-${offset + chunk.length - 1}`,
      },
      body: chunk,
    });
    await this.check(res, 'blob upload chunk');
    await res.body?.cancel();
    return res.headers.get('location') ?? location;
  }

  /** Abandons an upload session so that the registry drops what it received; failures here change nothing. */
  private async cancelUpload(location: string): Promise<void> {
    try {
      const res = await this.request('DELETE', this.absolute(location), {});
      await res.body?.cancel();
    } catch {
      // The registry expires abandoned uploads on its own.
    }
  }

  private absolute(location: string): URL {
    return new URL(location, this.base);
  }

  /**
   * Sends one request to the repository (`path` below `/v2/<repository>`, or an absolute URL the registry gave),
   * answering an authentication challenge once. The caller reads the status: only an unreachable registry, a token
   * service that fails, or refused credentials throw.
   */
  async request(
    method: string,
    path: string | URL,
    init: { headers?: Record<string, string>; body?: Buffer },
  ): Promise<Response> {
    const url = typeof path === 'string' ? `${this.base}${path}` : path;
    const attempt = async (): Promise<Response> => {
      const headers = new Headers(init.headers);
      if (this.authorization) headers.set('Authorization', this.authorization);
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new Error('timed out')), this.options.timeoutMs ?? 60_000);
      const signals = [timeout.signal, ...(this.options.signal ? [this.options.signal] : [])];
      try {
        return await this.fetchImpl(url, {
          method,
          headers,
          body: init.body ?? null,
          signal: AbortSignal.any(signals),
          // Only the headers are bounded: a blob may legitimately stream for long.
        });
      } catch (err) {
        if (this.options.signal?.aborted) throw err;
        throw new RegistryUnavailableError(
          `registry ${this.location.registry} cannot be reached (${describeFetchError(err)})`,
          {
            cause: err,
          },
        );
      } finally {
        clearTimeout(timer);
      }
    };
    let res = await attempt();
    if (res.status === 401) {
      // No credentials yet, or an expired token: answer the challenge once and try again.
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      await res.body?.cancel();
      if (!challenge) return res;
      await this.authenticate(challenge);
      res = await attempt();
    }
    return res;
  }

  private async authenticate(challenge: NonNullable<ReturnType<typeof parseChallenge>>): Promise<void> {
    this.credentials ??= this.options.credentials?.(this.location.registry) ?? Promise.resolve(undefined);
    const creds = await this.credentials;
    if (challenge.scheme === 'basic') {
      const basic = creds ? basicAuthorization(creds) : undefined;
      if (!basic) {
        throw new RegistryError(
          'RegistryAccessDenied',
          `registry ${this.location.registry} wants a user name and password and none is configured for it: ` +
            this.credentialsAdvice,
        );
      }
      this.authorization = basic;
      return;
    }
    this.authorization = await fetchBearerToken({
      registry: this.location.registry,
      challenge,
      scopes: [...this.scopes],
      credentials: creds,
      fetch: this.fetchImpl,
      plainHttpAllowed: (host) => isPlainHttp(host, this.options.insecureRegistries ?? []),
      credentialsAdvice: this.credentialsAdvice,
      signal: this.options.signal,
    });
  }

  private get credentialsAdvice(): string {
    const { registry } = this.location;
    return (
      this.options.credentialsAdvice ??
      `check the entry for ${registry} in the Docker config file or run "docker login ${registry}"`
    );
  }

  private async check(res: Response, what: string): Promise<void> {
    if (res.ok) return;
    const text = res.status === 401 || res.status === 403 || res.bodyUsed ? '' : await res.text().catch(() => '');
    const codes = registryErrorCodes(text);
    const where = `${this.name} ${what}`;
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(
        'RegistryAccessDenied',
        `${where}: the registry refused access (${res.status}); ${this.credentialsAdvice}`,
      );
    }
    if (res.status === 429 || res.status >= 500) {
      throw new RegistryUnavailableError(`${where}: the registry answered ${res.status}`);
    }
    if (res.status === 404) {
      throw new RegistryError('RegistryNotFound', `${where} was not found (${codes.join(', ') || 404})`, {
        details: { codes },
      });
    }
    throw new RegistryError('RegistryRejected', `${where}: the registry answered ${res.status} ${codes.join(', ')}`, {
      details: { codes },
    });
  }
}

/**
 * Reads `source` in chunks of exactly `size` bytes (the last may be shorter), hashing every byte. Chunks are copied
 * out of the source's buffers, so a chunk handed on is never changed by a later read.
 */
async function* readChunks(source: Readable, size: number, hash: Hash, options: UploadOptions): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  let total = 0;
  for await (const data of source) {
    options.signal?.throwIfAborted();
    let buf = Buffer.isBuffer(data) ? data : Buffer.from(data as Uint8Array);
    hash.update(buf);
    total += buf.length;
    options.onProgress?.(total);
    while (held + buf.length >= size) {
      const take = size - held;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts, size);
      parts = [];
      held = 0;
      buf = buf.subarray(take);
    }
    if (buf.length > 0) {
      parts.push(buf);
      held += buf.length;
    }
  }
  if (held > 0 || total === 0) yield Buffer.concat(parts, held);
}

async function readBounded(res: Response, maxBytes: number, what: () => string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? -1);
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new RegistryError('RegistryRejected', `${what()} is ${declared} bytes, more than the ${maxBytes} accepted`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of Readable.fromWeb(res.body as WebReadableStream<Uint8Array>)) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new RegistryError('RegistryRejected', `${what()} is more than ${maxBytes} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** The `errors[].code` values of a registry's error body (MANIFEST_UNKNOWN, …); none when it is not one. */
export function registryErrorCodes(body: string): string[] {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown }[] };
    return (parsed.errors ?? []).map((e) => (typeof e.code === 'string' ? e.code : '')).filter(Boolean);
  } catch {
    return [];
  }
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
