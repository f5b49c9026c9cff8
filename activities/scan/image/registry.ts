/**
 * A small client for the Docker Registry HTTP API v2 (the OCI distribution spec): resolve a tag to a digest, fetch
 * manifests and blobs by digest, with the anonymous/Basic token dance registries such as Docker Hub expect.
 * Loopback registries (and those listed as insecure) are spoken to over plain HTTP, as dockerd does.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ImageScanError, RegistryUnavailableError } from './errors';
import { registryHost, type ImageRef } from './reference';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(', ');

/** A content descriptor (manifest entries, layers, the config). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** An image manifest (OCI or Docker v2 schema 2). */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** What a reference resolved to: the digest to pin, and the platform manifest to read. */
export interface ResolvedImage {
  /** The digest the reference names (an index's digest for multi-platform images): pin this one. */
  digest: string;
  mediaType: string;
  /** The single-platform manifest that was selected and its own digest. */
  manifest: ImageManifest;
  manifestDigest: string;
  platform?: string;
}

export interface RegistryClientOptions {
  fetch?: typeof fetch;
  /** Registry hosts spoken to over plain HTTP besides loopback ones (host[:port]). */
  insecureRegistries?: string[];
  /** Basic credentials per registry host. */
  credentials?: Record<string, { username: string; password: string }>;
  /** Which platform to pick from a multi-platform index (default linux/amd64). */
  platform?: { os: string; architecture: string; variant?: string };
  /** Per-request timeout in milliseconds (default 60 s; blobs are streamed and only their headers count). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Registry access for one image repository. */
export class RegistryClient {
  private readonly fetchImpl: typeof fetch;
  private token?: string;
  private readonly base: string;

  constructor(
    readonly ref: ImageRef,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.fetchImpl = options.fetch ?? fetch;
    const host = registryHost(ref);
    const scheme = isPlainHttp(ref.registry, options.insecureRegistries ?? []) ? 'http' : 'https';
    this.base = `${scheme}://${host}/v2/${ref.repository}`;
  }

  /** Resolves the reference (tag or digest) to its digest and the platform manifest, verifying every digest. */
  async resolve(): Promise<ResolvedImage> {
    const reference = this.ref.digest ?? this.ref.tag ?? 'latest';
    const top = await this.getManifest(reference);
    if (top.mediaType === MEDIA_TYPES.ociIndex || top.mediaType === MEDIA_TYPES.dockerList) {
      const index = top.json as { manifests?: Descriptor[] };
      const wanted = this.options.platform ?? { os: 'linux', architecture: 'amd64' };
      const entry = (index.manifests ?? []).find(
        (m) =>
          m.platform?.os === wanted.os &&
          m.platform?.architecture === wanted.architecture &&
          (!wanted.variant || m.platform?.variant === wanted.variant),
      );
      if (!entry) {
        const have = (index.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ');
        throw new ImageScanError(
          'UnsupportedImage',
          `${this.describe(reference)} has no ${wanted.os}/${wanted.architecture} image (it has: ${have || 'none'})`,
        );
      }
      const child = await this.getManifest(entry.digest);
      return {
        digest: top.digest,
        mediaType: top.mediaType,
        manifest: asImageManifest(child.json, child.mediaType, this.describe(entry.digest)),
        manifestDigest: child.digest,
        platform: `${wanted.os}/${wanted.architecture}`,
      };
    }
    return {
      digest: top.digest,
      mediaType: top.mediaType,
      manifest: asImageManifest(top.json, top.mediaType, this.describe(reference)),
      manifestDigest: top.digest,
    };
  }

  /** Fetches a manifest by tag or digest; a digest reference is verified against the body. */
  async getManifest(reference: string): Promise<{ digest: string; mediaType: string; json: unknown }> {
    const res = await this.request(`${this.base}/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
    await this.check(res, reference);
    const body = Buffer.from(await res.arrayBuffer());
    const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (reference.startsWith('sha256:') && actual !== reference) {
      throw new ImageScanError('DigestMismatch', `${this.describe(reference)}: the manifest hashes to ${actual}`);
    }
    // The registry's digest header names what a tag points to; trust only what the bytes hash to.
    const header = res.headers.get('docker-content-digest');
    if (header && header.startsWith('sha256:') && header !== actual) {
      throw new ImageScanError(
        'DigestMismatch',
        `${this.describe(reference)}: the registry says ${header} but the manifest hashes to ${actual}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new ImageScanError('UnsupportedImage', `${this.describe(reference)}: the manifest is not JSON`, {
        cause: err,
      });
    }
    const declared = (json as { mediaType?: string }).mediaType;
    const mediaType = declared ?? res.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
    return { digest: actual, mediaType, json };
  }

  /** Fetches a small blob (the image config) by digest, verified. */
  async getBlob(digest: string): Promise<Buffer> {
    const res = await this.request(`${this.base}/blobs/${digest}`, {});
    await this.check(res, digest);
    const body = Buffer.from(await res.arrayBuffer());
    const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (actual !== digest) {
      throw new ImageScanError('DigestMismatch', `${this.describe(digest)}: the blob hashes to ${actual}`);
    }
    return body;
  }

  /** Opens a blob (a layer) as a stream; the caller verifies its digest while reading. */
  async openBlob(digest: string): Promise<Readable> {
    const res = await this.request(`${this.base}/blobs/${digest}`, {});
    await this.check(res, digest);
    if (!res.body) throw new RegistryUnavailableError(`${this.describe(digest)}: the registry sent no body`);
    return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  }

  private describe(reference: string): string {
    const sep = reference.startsWith('sha256:') ? '@' : ':';
    return `${this.ref.registry}/${this.ref.repository}${sep}${reference}`;
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    const attempt = async (): Promise<Response> => {
      const headers = new Headers(init.headers);
      if (this.token) headers.set('Authorization', this.token);
      const signals: AbortSignal[] = [];
      if (this.options.signal) signals.push(this.options.signal);
      // Only the response headers are bounded: a layer may legitimately stream for long (the activity heartbeats).
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new Error('timed out')), this.options.timeoutMs ?? 60_000);
      signals.push(timeout.signal);
      try {
        return await this.fetchImpl(url, { ...init, headers, signal: AbortSignal.any(signals) });
      } catch (err) {
        if (this.options.signal?.aborted) throw err;
        throw new RegistryUnavailableError(`registry ${this.ref.registry} cannot be reached (${describeError(err)})`, {
          cause: err,
        });
      } finally {
        clearTimeout(timer);
      }
    };
    let res = await attempt();
    if (res.status === 401 && !this.token) {
      const challenge = res.headers.get('www-authenticate');
      await res.body?.cancel();
      if (challenge && (await this.authenticate(challenge))) res = await attempt();
    }
    return res;
  }

  /** Answers a WWW-Authenticate challenge (Bearer token service, or Basic with configured credentials). */
  private async authenticate(challenge: string): Promise<boolean> {
    const creds = this.options.credentials?.[this.ref.registry];
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (/^basic/i.test(challenge)) {
      if (!basic) return false;
      this.token = basic;
      return true;
    }
    if (!/^bearer/i.test(challenge)) return false;
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!] as const),
    );
    if (!params.realm) return false;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.ref.repository}:pull`);
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        headers: basic ? { Authorization: basic } : {},
        signal: this.options.signal ?? null,
      });
    } catch (err) {
      throw new RegistryUnavailableError(`token service ${url.host} cannot be reached (${describeError(err)})`, {
        cause: err,
      });
    }
    if (res.status >= 500) throw new RegistryUnavailableError(`token service ${url.host} answered ${res.status}`);
    if (!res.ok) return false;
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) return false;
    this.token = `Bearer ${token}`;
    return true;
  }

  private async check(res: Response, reference: string): Promise<void> {
    if (res.ok) return;
    const text = await res.text().catch(() => '');
    const codes = registryErrorCodes(text);
    const what = this.describe(reference);
    if (res.status === 404 || codes.some((c) => ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN'].includes(c))) {
      throw new ImageScanError('ImageNotFound', `${what} was not found in the registry (${codes.join(', ') || 404})`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new ImageScanError('ImageAccessDenied', `${what}: the registry refused access (${res.status})`);
    }
    if (res.status === 429 || res.status >= 500) {
      throw new RegistryUnavailableError(`${what}: the registry answered ${res.status}`);
    }
    throw new ImageScanError('UnsupportedImage', `${what}: the registry answered ${res.status} ${codes.join(', ')}`);
  }
}

function asImageManifest(json: unknown, mediaType: string, what: string): ImageManifest {
  const m = json as Partial<ImageManifest>;
  if (mediaType !== MEDIA_TYPES.ociManifest && mediaType !== MEDIA_TYPES.dockerManifest) {
    throw new ImageScanError(
      'UnsupportedImage',
      `${what} is a "${mediaType || 'unknown'}" manifest; only OCI and Docker schema 2 images can be scanned`,
    );
  }
  if (m.schemaVersion !== 2 || !m.config?.digest || !Array.isArray(m.layers)) {
    throw new ImageScanError('UnsupportedImage', `${what}: the manifest lacks a config or layers`);
  }
  return m as ImageManifest;
}

function registryErrorCodes(body: string): string[] {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: string }[] };
    return (parsed.errors ?? []).map((e) => e.code ?? '').filter(Boolean);
  } catch {
    return [];
  }
}

/** Loopback registries speak plain HTTP (as dockerd allows by default); others only when listed. */
export function isPlainHttp(registry: string, insecure: string[]): boolean {
  if (insecure.includes(registry)) return true;
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0]!;
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function describeError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}
