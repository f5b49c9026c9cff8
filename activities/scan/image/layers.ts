/**
 * Streams image layers (tar, optionally gzip-compressed) straight from the registry and keeps only the files the
 * inventory needs (package databases, os-release), applying each layer's whiteouts to the layers below it. Nothing
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

/**
 * Reads every layer in order into the merged set of wanted files. Whiteouts (`.wh.<name>`) delete a path and what is
 * under it from lower layers; an opaque marker (`.wh..wh..opq`) hides everything below its directory.
 */
export async function collectImageFiles(layers: LayerSource[], options: CollectOptions): Promise<CollectResult> {
  const files = new Map<string, CollectedFile>();
  const problems: ScanProblem[] = [];
  const stats: LayerStats[] = [];
  let totalBytes = 0;
  for (const [index, layer] of layers.entries()) {
    options.signal?.throwIfAborted();
    const stat: LayerStats = {
      digest: layer.digest,
      mediaType: layer.mediaType,
      size: layer.size,
      uncompressedBytes: 0,
      entries: 0,
      whiteouts: 0,
      kept: 0,
      complete: false,
    };
    stats.push(stat);
    const location = `layer ${index} (${layer.digest})`;
    if (layer.size > options.maxLayerBytes) {
      problems.push({
        ruleId: 'layer-too-large',
        severity: 'medium',
        location,
        message: `layer is ${layer.size} bytes compressed, over the limit of ${options.maxLayerBytes}: not scanned`,
        incomplete: true,
      });
      continue;
    }
    const added = new Map<string, CollectedFile>();
    const deleted: string[] = [];
    const opaque: string[] = [];
    try {
      await readLayer(await layer.open(), layer, index, options, {
        onEntry: () => stat.entries++,
        onBytes: (n) => {
          stat.uncompressedBytes += n;
          options.onProgress?.({ layer: index, layers: layers.length, bytes: (totalBytes += n) });
        },
        onWhiteout: (path, isOpaque) => {
          stat.whiteouts++;
          (isOpaque ? opaque : deleted).push(path);
        },
        onFile: (file) => added.set(file.path, file),
        onProblem: (p) => problems.push(p),
      });
      stat.complete = true;
    } catch (err) {
      if (err instanceof ImageScanError || options.signal?.aborted) throw err;
      const tooLarge = err instanceof LimitExceeded;
      problems.push({
        ruleId: tooLarge ? 'layer-too-large' : 'layer-unreadable',
        severity: 'medium',
        location,
        message: tooLarge
          ? `layer expands to more than ${options.maxLayerBytes} bytes: the rest of it was not scanned`
          : `layer could not be read (${(err as Error).message}): its files were not scanned`,
        incomplete: true,
      });
    }
    // Whiteouts hide lower layers only; files the same layer adds stay.
    for (const dir of opaque) removeUnder(files, dir, false);
    for (const path of deleted) removeUnder(files, path, true);
    for (const [path, file] of added) files.set(path, file);
    stat.kept = added.size;
  }
  return { files, layers: stats, problems };
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
  layer: LayerSource,
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
