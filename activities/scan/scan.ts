/**
 * The model-file scanner: detects each file's format by its bytes and runs that format's checks. Pure domain code
 * (files in, findings out); the gate activity and `mrel scan` both call `scanTargets`.
 *
 * Fail closed: a file whose format is not recognised, that does not parse, or that hits a limit produces a finding
 * whose rule is marked incomplete, and the report says so.
 */
import { FormatError } from '../formats/errors';
import { readTfjsManifest, TFJS_MANIFEST_LIMIT, tfjsShardPath } from '../formats/tfjs';
import type { ScanPolicy } from './policy';
import { DEFAULT_SCAN_POLICY } from './policy-defaults';
import { scanGzip, scanTar, scanZip, type ArchiveKind } from './archive';
import { classifyProtobuf, detectHead, HEAD_BYTES, isTfCheckpointIndex, looksLikeText, type Format } from './detect';
import { finding, isIncomplete, type ScanFinding } from './findings';
import { scanGguf } from './gguf';
import { GlobalPolicy } from './globals';
import { kerasConfigFindings, scanHdf5 } from './keras';
import { scanNpy } from './npy';
import { classifyImports, walkPickle, type PickleWalk } from './pickle';
import { ByteReader, FileSource, SyncFile, type RandomAccess } from './reader';
import { checkSafetensors } from './safetensors';
import { scanText } from './text';
import { isTfjsModel, scanTfjsModel } from './tfjs';

/** One file to scan: its model-relative path (for reports) and where its bytes are. */
export interface ScanTarget {
  path: string;
  file: string;
  size: number;
}

export interface FileReport {
  path: string;
  /** The detected format (e.g. pickle, torch-zip, safetensors, onnx, unknown). */
  format: string;
  size: number;
  findings: ScanFinding[];
  /**
   * Set when the file was taken for a pickle only by its first byte (no PROTO header) and did not walk as one: raw
   * tensor data can start with such a byte. Cleared once a parsed model file names it as tensor data.
   */
  guessedPickle?: boolean;
}

export interface ScanReport {
  files: FileReport[];
  /** Every finding, in file order. */
  findings: ScanFinding[];
  /** True when something was not examined (an incomplete-rule finding exists). */
  incomplete: boolean;
  bytes: number;
}

export interface ScanProgress {
  file: string;
  filesDone: number;
  filesTotal: number;
  bytes: number;
}

export interface ScanOptions {
  policy?: ScanPolicy;
  signal?: AbortSignal;
  onProgress?: (progress: ScanProgress) => void;
}

interface Ctx {
  policy: ScanPolicy;
  globals: GlobalPolicy;
  modelFiles: ReadonlySet<string>;
  /** Files other files name as their raw tensor data (TF.js shards, ONNX external data). */
  references: Set<string>;
  /** TF.js shards whose size is what their model.json declares (see `declaredTfjsShards`). */
  tfjsShards: ReadonlySet<string>;
  signal?: AbortSignal;
  progress: (bytes: number) => void;
}

/** Scans every target and returns per-file results plus all findings. */
export async function scanTargets(targets: ScanTarget[], options: ScanOptions = {}): Promise<ScanReport> {
  const policy = options.policy ?? DEFAULT_SCAN_POLICY;
  const globals = new GlobalPolicy({ allow: policy.allowGlobals, deny: policy.denyGlobals });
  const files: FileReport[] = [];
  let done = 0;
  let bytesBefore = 0;
  let current = '';
  const ctx: Ctx = {
    policy,
    globals,
    modelFiles: new Set(targets.map((t) => t.path)),
    references: new Set(),
    tfjsShards: new Set(),
    signal: options.signal,
    progress: (bytes) =>
      options.onProgress?.({ file: current, filesDone: done, filesTotal: targets.length, bytes: bytesBefore + bytes }),
  };
  ctx.tfjsShards = await declaredTfjsShards(targets, policy.limits.maxJsonBytes, options.signal);
  const unknown: FileReport[] = [];
  for (const target of targets) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('scan cancelled');
    current = target.path;
    ctx.progress(0);
    let report: FileReport;
    try {
      report = await scanFile(target, ctx);
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      report = {
        path: target.path,
        format: 'unreadable',
        size: target.size,
        findings: [finding('scan.read-error', target.path, `could not be scanned: ${(err as Error).message}`)],
      };
    }
    if (report.format === 'unknown' || report.guessedPickle) unknown.push(report);
    files.push(report);
    done++;
    bytesBefore += target.size;
  }
  // Raw tensor data has no format of its own: it is known by being named from a model file we parsed.
  for (const report of unknown) {
    const guessed = report.guessedPickle === true;
    delete report.guessedPickle;
    if (ctx.references.has(report.path) || isSavedModelVariables(report.path, ctx.modelFiles)) {
      report.format = 'tensor-data';
      // Fail closed all the same: a denylisted import in bytes that Python's pickle would run before it reached the
      // part that does not parse stays a finding, whatever the file is named as.
      report.findings = guessed ? report.findings.filter((f) => f.ruleId === 'pickle.dangerous-global') : [];
    } else if (!guessed) {
      report.findings = [
        finding(
          'format.unknown',
          report.path,
          'format not recognised from its bytes: it was not examined (no model file names it as tensor data)',
          { offset: 0 },
        ),
      ];
    }
  }
  const findings = files.flatMap((f) => f.findings);
  return { files, findings, incomplete: findings.some((f) => isIncomplete(f.ruleId)), bytes: bytesBefore };
}

/**
 * The TF.js weight shards among `targets` that are raw tensor data by their model.json: every shard of the group is
 * among the targets and together they hold exactly the bytes the group's weights declare (dtype × shape, quantized
 * weights at their stored width). Such bytes can start like any format's magic (0x80 0x02 is a pickle's PROTO), so
 * they are not sniffed. A shard whose size does not match is sniffed as before: a pickle renamed to a shard name is
 * still walked. Groups with string weights (no fixed width) or a manifest with issues never match.
 */
async function declaredTfjsShards(
  targets: ScanTarget[],
  maxJsonBytes: number,
  signal?: AbortSignal,
): Promise<Set<string>> {
  const sizes = new Map(targets.map((t) => [t.path, t.size]));
  const matched = new Set<string>();
  const mismatched = new Set<string>();
  const limit = Math.min(maxJsonBytes, TFJS_MANIFEST_LIMIT);
  for (const target of targets) {
    if (signal?.aborted) throw signal.reason ?? new Error('scan cancelled');
    if (target.size > limit) continue;
    const json = await readTfjsModelJson(target.file, limit);
    if (json === undefined) continue;
    let manifest;
    try {
      manifest = readTfjsManifest(json, target.path);
    } catch (err) {
      if (err instanceof FormatError) continue;
      throw err;
    }
    if (manifest.issues.length > 0) continue;
    for (const group of manifest.groups) {
      const shards = (group.paths ?? []).map((p) => tfjsShardPath(target.path, p));
      // NaN when a shard is not among the targets or a weight has no fixed width: it equals nothing.
      const held = shards.reduce((n: number, s) => n + ((s === undefined ? undefined : sizes.get(s)) ?? NaN), 0);
      const declared = group.weights.reduce((n, w) => n + (w.type === undefined ? NaN : w.storedBytes), 0);
      const fits = shards.length > 0 && held === declared;
      for (const shard of shards) if (shard !== undefined) (fits ? matched : mismatched).add(shard);
    }
  }
  // A shard two groups disagree about is sniffed.
  for (const shard of mismatched) matched.delete(shard);
  return matched;
}

/**
 * The parsed file when it is JSON with a TF.js weights manifest; undefined otherwise, and when it cannot be read or
 * parsed (the scan proper reports that).
 */
async function readTfjsModelJson(file: string, limit: number): Promise<unknown> {
  let handle: SyncFile;
  try {
    handle = SyncFile.open(file);
  } catch {
    return undefined;
  }
  try {
    const size = handle.size;
    if (size > limit || detectHead(handle.readNow(8192, 0), size) !== 'json') return undefined;
    const bytes = await readAt(handle, 0, size);
    if (!bytes.includes('weightsManifest')) return undefined;
    const json: unknown = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
    return isTfjsModel(json) ? json : undefined;
  } catch {
    return undefined;
  } finally {
    handle.close();
  }
}

/** `<dir>/variables/variables.data-NNNNN-of-NNNNN` beside `<dir>/saved_model.pb` is the checkpoint's tensor data. */
function isSavedModelVariables(path: string, files: ReadonlySet<string>): boolean {
  const m = /^(.*?)(?:^|\/)variables\/variables\.data-\d{5}-of-\d{5}$/.exec(path);
  if (!m) return false;
  const dir = m[1] ? `${m[1]}/` : '';
  return files.has(`${dir}saved_model.pb`) || files.has(`${dir}variables/variables.index`);
}

async function scanFile(target: ScanTarget, ctx: Ctx): Promise<FileReport> {
  const handle = SyncFile.open(target.file);
  const size = handle.size;
  try {
    const head = handle.readNow(HEAD_BYTES, 0);
    const reader = () => new ByteReader(new FileSource(handle, size, 0, head));
    const out = (fmt: string, findings: ScanFinding[]): FileReport => ({
      path: target.path,
      format: fmt,
      size,
      findings,
    });
    // Text is scanned whatever names it: a config or a model.json listed as a shard must not hide a secret or a Lambda.
    if (ctx.tfjsShards.has(target.path) && size === target.size && !looksLikeText(head)) {
      if (detectHead(head, size) !== 'pickle') return out('tfjs-weights', []);
      // Float bytes may begin like a pickle's PROTO opcode. Only a shard that walks as a whole pickle is one (someone
      // may load it with pickle); one that breaks off is tensor data whose first bytes happened to match.
      const walk = await walkPickle(reader(), target.path, pickleOptions(ctx));
      if (walk.findings.some((f) => f.ruleId === 'pickle.parse-error')) return out('tfjs-weights', []);
      return out(walk.kind, pickleFindings(walk, target.path, ctx));
    }
    let format: Format | string = detectHead(head, size);
    if ((format === 'unknown' || format === 'protobuf') && (await isTfCheckpointIndex(handle, size)))
      format = 'tf-checkpoint-index';
    const path = target.path;
    switch (format) {
      case 'empty':
      case 'image':
      case 'tf-checkpoint-index':
        return out(format, []);
      case 'pickle':
      case 'pickle-text': {
        const walk = await walkPickle(reader(), path, pickleOptions(ctx));
        // Only text is text: binary bytes that fail to walk as a pickle are reported as a malformed pickle.
        if (format === 'pickle-text' && !looksLikePickle(walk) && looksLikeText(head))
          return await scanTextFile(target, reader(), ctx, size);
        const report = out(walk.kind, pickleFindings(walk, path, ctx));
        if (format === 'pickle-text' && walk.findings.some((f) => f.ruleId === 'pickle.parse-error')) {
          report.guessedPickle = true;
        }
        return report;
      }
      case 'npy': {
        const result = await scanNpy(reader(), path, pickleOptions(ctx));
        return out('npy', [...result.findings, ...(result.pickle ? pickleFindings(result.pickle, path, ctx) : [])]);
      }
      case 'safetensors': {
        const n = head.readBigUInt64LE(0);
        const result = await checkSafetensors(
          path,
          size,
          n,
          (len) => readAt(handle, 8, len),
          ctx.policy.limits.maxSafetensorsHeaderBytes,
        );
        return out('safetensors', result.findings);
      }
      case 'gguf':
        return out('gguf', await scanGguf(reader(), path, size));
      case 'hdf5':
        return out('hdf5', await scanHdf5(handle, path, size, ctx.policy.limits.maxJsonBytes, ctx.signal));
      case 'zip': {
        const result = await scanZip(target.file, path, ctx.policy.limits, entryScanner(ctx));
        return out(result.format, result.findings);
      }
      case 'tar': {
        const { createReadStream } = await import('node:fs');
        const result = await scanTar(createReadStream(target.file), path, ctx.policy.limits, entryScanner(ctx));
        return out(result.format, result.findings);
      }
      case 'gzip': {
        const result = await scanGzip(target.file, path, size, ctx.policy.limits, entryScanner(ctx));
        return out(result.format, result.findings);
      }
      case 'compressed':
        return out('compressed', [
          finding(
            'format.unknown',
            path,
            'bzip2/xz/zstd/7z/lz4 compressed data is not opened: decompress it before release',
            {
              offset: 0,
            },
          ),
        ]);
      case 'json':
      case 'text':
        return await scanTextFile(target, reader(), ctx, size);
      case 'protobuf':
        return await scanProtobuf(target, handle, size, ctx);
      default:
        return out('unknown', []);
    }
  } finally {
    handle.close();
  }
}

async function scanProtobuf(target: ScanTarget, handle: RandomAccess, size: number, ctx: Ctx): Promise<FileReport> {
  const kind = await classifyProtobuf(handle, size);
  const out = (fmt: string, findings: ScanFinding[]): FileReport => ({
    path: target.path,
    format: fmt,
    size,
    findings,
  });
  if (kind === null || kind === 'protobuf') return out('unknown', []);
  if (kind === 'sentencepiece') return out(kind, []);
  if (size > ctx.policy.limits.maxProtobufBytes) {
    const rule =
      kind === 'onnx' ? 'onnx.invalid' : kind === 'savedmodel' ? 'savedmodel.invalid' : 'keras.invalid-config';
    return out(kind, [
      finding(
        rule,
        target.path,
        `${size} bytes exceeds scan.limits.maxProtobufBytes (${ctx.policy.limits.maxProtobufBytes}): not decoded`,
      ),
    ]);
  }
  const bytes = await readAt(handle, 0, size);
  // The protobuf decoder loads only when a model has a protobuf file: most scans never pay for it.
  const { scanKerasMetadata, scanOnnx, scanSavedModel } = await import('./protobuf');
  if (kind === 'savedmodel') return out(kind, scanSavedModel(bytes, target.path));
  if (kind === 'keras-metadata') return out(kind, scanKerasMetadata(bytes, target.path));
  const onnx = scanOnnx(bytes, target.path, ctx.modelFiles);
  for (const r of onnx.references) ctx.references.add(r);
  return out('onnx', onnx.findings);
}

async function scanTextFile(target: ScanTarget, reader: ByteReader, ctx: Ctx, size: number): Promise<FileReport> {
  const result = await scanText(reader, target.path, {
    parseJson: true,
    maxJsonBytes: ctx.policy.limits.maxJsonBytes,
    secrets: ctx.policy.secrets,
  });
  const findings = [...result.findings];
  let format = result.json === undefined ? 'text' : 'json';
  const json = result.json as Record<string, unknown> | undefined;
  if (json !== undefined && isTfjsModel(json)) {
    format = 'tfjs-model';
    const tfjs = scanTfjsModel(json, target.path, ctx.modelFiles);
    for (const r of tfjs.references) ctx.references.add(r);
    findings.push(...tfjs.findings);
  } else if (json && typeof json === 'object' && !Array.isArray(json)) {
    if (typeof json.class_name === 'string' && 'config' in json) {
      format = 'keras-config';
      findings.push(...kerasConfigFindings(json, target.path));
    }
    if (json.auto_map && typeof json.auto_map === 'object')
      findings.push(
        finding(
          'code.remote-code',
          target.path,
          `auto_map names custom classes (${Object.keys(json.auto_map).join(', ')}): transformers runs the repository's Python with trust_remote_code`,
        ),
      );
  } else if (json === undefined && isPythonSource(target.path, result.head)) {
    format = 'python';
    findings.push(
      finding(
        'code.python-source',
        target.path,
        'Python source: it runs when the model is loaded with trust_remote_code',
      ),
    );
  }
  return { path: target.path, format, size, findings };
}

function isPythonSource(path: string, head: string): boolean {
  return /\.pyw?$/.test(path) || /^#!.*python/.test(head);
}

/** A protocol-0 candidate is a pickle when it parsed, or when it imported something that looks like a module. */
function looksLikePickle(walk: PickleWalk): boolean {
  if (!walk.findings.some((f) => f.ruleId === 'pickle.parse-error')) return true;
  const ident = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
  return [...walk.imports.values()].some((i) => ident.test(i.module) && ident.test(i.name));
}

function pickleOptions(ctx: Ctx) {
  return {
    limits: { maxMemo: ctx.policy.limits.maxPickleMemo, maxStack: ctx.policy.limits.maxPickleStack },
    signal: ctx.signal,
    onProgress: ctx.progress,
  };
}

function pickleFindings(walk: PickleWalk, path: string, ctx: Ctx): ScanFinding[] {
  return [...classifyImports(walk, path, ctx.globals, ctx.policy.strict), ...walk.findings];
}

async function readAt(handle: RandomAccess, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`file ends at byte ${position + done}, expected ${position + length}`);
    done += bytesRead;
  }
  return buf;
}

/** Scans one archive entry from its stream (no random access): the formats that can be checked in one pass. */
function entryScanner(ctx: Ctx) {
  return async (
    reader: ByteReader,
    path: string,
    size: number,
    archive: ArchiveKind,
  ): Promise<{ format: string; findings: ScanFinding[] }> => {
    await reader.fill(HEAD_BYTES);
    const head = reader.buf.subarray(reader.pos, reader.pos + Math.min(HEAD_BYTES, reader.available));
    const format = detectHead(head, size);
    const name = path.slice(path.lastIndexOf('!') + 1);
    switch (format) {
      case 'empty':
      case 'image':
        return { format, findings: [] };
      case 'pickle':
      case 'pickle-text': {
        const walk = await walkPickle(reader, path, pickleOptions(ctx));
        if (format === 'pickle-text' && !looksLikePickle(walk) && looksLikeText(head))
          return { format: 'text', findings: [] };
        const findings = pickleFindings(walk, path, ctx);
        if (archive === 'torch-zip' && /(^|\/)constants\.pkl$/.test(name))
          findings.push(finding('torch.torchscript', path, 'TorchScript archive: its code/ runs under torch.jit.load'));
        return { format: walk.kind, findings };
      }
      case 'npy': {
        const result = await scanNpy(reader, path, pickleOptions(ctx));
        return {
          format,
          findings: [...result.findings, ...(result.pickle ? pickleFindings(result.pickle, path, ctx) : [])],
        };
      }
      case 'safetensors': {
        const n = head.readBigUInt64LE(0);
        await reader.skip(8);
        const result = await checkSafetensors(
          path,
          size,
          n,
          async (len) => {
            const b = await reader.read(len);
            if (!b) throw new Error('entry ends inside the safetensors header');
            return b;
          },
          ctx.policy.limits.maxSafetensorsHeaderBytes,
        );
        return { format, findings: result.findings };
      }
      case 'gguf':
        return { format, findings: size < 0 ? [] : await scanGguf(reader, path, size) };
      case 'json':
      case 'text': {
        const result = await scanText(reader, path, {
          parseJson: format === 'json',
          maxJsonBytes: ctx.policy.limits.maxJsonBytes,
          secrets: ctx.policy.secrets,
        });
        const findings = [...result.findings];
        if (result.json !== undefined && typeof result.json === 'object')
          findings.push(...kerasConfigFindings(result.json, path));
        else if (format === 'json' && archive === 'keras' && name === 'config.json')
          findings.push(finding('keras.invalid-config', path, `config.json does not parse: ${result.jsonError ?? ''}`));
        if (isPythonSource(name, result.head)) {
          const code = archive === 'torch-zip' ? 'torch.torchscript' : 'code.python-source';
          findings.push(
            finding(
              code,
              path,
              archive === 'torch-zip'
                ? 'TorchScript code: it runs under torch.jit.load'
                : 'Python source inside an archive',
            ),
          );
        }
        return { format, findings };
      }
      case 'hdf5':
        // Inside archives HDF5 holds weights (Keras 3 keeps its config in config.json, scanned above).
        return { format, findings: [] };
      case 'zip':
      case 'tar':
      case 'gzip':
      case 'compressed':
        return {
          format,
          findings: [
            finding('archive.nested', path, `a ${format} archive inside an archive: extract it and scan it on its own`),
          ],
        };
      default:
        if (
          archive === 'torch-zip' &&
          /(^|\/)(version|byteorder|serialization_id|\.format_version|\.storage_alignment)$/.test(name)
        )
          return { format: 'metadata', findings: [] };
        if (looksLikeText(head)) return { format: 'text', findings: [] };
        return {
          format: 'unknown',
          findings: [
            finding('format.unknown', path, 'archive entry format not recognised from its bytes: not examined', {
              offset: 0,
            }),
          ],
        };
    }
  };
}
