/**
 * The image scanner's view of a registry: resolve a tag to a digest and the platform's manifest, fetch manifests and
 * blobs by digest, every digest verified. Transport and authentication are the shared registry client's (plain HTTP
 * for loopback and insecure-listed registries, the anonymous/Basic/Bearer token dance); the answers are judged here,
 * in the scanner's own error codes.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  MANIFEST_ACCEPT,
  OCI_INDEX,
  OCI_MANIFEST,
  RegistryClient as OciRegistryClient,
  RegistryError,
  registryErrorCodes,
} from '../../registry';
import { ImageScanError, RegistryUnavailableError } from './errors';
import type { ImageRef } from './reference';

export { isPlainHttp } from '../../registry';

export const MEDIA_TYPES = {
  ociIndex: OCI_INDEX,
  ociManifest: OCI_MANIFEST,
  dockerList: DOCKER_LIST,
  dockerManifest: DOCKER_MANIFEST,
} as const;

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
  private readonly registry: OciRegistryClient;

  constructor(
    readonly ref: ImageRef,
    private readonly options: RegistryClientOptions = {},
  ) {
    const { credentials } = options;
    this.registry = new OciRegistryClient(
      { registry: ref.registry, repository: ref.repository },
      {
        fetch: options.fetch,
        insecureRegistries: options.insecureRegistries,
        credentials: async (registry) => credentials?.[registry],
        credentialsAdvice: `give the image gate registry credentials for ${ref.registry} (registryCredentials)`,
        actions: 'pull',
        timeoutMs: options.timeoutMs,
        signal: options.signal,
      },
    );
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
    const res = await this.get(`/manifests/${reference}`, reference, { Accept: MANIFEST_ACCEPT });
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
    const res = await this.get(`/blobs/${digest}`, digest);
    const body = Buffer.from(await res.arrayBuffer());
    const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (actual !== digest) {
      throw new ImageScanError('DigestMismatch', `${this.describe(digest)}: the blob hashes to ${actual}`);
    }
    return body;
  }

  /** Opens a blob (a layer) as a stream; the caller verifies its digest while reading. */
  async openBlob(digest: string): Promise<Readable> {
    const res = await this.get(`/blobs/${digest}`, digest);
    if (!res.body) throw new RegistryUnavailableError(`${this.describe(digest)}: the registry sent no body`);
    return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  }

  private describe(reference: string): string {
    const sep = reference.startsWith('sha256:') ? '@' : ':';
    return `${this.ref.registry}/${this.ref.repository}${sep}${reference}`;
  }

  /** GETs `path` of the repository; any answer but a success throws in the scanner's terms. */
  private async get(path: string, reference: string, headers: Record<string, string> = {}): Promise<Response> {
    let res: Response;
    try {
      res = await this.registry.request('GET', path, { headers });
    } catch (err) {
      // Refused credentials, or a token service that would not issue a token for them.
      if (err instanceof RegistryError) {
        throw new ImageScanError('ImageAccessDenied', `${this.describe(reference)}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    await this.check(res, reference);
    return res;
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
