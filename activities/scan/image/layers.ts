/**
 * Streams image layers (tar, optionally gzip-compressed) straight from the registry or a Docker engine's export and
 * keeps only the files the inventory needs (package databases, os-release), applying each layer's whiteouts to the layers below it. Nothing
 * is unpacked to disk; memory holds only the collected files, each capped in size.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Severity } from '../../../contract/types';
import { ImageScanError } from './errors';

/** A file kept from the image's merged filesystem. */
export interface CollectedFile {
  path: string;
  /** Index of the layer that last wrote it (0 = base). */
  layer: number;
  layerDigest: string;
  content: Buffer;
}

/** Something the scan could not examine, or examined and found broken. */
export interface ScanProblem {
  ruleId: string;
  severity: Severity;
  location: string;
  message: string;
  /** True when the problem means part of the image went unexamined: the gate cannot pass. */
  incomplete: boolean;
}

/** A layer to stream. */
export interface LayerSource {
  digest: string;
  mediaType: string;
  /** Compressed size from the manifest. */
  size: number;
  open(): Promise<Readable>;
}

export interface LayerStats {
  digest: string;
  mediaType: string;
  size: number;
  uncompressedBytes: number;
  entries: number;
  whiteouts: number;
  kept: number;
  complete: boolean;
}

export interface CollectOptions {
  /** A layer larger than this (compressed or uncompressed) is not read to the end: the scan is incomplete. */
  maxLayerBytes: number;
  /** A wanted file larger than this is not kept: the scan is incomplete. */
  maxFileBytes: number;
  signal?: AbortSignal;
  onProgress?: (progress: { layer: number; layers: number; bytes: number }) => void;
}

export interface CollectResult {
  files: Map<string, CollectedFile>;
  layers: LayerStats[];
  problems: ScanProblem[];
}

const NODE_PACKAGE_JSON = /(^|\/)node_modules\/(@[^/.][^/]*\/)?[^/.][^/]*\/package\.json$/;

/** True for the paths the inventory reads: OS release files, package databases and package metadata. */
export function isInventoryPath(path: string): boolean {
  return (
    path === 'etc/os-release' ||
    path === 'usr/lib/os-release' ||
    path === 'etc/debian_version' ||
    path === 'etc/alpine-release' ||
    path === 'var/lib/dpkg/status' ||
    (path.startsWith('var/lib/dpkg/status.d/') && !path.endsWith('.md5sums')) ||
    path === 'lib/apk/db/installed' ||
    path.endsWith('.dist-info/METADATA') ||
    path.endsWith('.egg-info/PKG-INFO') ||
    (path.endsWith('.egg-info') && path.includes('-packages/')) ||
    NODE_PACKAGE_JSON.test(path)
  );
}

/** Normalises a tar entry name to a relative POSIX path without a trailing slash ("" for the root). */
export function normalizeEntryPath(name: string): string {
  const normalized = posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return normalized === '.' ? '' : normalized;
}

class LimitExceeded extends Error {}

/** What one layer adds and removes, before it is merged over the layers below it. */
interface LayerChanges {
  added: Map<string, CollectedFile>;
  deleted: string[];
  opaque: string[];
  problems: ScanProblem[];
}

/**
 * Reads layers in any order (a `docker save` export holds them in its own order) and merges them in image order at
 * the end, so that whiteouts always apply to the layers below. Problems are reported in layer order whatever the
 * reading order was: the same image gives the same report.
 */
export class LayerCollector {
  private readonly stats: LayerStats[];
  private readonly changes: (LayerChanges | undefined)[];
  private totalBytes = 0;

  constructor(
    private readonly layers: Omit<LayerSource, 'open'>[],
    private readonly options: CollectOptions,
  ) {
    this.stats = layers.map((l) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      uncompressedBytes: 0,
      entries: 0,
      whiteouts: 0,
      kept: 0,
      complete: false,
    }));
    this.changes = layers.map(() => undefined);
  }

  /** False when the layer is declared larger than the limit: it is recorded as not scanned and must not be read. */
  wants(index: number): boolean {
    const layer = this.layers[index]!;
    if (layer.size <= this.options.maxLayerBytes) return true;
    this.changes[index] ??= {
      added: new Map(),
      deleted: [],
      opaque: [],
      problems: [
        {
          ruleId: 'layer-too-large',
          severity: 'medium',
          location: `layer ${index} (${layer.digest})`,
          message: `layer is ${layer.size} bytes compressed, over the limit of ${this.options.maxLayerBytes}: not scanned`,
          incomplete: true,
        },
      ],
    };
    return false;
  }

  /**
   * Reads one layer's stream to the end (or to a limit). A layer that cannot be read is a problem in the report;
   * a digest mismatch and cancellation throw.
   */
  async read(index: number, source: Readable): Promise<void> {
    this.options.signal?.throwIfAborted();
    const layer = this.layers[index]!;
    const stat = this.stats[index]!;
    const changes: LayerChanges = { added: new Map(), deleted: [], opaque: [], problems: [] };
    this.changes[index] = changes;
    try {
      await readLayer(source, layer, index, this.options, {
        onEntry: () => stat.entries++,
        onBytes: (n) => {
          stat.uncompressedBytes += n;
          this.options.onProgress?.({ layer: index, layers: this.layers.length, bytes: (this.totalBytes += n) });
        },
        onWhiteout: (path, isOpaque) => {
          stat.whiteouts++;
          (isOpaque ? changes.opaque : changes.deleted).push(path);
        },
        onFile: (file) => changes.added.set(file.path, file),
        onProblem: (p) => changes.problems.push(p),
      });
      stat.complete = true;
    } catch (err) {
      if (err instanceof ImageScanError || this.options.signal?.aborted) throw err;
      const tooLarge = err instanceof LimitExceeded;
      changes.problems.push({
        ruleId: tooLarge ? 'layer-too-large' : 'layer-unreadable',
        severity: 'medium',
        location: `layer ${index} (${layer.digest})`,
        message: tooLarge
          ? `layer expands to more than ${this.options.maxLayerBytes} bytes: the rest of it was not scanned`
          : `layer could not be read (${(err as Error).message}): its files were not scanned`,
        incomplete: true,
      });
    }
  }

  /** Another layer with the same content (an image may repeat a layer): its result is the one already read. */
  same(index: number, readIndex: number): void {
    const read = this.changes[readIndex];
    if (!read) return;
    const layerDigest = this.layers[index]!.digest;
    this.changes[index] = {
      added: new Map([...read.added].map(([path, file]) => [path, { ...file, layer: index, layerDigest }])),
      deleted: [...read.deleted],
      opaque: [...read.opaque],
      problems: [],
    };
    this.stats[index] = { ...this.stats[readIndex]!, digest: layerDigest };
  }

  /** The merged filesystem's wanted files. A layer never read makes the scan incomplete. */
  finish(): CollectResult {
    const files = new Map<string, CollectedFile>();
    const problems: ScanProblem[] = [];
    for (const [index, changes] of this.changes.entries()) {
      if (!changes) {
        problems.push({
          ruleId: 'layer-unreadable',
          severity: 'medium',
          location: `layer ${index} (${this.layers[index]!.digest})`,
          message: 'layer was not found in the image: its files were not scanned',
          incomplete: true,
        });
        continue;
      }
      problems.push(...changes.problems);
      // Whiteouts hide lower layers only; files the same layer adds stay.
      for (const dir of changes.opaque) removeUnder(files, dir, false);
      for (const path of changes.deleted) removeUnder(files, path, true);
      for (const [path, file] of changes.added) files.set(path, file);
      this.stats[index]!.kept = changes.added.size;
    }
    return { files, layers: this.stats, problems };
  }
}

/**
 * Reads every layer in order into the merged set of wanted files. Whiteouts (`.wh.<name>`) delete a path and what is
 * under it from lower layers; an opaque marker (`.wh..wh..opq`) hides everything below its directory.
 */
export async function collectImageFiles(layers: LayerSource[], options: CollectOptions): Promise<CollectResult> {
  const collector = new LayerCollector(layers, options);
  for (const [index, layer] of layers.entries()) {
    options.signal?.throwIfAborted();
    if (collector.wants(index)) await collector.read(index, await layer.open());
  }
  return collector.finish();
}

function removeUnder(files: Map<string, CollectedFile>, path: string, includeSelf: boolean): void {
  const prefix = path === '' ? '' : `${path}/`;
  for (const key of [...files.keys()]) {
    if ((includeSelf && key === path) || key.startsWith(prefix)) files.delete(key);
  }
}

interface LayerHandlers {
  onEntry(): void;
  onBytes(n: number): void;
  onWhiteout(path: string, opaque: boolean): void;
  onFile(file: CollectedFile): void;
  onProblem(problem: ScanProblem): void;
}

async function readLayer(
  source: Readable,
  layer: Omit<LayerSource, 'open'>,
  index: number,
  options: CollectOptions,
  handlers: LayerHandlers,
): Promise<void> {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  let uncompressed = 0;
  const counting = new Transform({
    transform(chunk: Buffer, _enc, done) {
      uncompressed += chunk.length;
      if (uncompressed > options.maxLayerBytes) return done(new LimitExceeded());
      handlers.onBytes(chunk.length);
      done(null, chunk);
    },
  });
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    handlers.onEntry();
    const path = normalizeEntryPath(header.name);
    const base = posix.basename(path);
    if (base.startsWith('.wh.')) {
      const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
      if (base === '.wh..wh..opq') handlers.onWhiteout(dir, true);
      else handlers.onWhiteout(dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`, false);
      stream.on('end', () => next()).resume();
      return;
    }
    if (header.type !== 'file' || !isInventoryPath(path)) {
      stream.on('end', () => next()).resume();
      return;
    }
    const size = header.size ?? 0;
    if (size > options.maxFileBytes) {
      handlers.onProblem({
        ruleId: 'package-db-too-large',
        severity: 'medium',
        location: `image:${path}`,
        message: `${path} is ${size} bytes, over the limit of ${options.maxFileBytes}: not read`,
        incomplete: true,
      });
      stream.on('end', () => next()).resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
    stream.on('error', (err) => next(err));
    stream.on('end', () => {
      handlers.onFile({ path, layer: index, layerDigest: layer.digest, content: Buffer.concat(chunks) });
      next();
    });
  });
  const { head, rest } = await peek(source, 4);
  const stages: (Transform | Writable)[] = [hashing];
  if (head[0] === 0x1f && head[1] === 0x8b) stages.push(createGunzip());
  else if (head.readUInt32LE(0) === 0xfd2fb528 && head.length >= 4) {
    rest.destroy();
    throw new Error('zstd-compressed layers are not supported by this Node.js (needs 22.15+)');
  }
  await pipeline([rest, ...stages, counting, extract], { signal: options.signal });
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== layer.digest) {
    throw new ImageScanError('DigestMismatch', `layer ${index} should be ${layer.digest} but hashes to ${actual}`);
  }
}

/** Reads the first bytes of a stream to sniff its compression, and gives back a stream with them put back. */
async function peek(source: Readable, bytes: number): Promise<{ head: Buffer; rest: Readable }> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let length = 0;
  let done = false;
  while (length < bytes) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(next.value);
    length += next.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return {
    head: head.length >= 4 ? head : Buffer.concat([head, Buffer.alloc(4 - head.length)]),
    rest: Readable.from(replay()),
  };
}
