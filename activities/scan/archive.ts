/**
 * Archives (zip through yauzl, tar through tar-stream, gzip through node:zlib): traversal, links, encryption,
 * compression bombs and sizes are findings, never crashes. Entries are handed to `scanEntry` as streams; an archive
 * is never extracted to disk.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import yauzl from 'yauzl';
import type { ScanLimits } from './policy';
import { finding, type ScanFinding } from './findings';
import { ByteReader } from './reader';

/** What an archive handler asks of the scanner for one entry. */
export type EntryScanner = (
  reader: ByteReader,
  path: string,
  size: number,
  archive: ArchiveKind,
) => Promise<{ format: string; findings: ScanFinding[] }>;

export type ArchiveKind = 'torch-zip' | 'npz' | 'keras' | 'zip' | 'torch-legacy-tar' | 'tar' | 'gzip';

export interface ArchiveResult {
  format: ArchiveKind;
  findings: ScanFinding[];
  entries: number;
}

/** Entries below this uncompressed size are never called bombs, whatever their ratio. */
const BOMB_FLOOR = 1 << 20;

/** Why a name is unsafe to extract, or undefined. Backslashes count as separators (Windows extractors). */
export function unsafeEntryName(name: string): string | undefined {
  const n = name.replace(/\\/g, '/');
  if (n.startsWith('/') || /^[a-zA-Z]:/.test(n)) return 'is an absolute path';
  if (n.includes('\0')) return 'contains a NUL byte';
  let depth = 0;
  for (const part of n.split('/')) {
    if (part === '..') depth--;
    else if (part !== '' && part !== '.') depth++;
    if (depth < 0) return 'climbs out of the extraction directory';
  }
  return undefined;
}

/** torch.save zips: `<root>/data.pkl` plus raw storages under `<root>/data/<key>`. */
function zipKind(names: string[]): ArchiveKind {
  if (names.some((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl')) return 'torch-zip';
  const files = names.filter((n) => !n.endsWith('/'));
  if (files.length > 0 && files.every((n) => n.endsWith('.npy'))) return 'npz';
  if (files.includes('config.json') && files.includes('metadata.json')) return 'keras';
  return 'zip';
}

/** Entries that torch loads as raw tensor bytes (never unpickled), so they need no scanning. */
function isTorchStorage(kind: ArchiveKind, name: string): boolean {
  return kind === 'torch-zip' && /^(?:[^/]+\/)?data\/\d+$/.test(name);
}

export async function scanZip(
  file: string,
  path: string,
  limits: ScanLimits,
  scanEntry: EntryScanner,
): Promise<ArchiveResult> {
  const findings: ScanFinding[] = [];
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(
        file,
        { lazyEntries: true, decodeStrings: false, autoClose: false, validateEntrySizes: true },
        (err, z) => (err ? reject(err) : resolve(z)),
      ),
    );
  } catch (err) {
    return {
      format: 'zip',
      entries: 0,
      findings: [finding('archive.invalid', path, `not a readable zip: ${(err as Error).message}`)],
    };
  }
  try {
    const entries: { entry: yauzl.Entry; name: string; raw: Buffer }[] = [];
    let tooMany = false;
    try {
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (entry: yauzl.Entry) => {
          const raw = entry.fileName as unknown as Buffer;
          const name = raw.toString((entry.generalPurposeBitFlag & 0x800) !== 0 ? 'utf8' : 'latin1');
          entries.push({ entry, name, raw });
          if (entries.length > limits.maxArchiveEntries) {
            tooMany = true;
            resolve();
          } else zip.readEntry();
        });
        zip.on('end', () => resolve());
        zip.on('error', reject);
        zip.readEntry();
      });
    } catch (err) {
      findings.push(finding('archive.invalid', path, `zip central directory is malformed: ${(err as Error).message}`));
      return { format: 'zip', entries: entries.length, findings };
    }
    if (tooMany)
      findings.push(
        finding(
          'archive.too-many-entries',
          path,
          `more than ${limits.maxArchiveEntries} entries (scan.limits.maxArchiveEntries); the rest were not examined`,
        ),
      );
    const kind = zipKind(entries.map((e) => e.name));
    // Overlapping entries: several central records pointing into the same local data (the non-recursive zip bomb).
    const byOffset = [...entries].sort(
      (a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader,
    );
    for (let i = 1; i < byOffset.length; i++) {
      const prev = byOffset[i - 1]!.entry;
      const cur = byOffset[i]!;
      if (cur.entry.relativeOffsetOfLocalHeader < prev.relativeOffsetOfLocalHeader + 30 + prev.compressedSize) {
        findings.push(
          finding(
            'archive.overlapping-entries',
            `${path}!${cur.name}`,
            'shares its bytes with another entry: a zip bomb construction',
            {
              offset: cur.entry.relativeOffsetOfLocalHeader,
            },
          ),
        );
        break;
      }
    }
    const total = entries.reduce((a, e) => a + e.entry.uncompressedSize, 0);
    if (total > limits.maxUncompressedBytes) {
      findings.push(
        finding(
          'archive.too-large',
          path,
          `entries expand to ${total} bytes, over the ${limits.maxUncompressedBytes}-byte limit (scan.limits.maxUncompressedBytes)`,
        ),
      );
      return { format: kind, entries: entries.length, findings };
    }
    for (const { entry, name, raw } of entries) {
      const where = `${path}!${name}`;
      const unsafe = unsafeEntryName(name);
      if (unsafe)
        findings.push(finding('archive.path-traversal', where, `entry name ${JSON.stringify(name)} ${unsafe}`));
      // Streaming extractors go by the local header, the scanner (like zipfile) by the central directory.
      if (!localNameMatches(file, entry.relativeOffsetOfLocalHeader, raw))
        findings.push(
          finding(
            'archive.invalid',
            where,
            'its local header names it differently from the central directory: extractors disagree on what it is',
            { offset: entry.relativeOffsetOfLocalHeader },
          ),
        );
      const unixMode = (entry.externalFileAttributes >>> 16) & 0o170000;
      if (entry.versionMadeBy >> 8 === 3 && unixMode === 0o120000) {
        findings.push(
          finding('archive.symlink', where, 'entry is a symbolic link: extracting it can redirect later writes'),
        );
        continue;
      }
      if (name.endsWith('/')) continue;
      if ((entry.generalPurposeBitFlag & 1) !== 0) {
        findings.push(finding('archive.encrypted', where, 'entry is encrypted: its content could not be examined'));
        continue;
      }
      const ratio = entry.uncompressedSize / Math.max(1, entry.compressedSize);
      if (entry.uncompressedSize > BOMB_FLOOR && ratio > limits.maxCompressionRatio) {
        findings.push(
          finding(
            'archive.compression-ratio',
            where,
            `${entry.compressedSize} bytes expand to ${entry.uncompressedSize} (${Math.round(ratio)}:1, limit ${limits.maxCompressionRatio}:1): not decompressed`,
          ),
        );
        continue;
      }
      if (isTorchStorage(kind, name)) continue;
      let stream: Readable;
      try {
        stream = await new Promise<Readable>((resolve, reject) =>
          zip.openReadStream(entry, (err, s) => (err ? reject(err) : resolve(s))),
        );
      } catch (err) {
        findings.push(finding('archive.invalid', where, `entry cannot be read: ${(err as Error).message}`));
        continue;
      }
      const reader = new ByteReader(stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
      try {
        const result = await scanEntry(reader, where, entry.uncompressedSize, kind);
        findings.push(...result.findings);
      } catch (err) {
        if (isAbort(err)) throw err;
        findings.push(finding('archive.invalid', where, `entry is corrupt: ${(err as Error).message}`));
      } finally {
        stream.destroy();
      }
    }
    return { format: kind, entries: entries.length, findings };
  } finally {
    zip.close();
  }
}

/** A tar (plain, or the stream of a gzip). Legacy torch.save tars hold `pickle`, `storages` and `tensors`. */
export async function scanTar(
  source: Readable,
  path: string,
  limits: ScanLimits,
  scanEntry: EntryScanner,
): Promise<ArchiveResult> {
  const findings: ScanFinding[] = [];
  // tar-stream loads only for tar archives (legacy torch.save files, model tarballs).
  const { extract: tarExtract } = (await import('tar-stream')).default;
  const extract = tarExtract();
  let kind: ArchiveKind = 'tar';
  let entries = 0;
  let total = 0;
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  try {
    for await (const entry of extract) {
      entries++;
      const name = entry.header.name;
      const where = `${path}!${name}`;
      if (entries > limits.maxArchiveEntries) {
        findings.push(
          finding(
            'archive.too-many-entries',
            path,
            `more than ${limits.maxArchiveEntries} entries (scan.limits.maxArchiveEntries); the rest were not examined`,
          ),
        );
        entry.resume();
        break;
      }
      if (name === 'pickle' || name === 'sys_info') kind = 'torch-legacy-tar';
      const unsafe = unsafeEntryName(name);
      if (unsafe)
        findings.push(finding('archive.path-traversal', where, `entry name ${JSON.stringify(name)} ${unsafe}`));
      const type = entry.header.type;
      if (type === 'symlink' || type === 'link') {
        findings.push(
          finding(
            'archive.symlink',
            where,
            `entry is a ${type === 'link' ? 'hard' : 'symbolic'} link to ${JSON.stringify(entry.header.linkname ?? '')}`,
          ),
        );
        entry.resume();
        continue;
      }
      const size = entry.header.size ?? 0;
      total += size;
      if (total > limits.maxUncompressedBytes) {
        findings.push(
          finding(
            'archive.too-large',
            path,
            `entries exceed ${limits.maxUncompressedBytes} bytes (scan.limits.maxUncompressedBytes)`,
          ),
        );
        entry.resume();
        break;
      }
      if (type !== 'file' && type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const reader = new ByteReader(entry[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
      try {
        const result = await scanEntry(reader, where, size, kind);
        findings.push(...result.findings);
      } catch (err) {
        if (isAbort(err)) throw err;
        findings.push(finding('archive.invalid', where, `entry is corrupt: ${(err as Error).message}`));
      }
      await reader.drain();
    }
  } catch (err) {
    if (isAbort(err)) throw err;
    findings.push(finding('archive.invalid', path, `tar stream is malformed: ${(err as Error).message}`));
  } finally {
    source.destroy();
  }
  return { format: kind, findings, entries };
}

class BombError extends Error {}

/**
 * A gzip file: its decompressed stream is a tar (scanned entry by entry) or a single stream (scanned as one entry).
 * Decompression stops once the output passes the ratio or size limit.
 */
export async function scanGzip(
  file: string,
  path: string,
  size: number,
  limits: ScanLimits,
  scanEntry: EntryScanner,
): Promise<ArchiveResult> {
  const cap = Math.min(limits.maxUncompressedBytes, Math.max(BOMB_FLOOR, size * limits.maxCompressionRatio));
  const inflated = (): Readable => {
    const gunzip = createGunzip();
    let out = 0;
    gunzip.on('data', (chunk: Buffer) => {
      out += chunk.length;
      if (out > cap) gunzip.destroy(new BombError(`expands past ${cap} bytes`));
    });
    return createReadStream(file).pipe(gunzip);
  };
  const bomb = (): ScanFinding =>
    finding(
      'archive.compression-ratio',
      path,
      `${size} compressed bytes expand past ${cap} (limit ${limits.maxCompressionRatio}:1 or scan.limits.maxUncompressedBytes): decompression stopped`,
    );
  try {
    // Peek at the decompressed start to choose tar or single stream.
    const peek = inflated();
    let head = Buffer.alloc(0);
    for await (const chunk of peek as AsyncIterable<Buffer>) {
      head = Buffer.concat([head, chunk]);
      if (head.length >= 512) break;
    }
    peek.destroy();
    if (head.subarray(257, 262).toString('latin1') === 'ustar') {
      const result = await scanTar(inflated(), path, limits, scanEntry);
      if (result.findings.some((f) => f.message.includes(`expands past ${cap}`))) result.findings.push(bomb());
      return { ...result, format: 'gzip' };
    }
    const stream = inflated();
    const reader = new ByteReader(stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
    try {
      const inner = await scanEntry(reader, `${path}!`, -1, 'gzip');
      return { format: 'gzip', entries: 1, findings: inner.findings };
    } finally {
      stream.destroy();
    }
  } catch (err) {
    if (err instanceof BombError) return { format: 'gzip', entries: 0, findings: [bomb()] };
    if (isAbort(err)) throw err;
    return {
      format: 'gzip',
      entries: 0,
      findings: [finding('archive.invalid', path, `gzip stream is corrupt: ${(err as Error).message}`)],
    };
  }
}

/** True when the local file header at `offset` carries exactly the central directory's name bytes. */
function localNameMatches(file: string, offset: number, name: Buffer): boolean {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(30 + name.length);
    const n = readSync(fd, header, 0, header.length, offset);
    if (n < header.length || header.readUInt32LE(0) !== 0x04034b50) return false;
    return header.readUInt16LE(26) === name.length && header.subarray(30).equals(name);
  } finally {
    closeSync(fd);
  }
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError' || (err as { name?: string })?.name === 'CancelledFailure';
}
