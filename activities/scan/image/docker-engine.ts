/**
 * Images that exist only in a local Docker engine (CI builds, scans, then pushes), named in skopeo's transport
 * syntax: `docker-daemon:<name>[:tag]` or `docker-daemon:sha256:<image id>`. They are read through the Engine API's
 * image export (`docker save`): the export is streamed, never held in memory, and read twice — once for its small
 * metadata (manifest.json, the config), which the format puts after the layers, then once for the layers — both times
 * by image ID, so a tag that moves between the two reads cannot mix two images.
 *
 * The engine is the one DOCKER_HOST names: a unix socket, or tcp to a loopback address only, so that a worker never
 * reads (or sends its registry credentials' images to) an engine on another machine.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { ImageScanError } from './errors';
import { parseImageRef, type ImageRef } from './reference';
import type { Descriptor, ImageManifest } from './registry';
import { ProductError } from '../../../contract/errors';

/** The transport prefix of a local engine's image. */
export const DOCKER_DAEMON_PREFIX = 'docker-daemon:';

export const OCI_MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
const DEFAULT_SOCKET = '/var/run/docker.sock';
/** manifest.json and the config are read into memory: bounded, as everything that reaches a report. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** The engine could not be reached or failed while exporting: worth retrying. */
export class DockerEngineUnavailableError extends ProductError {
  readonly code = 'DockerEngineUnavailable';
  readonly permanent = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options });
  }
}

/** A parsed `docker-daemon:` reference. */
export interface DaemonImageRef {
  original: string;
  /** What the engine is asked for: `name:tag` (tag defaults to latest) or the image ID. */
  name: string;
  /** Set for named references. */
  ref?: ImageRef;
}

export function isDaemonRef(ref: string): boolean {
  return ref.trim().startsWith(DOCKER_DAEMON_PREFIX);
}

/** Parses `docker-daemon:<name>[:tag]` or `docker-daemon:sha256:<id>`; throws InvalidImageRef naming the problem. */
export function parseDaemonRef(ref: string): DaemonImageRef {
  const original = ref.trim();
  const rest = original.slice(DOCKER_DAEMON_PREFIX.length);
  if (rest.startsWith('sha256:')) {
    if (!IMAGE_ID.test(rest)) {
      throw new ImageScanError(
        'InvalidImageRef',
        `image reference "${ref}" is not valid: an image ID is sha256: followed by 64 lower-case hex characters`,
      );
    }
    return { original, name: rest };
  }
  if (rest.includes('@')) {
    throw new ImageScanError(
      'InvalidImageRef',
      `image reference "${ref}" is not valid: name a local image by name[:tag] or by its ID (docker-daemon:sha256:…), not by a registry digest`,
    );
  }
  const parsed = parseImageRef(rest);
  const tag = parsed.tag ?? 'latest';
  const name = `${parsed.registry === 'docker.io' ? parsed.repository.replace(/^library\//, '') : `${parsed.registry}/${parsed.repository}`}:${tag}`;
  return { original, name, ref: { ...parsed, tag } };
}

/** `docker-daemon:sha256:<id>`: the reference that pins a local image. */
export function pinnedDaemonRef(imageId: string): string {
  return `${DOCKER_DAEMON_PREFIX}${imageId}`;
}

/** What DOCKER_HOST resolves to, as dockerode's constructor takes it. */
export type DockerEngineOptions =
  | { socketPath: string }
  | { host: string; port: number; protocol: 'http' | 'https'; ca?: Buffer; cert?: Buffer; key?: Buffer };

/**
 * The engine DOCKER_HOST names (default: the unix socket /var/run/docker.sock). Only a unix socket or tcp to a
 * loopback address is accepted; anything else throws InvalidConfig saying what to do.
 */
export function dockerEngineOptions(env: NodeJS.ProcessEnv = process.env): DockerEngineOptions {
  const value = env.DOCKER_HOST?.trim() ?? '';
  if (value === '') return { socketPath: DEFAULT_SOCKET };
  if (value.startsWith('unix://')) return { socketPath: value.slice('unix://'.length) || DEFAULT_SOCKET };
  const refuse = (what: string): never => {
    throw new ImageScanError(
      'InvalidConfig',
      `DOCKER_HOST names ${what}: local images are read only from a Docker engine on this machine; ` +
        'set DOCKER_HOST to unix:///path/to/docker.sock or tcp://127.0.0.1:<port>',
    );
  };
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `tcp://${value}`);
  } catch {
    return refuse('an address that does not parse');
  }
  if (url.protocol !== 'tcp:' && url.protocol !== 'http:' && url.protocol !== 'https:') {
    return refuse(`a ${url.protocol.replace(/:$/, '')} connection`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!isLoopbackHost(host)) return refuse(`host ${host}, which is not a loopback address`);
  const tls = env.DOCKER_TLS_VERIFY === '1' || url.protocol === 'https:';
  const port = Number(url.port || (tls ? 2376 : 2375));
  if (!tls) return { host, port, protocol: 'http' };
  const certs = env.DOCKER_CERT_PATH || join(homedir(), '.docker');
  const read = (file: string): Buffer => {
    try {
      return readFileSync(join(certs, file));
    } catch (err) {
      throw new ImageScanError(
        'InvalidConfig',
        `DOCKER_TLS_VERIFY is set but ${file} cannot be read from DOCKER_CERT_PATH (${certs})`,
        { cause: err },
      );
    }
  };
  return { host, port, protocol: 'https', ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

/** A dockerode client for the engine DOCKER_HOST names (checked by dockerEngineOptions). */
export function dockerFromEnv(env: NodeJS.ProcessEnv = process.env): Docker {
  return new Docker(dockerEngineOptions(env));
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A layer of an exported image. */
export interface DaemonLayer extends Descriptor {
  /** Its path in the export (`<id>/layer.tar`, or `blobs/sha256/<hex>` in the OCI layout). */
  path: string;
}

/** A local image as the export describes it. */
export interface DaemonImage {
  /**
   * The image ID as the engine knows it: the config's digest (for the containerd image store, a manifest's digest).
   */
  id: string;
  configDigest: string;
  config: Buffer;
  layers: DaemonLayer[];
  /**
   * The OCI manifest of exactly these blobs (config and the layers as exported); pushing the image by digest pushes
   * this manifest, so its digest is the one the pushed image gets.
   */
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
}

/** Reads local images through the Engine API's export. */
export class DockerEngineImages {
  constructor(
    private readonly docker: Docker,
    private readonly options: { signal?: AbortSignal } = {},
  ) {}

  /** The image's ID, config and layers (the first pass over the export). */
  async inspect(ref: DaemonImageRef): Promise<DaemonImage> {
    const id = await this.imageId(ref);
    const hex = id.slice(7);
    const small = new Map<string, Buffer>();
    const links = new Map<string, string>();
    const files = new Map<string, { size: number; head: Buffer }>();
    await this.exportEntries(id, async (header, body) => {
      const name = posix.normalize(header.name);
      if (header.type === 'symlink' && header.linkname) {
        links.set(name, posix.normalize(posix.join(posix.dirname(name), header.linkname)));
      }
      if (header.type !== 'file') return;
      if (name === 'manifest.json' || name === `${hex}.json` || name === `blobs/sha256/${hex}`) {
        const content = await readSmall(body, header.size ?? 0, `${ref.original}: ${name} in the export`);
        small.set(name, content);
        files.set(name, { size: content.length, head: content.subarray(0, 4) });
        return;
      }
      // Only the first bytes (is the layer compressed?); the rest of the entry is drained unread.
      let head = Buffer.alloc(0);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        head = Buffer.concat([head, chunk]).subarray(0, 4);
        if (head.length >= 4) break;
      }
      files.set(name, { size: header.size ?? 0, head });
    });
    const exported = small.get('manifest.json');
    if (!exported) {
      throw new DockerEngineUnavailableError(`the Docker engine's export of ${ref.original} has no manifest.json`);
    }
    const entry = exportedEntry(exported, hex, ref.original);
    const configPath = posix.normalize(entry.Config);
    // The config's name says its digest: `<digest hex>.json`, or `blobs/sha256/<hex>` in the OCI layout. With the
    // containerd image store the engine's ID is a manifest's digest, and the config is read in a pass of its own.
    const named = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(configPath);
    if (!named) {
      throw new ImageScanError('UnsupportedImage', `${ref.original}: the export names its config ${configPath}`);
    }
    const expectedConfig = `sha256:${named[1]}`;
    const config = small.get(configPath) ?? (await this.readEntry(id, configPath, ref.original));
    const configDigest = sha256(config);
    if (configDigest !== expectedConfig) {
      throw new ImageScanError(
        'DigestMismatch',
        `${ref.original}: the exported config hashes to ${configDigest}, not ${expectedConfig}`,
      );
    }
    const layerPaths = entry.Layers.map((p) => posix.normalize(p));
    let diffIds: string[];
    try {
      diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
    } catch (err) {
      throw new ImageScanError('UnsupportedImage', `${ref.original}: the image config is not JSON`, { cause: err });
    }
    if (diffIds.length !== layerPaths.length) {
      throw new ImageScanError(
        'UnsupportedImage',
        `${ref.original}: the export lists ${layerPaths.length} layers but the config ${diffIds.length}`,
      );
    }
    const layers = layerPaths.map((path, i): DaemonLayer => {
      // An export repeats a layer's file as a symlink when the image holds the same layer twice.
      const target = links.get(path) ?? path;
      const file = files.get(target);
      if (!file) {
        throw new DockerEngineUnavailableError(`the Docker engine's export of ${ref.original} lacks layer ${i}`);
      }
      const blob = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(target);
      return {
        path: target,
        digest: blob ? `sha256:${blob[1]}` : diffIds[i]!,
        size: file.size,
        mediaType: layerMediaType(file.head),
      };
    });
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MEDIA_TYPES.manifest,
      config: { mediaType: OCI_MEDIA_TYPES.config, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    return { id, configDigest, config, layers, manifest, manifestBytes, manifestDigest: sha256(manifestBytes) };
  }

  /** One small entry of the export (a pass of its own). */
  private async readEntry(id: string, path: string, what: string): Promise<Buffer> {
    let content: Buffer | undefined;
    await this.exportEntries(id, async (header, body) => {
      if (content === undefined && header.type === 'file' && posix.normalize(header.name) === path) {
        content = await readSmall(body, header.size ?? 0, `${what}: ${path} in the export`);
      }
    });
    if (!content) throw new DockerEngineUnavailableError(`the Docker engine's export of ${what} lacks ${path}`);
    return content;
  }

  /**
   * Streams each distinct layer of `image` to `onLayer` (the second pass), in the export's order, which is not the
   * image's: `indexes` are the positions the layer holds in the image.
   */
  async streamLayers(
    image: DaemonImage,
    onLayer: (indexes: number[], layer: DaemonLayer, body: Readable) => Promise<void>,
  ): Promise<void> {
    const byPath = new Map<string, number[]>();
    for (const [i, l] of image.layers.entries()) byPath.set(l.path, [...(byPath.get(l.path) ?? []), i]);
    const seen = new Set<string>();
    await this.exportEntries(image.id, async (header, body) => {
      const name = posix.normalize(header.name);
      const indexes = header.type === 'file' ? byPath.get(name) : undefined;
      if (!indexes || seen.has(name)) return;
      seen.add(name);
      await onLayer(indexes, image.layers[indexes[0]!]!, body);
    });
    const missing = [...byPath.keys()].filter((p) => !seen.has(p));
    if (missing.length > 0) {
      throw new DockerEngineUnavailableError(
        `the Docker engine's export of ${image.id} lacks ${missing.length} layer(s)`,
      );
    }
  }

  private async imageId(ref: DaemonImageRef): Promise<string> {
    let info: { Id?: string };
    try {
      info = (await this.docker.getImage(ref.name).inspect()) as { Id?: string };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new ImageScanError(
          'ImageNotFound',
          `${ref.original} was not found in the local Docker engine (\`docker images\` lists what it has)`,
          { cause: err },
        );
      }
      throw this.unavailable(err, `inspecting ${ref.original}`);
    }
    if (!info.Id || !IMAGE_ID.test(info.Id)) {
      throw new ImageScanError('UnsupportedImage', `${ref.original}: the Docker engine reports no sha256 image ID`);
    }
    return info.Id;
  }

  /**
   * Runs `onEntry` for every entry of the image's export, one at a time. An entry's body that `onEntry` leaves unread
   * is drained; a throw from `onEntry` stops the export and is rethrown.
   */
  private async exportEntries(
    id: string,
    onEntry: (header: tar.Header, body: Readable) => Promise<void>,
  ): Promise<void> {
    let source: NodeJS.ReadableStream;
    try {
      source = (await this.docker.getImage(id).get()) as NodeJS.ReadableStream;
    } catch (err) {
      throw this.unavailable(err, `exporting ${id}`);
    }
    let failure: unknown;
    const extract = tar.extract();
    extract.on('entry', (header, entry, next) => {
      const { body, finished, release } = bridge(entry as unknown as Readable);
      onEntry(header, body)
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(release)
        .then(() => finished)
        .then(
          () => next(failure as Error | undefined),
          (err: unknown) => next(err as Error),
        );
    });
    try {
      await pipeline(source, extract, { signal: this.options.signal });
    } catch (err) {
      if (failure !== undefined) throw failure;
      if (this.options.signal?.aborted) throw err;
      throw this.unavailable(err, `reading the export of ${id}`);
    }
    if (failure !== undefined) throw failure;
  }

  private unavailable(err: unknown, doing: string): DockerEngineUnavailableError {
    const e = err as { code?: string; statusCode?: number; message?: string };
    const why = e.code ?? (e.statusCode ? `HTTP ${e.statusCode}` : 'no answer');
    const where = engineAddress(this.docker);
    return e.code
      ? new DockerEngineUnavailableError(
          `the Docker engine at ${where} cannot be reached (${why}): start it or set DOCKER_HOST`,
          {
            cause: err,
          },
        )
      : new DockerEngineUnavailableError(`the Docker engine at ${where} failed while ${doing} (${why})`, {
          cause: err,
        });
  }
}

/** The engine's address as DOCKER_HOST would name it. */
export function engineAddress(docker: Docker): string {
  const modem = docker.modem as { socketPath?: unknown; host?: string; port?: number | string; protocol?: string };
  if (typeof modem.socketPath === 'string') return `unix://${modem.socketPath}`;
  return `${modem.protocol === 'https' ? 'https' : 'tcp'}://${modem.host ?? 'localhost'}:${modem.port ?? ''}`;
}

/** The export's entry for the image: the one whose config the ID names, else the only one (an export by ID). */
function exportedEntry(manifestJson: Buffer, hex: string, what: string): { Config: string; Layers: string[] } {
  let entries: { Config?: unknown; Layers?: unknown }[];
  try {
    entries = JSON.parse(manifestJson.toString('utf8')) as typeof entries;
  } catch (err) {
    throw new ImageScanError('UnsupportedImage', `${what}: the export's manifest.json is not JSON`, { cause: err });
  }
  const list = Array.isArray(entries) ? entries : [];
  const entry =
    list.find((e) => e.Config === `${hex}.json` || e.Config === `blobs/sha256/${hex}`) ??
    (list.length === 1 ? list[0] : undefined);
  if (
    !entry ||
    typeof entry.Config !== 'string' ||
    !Array.isArray(entry.Layers) ||
    !entry.Layers.every((l) => typeof l === 'string')
  ) {
    throw new ImageScanError('UnsupportedImage', `${what}: the export's manifest.json does not describe the image`);
  }
  return { Config: entry.Config, Layers: entry.Layers as string[] };
}

/** Reads a small entry whole, refusing one over the metadata bound. */
async function readSmall(body: Readable, size: number, what: string): Promise<Buffer> {
  if (size > MAX_METADATA_BYTES) throw new ImageScanError('UnsupportedImage', `${what} is over 16 MiB`);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function layerMediaType(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return OCI_MEDIA_TYPES.layerGzip;
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return OCI_MEDIA_TYPES.layerZstd;
  return OCI_MEDIA_TYPES.layer;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * A tar entry as a Node.js stream with backpressure. `release` detaches the consumer (what it leaves is drained);
 * `finished` settles when the entry has been read to its end, so that the next entry may start.
 */
function bridge(entry: Readable): { body: PassThrough; finished: Promise<void>; release: () => void } {
  const body = new PassThrough();
  let detached = false;
  const release = (): void => {
    detached = true;
    if (!body.writableEnded && !body.destroyed) body.end();
    entry.resume();
  };
  body.on('drain', () => entry.resume());
  body.on('close', release);
  const finished = new Promise<void>((resolve, reject) => {
    entry.on('data', (chunk: Buffer) => {
      if (detached) return;
      if (!body.write(chunk)) entry.pause();
    });
    entry.on('end', () => {
      if (!detached) body.end();
      resolve();
    });
    entry.on('error', (err) => {
      body.destroy(err);
      reject(err);
    });
  });
  return { body, finished, release };
}
