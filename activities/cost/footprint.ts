/**
 * The model's footprint read from its weight headers: parameter count and bytes per dtype, from safetensors headers,
 * tfjs weights manifests (model.json, with quantization) and GGUF tensor infos. Sizes come from the headers, never
 * from file names; a file is recognised by its content (magic bytes, header shape), except that only `*.json` files
 * are parsed as possible tfjs manifests. Reads are bounded: only headers are read, never the tensors.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ArtifactFile } from '../../contract/types';
import { ggmlType } from '../formats/gguf-types';
import { CostError } from './errors';

export type WeightFormat = 'safetensors' | 'tfjs' | 'gguf';

export interface DtypeFootprint {
  parameters: number;
  /** Bytes as stored in the files. */
  bytes: number;
}

export interface WeightFileFootprint {
  path: string;
  format: WeightFormat;
  tensors: number;
  parameters: number;
  storedBytes: number;
  /** Bytes the weights take once loaded (tfjs dequantizes to float32; the other formats load as stored). */
  memoryBytes: number;
  byDtype: Record<string, DtypeFootprint>;
}

export interface LlmShape {
  architecture: string;
  contextLength?: number;
  /** KV-cache bytes per token of context (f16 keys and values over all layers), when the header says enough. */
  kvCacheBytesPerToken?: number;
}

export interface ModelFootprint {
  parameters: number;
  storedBytes: number;
  /** Loaded weights, plus files no reader recognised (counted at their size, to err on the side of more memory). */
  memoryBytes: number;
  byDtype: Record<string, DtypeFootprint>;
  formats: WeightFormat[];
  files: WeightFileFootprint[];
  /** Files over {@link UNREAD_THRESHOLD_BYTES} that are no weight format this reader knows; counted at file size. */
  unread: { path: string; size: number }[];
  llm?: LlmShape;
}

export interface FootprintOptions {
  signal?: AbortSignal;
  onProgress?: (progress: { file: string; done: number; total: number }) => void;
}

/** safetensors caps its header at 100 MB; so do we. */
export const SAFETENSORS_HEADER_LIMIT = 100_000_000;
/** GGUF metadata holds tokenizer vocabularies (a few MB); anything far beyond is not a header we should read. */
export const GGUF_HEADER_LIMIT = 256 * 1024 * 1024;
export const TFJS_MANIFEST_LIMIT = 64 * 1024 * 1024;
/** Smaller unrecognised files (configs, tokenizers, licences) do not move a memory estimate. */
export const UNREAD_THRESHOLD_BYTES = 1024 * 1024;

/**
 * Reads the footprint of every weight file in `files`. `locate` maps a manifest entry to the path of its bytes (the
 * artifact store in the gate, a model directory in the CLI). Throws CostError('UnreadableModel') when a weight header
 * is corrupt or no weight file is found at all.
 */
export async function readFootprint(
  files: ArtifactFile[],
  locate: (file: ArtifactFile) => string,
  options: FootprintOptions = {},
): Promise<ModelFootprint> {
  const results: WeightFileFootprint[] = [];
  const covered = new Set<string>();
  const candidates: ArtifactFile[] = [];
  let llm: LlmShape | undefined;
  const byPath = new Map(files.map((f) => [f.path, f]));
  let done = 0;
  // Manifests first, so that their shards (raw tensor bytes) are never sniffed as another format.
  const ordered = [...files.filter((f) => f.path.endsWith('.json')), ...files.filter((f) => !f.path.endsWith('.json'))];
  for (const file of ordered) {
    options.signal?.throwIfAborted();
    options.onProgress?.({ file: file.path, done, total: files.length });
    done += 1;
    if (covered.has(file.path)) continue;
    const path = locate(file);
    const magic = await readPrefix(path, 16);
    if (file.path.endsWith('.json')) {
      const tfjs = magic.toString('utf8').trimStart().startsWith('{')
        ? await readTfjsManifest(path, file, byPath)
        : undefined;
      if (tfjs) {
        results.push(tfjs.footprint);
        covered.add(file.path);
        for (const shard of tfjs.shards) covered.add(shard);
      } else {
        candidates.push(file);
      }
    } else if (magic.length >= 4 && magic.toString('latin1', 0, 4) === 'GGUF') {
      const gguf = await readGguf(path, file);
      results.push(gguf.footprint);
      llm ??= gguf.llm;
      covered.add(file.path);
    } else if (looksLikeSafetensors(magic, file.size)) {
      results.push(await readSafetensors(path, file));
      covered.add(file.path);
    } else {
      candidates.push(file);
    }
  }
  const unread = candidates
    .filter((f) => !covered.has(f.path) && f.size > UNREAD_THRESHOLD_BYTES)
    .map((f) => ({ path: f.path, size: f.size }));
  if (results.length === 0) {
    const listed = files.map((f) => f.path).join(', ');
    throw new CostError(
      'UnreadableModel',
      `the model's size cannot be read: no safetensors, GGUF or tfjs model.json among its files (${listed}); ship weights in one of these formats`,
    );
  }
  const byDtype: Record<string, DtypeFootprint> = {};
  for (const r of results) {
    for (const [dtype, d] of Object.entries(r.byDtype)) {
      const sum = (byDtype[dtype] ??= { parameters: 0, bytes: 0 });
      sum.parameters += d.parameters;
      sum.bytes += d.bytes;
    }
  }
  const unreadBytes = unread.reduce((s, f) => s + f.size, 0);
  return {
    parameters: sum(results.map((r) => r.parameters)),
    storedBytes: sum(results.map((r) => r.storedBytes)),
    memoryBytes: sum(results.map((r) => r.memoryBytes)) + unreadBytes,
    byDtype,
    formats: [...new Set(results.map((r) => r.format))].sort(),
    files: results,
    unread,
    ...(llm ? { llm } : {}),
  };
}

function sum(values: number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

async function readPrefix(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function unreadable(file: ArtifactFile, why: string): CostError {
  return new CostError('UnreadableModel', `${file.path}: ${why}; the model's size cannot be read`);
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
}

// ---------------------------------------------------------------------------------------------------------------
// safetensors: u64 little-endian header length, then that many bytes of JSON: name → {dtype, shape, data_offsets}.

const SAFETENSORS_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
  C64: 8,
};

function looksLikeSafetensors(prefix: Buffer, size: number): boolean {
  if (prefix.length < 9) return false;
  const headerLength = prefix.readBigUInt64LE(0);
  return headerLength >= 2n && headerLength <= BigInt(size - 8) && prefix[8] === 0x7b; // '{'
}

async function readSafetensors(path: string, file: ArtifactFile): Promise<WeightFileFootprint> {
  const fh = await open(path, 'r');
  let header: unknown;
  let headerLength: number;
  try {
    const lengthBuf = Buffer.alloc(8);
    await fh.read(lengthBuf, 0, 8, 0);
    headerLength = Number(lengthBuf.readBigUInt64LE(0));
    if (headerLength > SAFETENSORS_HEADER_LIMIT) {
      throw unreadable(
        file,
        `safetensors header of ${headerLength} bytes exceeds the ${SAFETENSORS_HEADER_LIMIT}-byte limit`,
      );
    }
    const buf = Buffer.alloc(headerLength);
    const { bytesRead } = await fh.read(buf, 0, headerLength, 8);
    if (bytesRead < headerLength) throw unreadable(file, 'safetensors header is truncated');
    try {
      header = JSON.parse(buf.toString('utf8'));
    } catch (err) {
      throw unreadable(file, `safetensors header is not JSON (${(err as Error).message})`);
    }
  } finally {
    await fh.close();
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw unreadable(file, 'safetensors header is not a JSON object');
  }
  const byDtype: Record<string, DtypeFootprint> = {};
  let parameters = 0;
  let storedBytes = 0;
  let tensors = 0;
  let dataEnd = 0;
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    // A corrupt header can hold anything: a non-object entry is unreadable, not a TypeError that Temporal retries.
    if (typeof info !== 'object' || info === null) throw unreadable(file, `tensor "${name}" is not an object`);
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const width = typeof t.dtype === 'string' ? SAFETENSORS_DTYPE_BYTES[t.dtype] : undefined;
    if (width === undefined) throw unreadable(file, `tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!validShape(t.shape)) throw unreadable(file, `tensor "${name}" has an invalid shape`);
    const offsets = t.data_offsets;
    if (!validShape(offsets) || offsets.length !== 2 || (offsets[1] as number) < (offsets[0] as number)) {
      throw unreadable(file, `tensor "${name}" has invalid data_offsets`);
    }
    const count = product(t.shape);
    const bytes = (offsets[1] as number) - (offsets[0] as number);
    if (bytes !== count * width) {
      throw unreadable(
        file,
        `tensor "${name}" spans ${bytes} bytes but ${t.dtype}${JSON.stringify(t.shape)} needs ${count * width}`,
      );
    }
    dataEnd = Math.max(dataEnd, offsets[1] as number);
    const d = (byDtype[t.dtype as string] ??= { parameters: 0, bytes: 0 });
    d.parameters += count;
    d.bytes += bytes;
    parameters += count;
    storedBytes += bytes;
    tensors += 1;
  }
  if (8 + headerLength + dataEnd > file.size) {
    throw unreadable(file, `tensors end at byte ${8 + headerLength + dataEnd} but the file has ${file.size} bytes`);
  }
  return {
    path: file.path,
    format: 'safetensors',
    tensors,
    parameters,
    storedBytes,
    memoryBytes: storedBytes,
    byDtype,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// tfjs: model.json with weightsManifest [{paths, weights: [{name, shape, dtype, quantization?}]}].

const TFJS_DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
const TFJS_QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

interface TfjsWeight {
  name?: unknown;
  shape?: unknown;
  dtype?: unknown;
  quantization?: { dtype?: unknown } | null;
}

async function readTfjsManifest(
  path: string,
  file: ArtifactFile,
  byPath: Map<string, ArtifactFile>,
): Promise<{ footprint: WeightFileFootprint; shards: string[] } | undefined> {
  if (file.size > TFJS_MANIFEST_LIMIT) return undefined;
  const fh = await open(path, 'r');
  let doc: unknown;
  try {
    const buf = Buffer.alloc(file.size);
    await fh.read(buf, 0, file.size, 0);
    doc = JSON.parse(buf.toString('utf8'));
  } catch {
    // Not JSON after all (or not ours to judge): some other file that merely starts with a brace.
    return undefined;
  } finally {
    await fh.close();
  }
  const manifest = (doc as { weightsManifest?: unknown } | null)?.weightsManifest;
  if (!Array.isArray(manifest)) return undefined;
  const dir = posix.dirname(file.path);
  const byDtype: Record<string, DtypeFootprint> = {};
  const shards: string[] = [];
  let parameters = 0;
  let storedBytes = 0;
  let memoryBytes = 0;
  let tensors = 0;
  let shardBytes = 0;
  manifest.forEach((group: { paths?: unknown; weights?: unknown }, g) => {
    if (!Array.isArray(group?.paths) || !Array.isArray(group.weights)) {
      throw unreadable(file, `weightsManifest[${g}] needs paths and weights arrays`);
    }
    for (const p of group.paths) {
      const shard = posix.normalize(posix.join(dir, String(p)));
      const entry = byPath.get(shard);
      if (!entry)
        throw unreadable(file, `weightsManifest[${g}] names shard "${shard}", which is not among the model's files`);
      shards.push(shard);
      shardBytes += entry.size;
    }
    (group.weights as TfjsWeight[]).forEach((w, i) => {
      const at = `weightsManifest[${g}].weights[${i}]`;
      if (typeof w !== 'object' || w === null) throw unreadable(file, `${at} is not an object`);
      const width = typeof w.dtype === 'string' ? TFJS_DTYPE_BYTES[w.dtype] : undefined;
      if (width === undefined) {
        // Strings have no fixed width; they are vocabularies, not parameters.
        if (w.dtype === 'string') return;
        throw unreadable(file, `${at} has unknown dtype ${JSON.stringify(w.dtype)}`);
      }
      if (!validShape(w.shape)) throw unreadable(file, `${at} has an invalid shape`);
      const count = product(w.shape);
      let stored = count * width;
      let key = w.dtype as string;
      if (w.quantization !== undefined) {
        const qWidth = typeof w.quantization?.dtype === 'string' ? TFJS_QUANT_BYTES[w.quantization.dtype] : undefined;
        if (qWidth === undefined) {
          throw unreadable(file, `${at}.quantization has unknown dtype ${JSON.stringify(w.quantization?.dtype)}`);
        }
        stored = count * qWidth;
        key = `${w.dtype as string}<-${w.quantization?.dtype as string}`;
      }
      const d = (byDtype[key] ??= { parameters: 0, bytes: 0 });
      d.parameters += count;
      d.bytes += stored;
      parameters += count;
      storedBytes += stored;
      memoryBytes += count * width;
      tensors += 1;
    });
  });
  if (storedBytes > shardBytes) {
    throw unreadable(file, `the weights need ${storedBytes} bytes but the shards hold only ${shardBytes}`);
  }
  return {
    footprint: { path: file.path, format: 'tfjs', tensors, parameters, storedBytes, memoryBytes, byDtype },
    shards,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// GGUF (v2, v3): magic, version, tensor count, metadata count, metadata key/values, then tensor infos
// {name, n_dims, dims[], ggml type, offset}. Block sizes per ggml type from the shared ggml type table.

/** Fixed widths of GGUF metadata value types; 8 (string) and 9 (array) are variable. */
const GGUF_VALUE_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const GGUF_STRING = 8;
const GGUF_ARRAY = 9;

/** Reads forward through a file in chunks, never past `limit` bytes from the start. */
class BoundedReader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
    private readonly limit: number,
    private readonly file: ArtifactFile,
  ) {}

  private async need(n: number): Promise<number> {
    const end = this.pos + n;
    if (end > this.limit) throw unreadable(this.file, `GGUF header exceeds the ${this.limit}-byte limit`);
    if (end > this.size) throw unreadable(this.file, 'GGUF header is truncated');
    if (this.pos < this.bufStart || end > this.bufStart + this.buf.length) {
      const length = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      const buf = Buffer.alloc(length);
      const { bytesRead } = await this.fh.read(buf, 0, length, this.pos);
      this.buf = buf.subarray(0, bytesRead);
      this.bufStart = this.pos;
      if (bytesRead < n) throw unreadable(this.file, 'GGUF header is truncated');
    }
    const at = this.pos - this.bufStart;
    this.pos = end;
    return at;
  }

  // `need` may replace the buffer: read `this.buf` only after it has resolved.
  async u32(): Promise<number> {
    const at = await this.need(4);
    return this.buf.readUInt32LE(at);
  }

  async u64(): Promise<number> {
    const at = await this.need(8);
    const value = this.buf.readBigUInt64LE(at);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw unreadable(this.file, `GGUF value ${value} is out of range`);
    return Number(value);
  }

  async string(): Promise<string> {
    const length = await this.u64();
    const at = await this.need(length);
    return this.buf.toString('utf8', at, at + length);
  }

  async skip(n: number): Promise<void> {
    if (this.pos + n > this.limit) throw unreadable(this.file, `GGUF header exceeds the ${this.limit}-byte limit`);
    this.pos += n;
  }

  /** Reads a scalar metadata value (numbers and strings), or skips an array. */
  async value(type: number): Promise<number | string | boolean | undefined> {
    if (type === GGUF_STRING) return this.string();
    if (type === GGUF_ARRAY) {
      const itemType = await this.u32();
      const count = await this.u64();
      if (itemType === GGUF_STRING) {
        for (let i = 0; i < count; i++) await this.skip(await this.u64());
      } else {
        const width = GGUF_VALUE_BYTES[itemType];
        if (width === undefined) throw unreadable(this.file, `GGUF array of unknown value type ${itemType}`);
        await this.skip(width * count);
      }
      return undefined;
    }
    const width = GGUF_VALUE_BYTES[type];
    if (width === undefined) throw unreadable(this.file, `GGUF metadata of unknown value type ${type}`);
    const at = await this.need(width);
    switch (type) {
      case 0:
        return this.buf.readUInt8(at);
      case 1:
        return this.buf.readInt8(at);
      case 2:
        return this.buf.readUInt16LE(at);
      case 3:
        return this.buf.readInt16LE(at);
      case 4:
        return this.buf.readUInt32LE(at);
      case 5:
        return this.buf.readInt32LE(at);
      case 6:
        return this.buf.readFloatLE(at);
      case 7:
        return this.buf.readUInt8(at) !== 0;
      case 12:
        return this.buf.readDoubleLE(at);
      default:
        return Number(type === 11 ? this.buf.readBigInt64LE(at) : this.buf.readBigUInt64LE(at));
    }
  }
}

async function readGguf(path: string, file: ArtifactFile): Promise<{ footprint: WeightFileFootprint; llm?: LlmShape }> {
  const fh = await open(path, 'r');
  try {
    const r = new BoundedReader(fh, file.size, GGUF_HEADER_LIMIT, file);
    await r.u32(); // magic, already checked
    const version = await r.u32();
    if (version !== 2 && version !== 3) throw unreadable(file, `GGUF version ${version} is not supported (2 or 3)`);
    const tensorCount = await r.u64();
    const kvCount = await r.u64();
    const meta = new Map<string, number | string | boolean>();
    for (let i = 0; i < kvCount; i++) {
      const key = await r.string();
      const value = await r.value(await r.u32());
      if (value !== undefined) meta.set(key, value);
    }
    const byDtype: Record<string, DtypeFootprint> = {};
    let parameters = 0;
    let storedBytes = 0;
    for (let i = 0; i < tensorCount; i++) {
      const name = await r.string();
      const dims = await r.u32();
      if (dims > 8) throw unreadable(file, `GGUF tensor "${name}" has ${dims} dimensions`);
      const shape: number[] = [];
      for (let d = 0; d < dims; d++) shape.push(await r.u64());
      const typeId = await r.u32();
      await r.u64(); // offset
      const type = ggmlType(typeId);
      if (!type) throw unreadable(file, `GGUF tensor "${name}" has unknown ggml type ${typeId}`);
      const { name: typeName, blockSize: blockElements, bytesPerBlock: blockBytes } = type;
      const count = product(shape);
      if (count % blockElements !== 0) {
        throw unreadable(
          file,
          `GGUF tensor "${name}" has ${count} elements, not a multiple of ${typeName}'s block of ${blockElements}`,
        );
      }
      const bytes = (count / blockElements) * blockBytes;
      const d = (byDtype[typeName] ??= { parameters: 0, bytes: 0 });
      d.parameters += count;
      d.bytes += bytes;
      parameters += count;
      storedBytes += bytes;
    }
    if (r.pos + storedBytes > file.size) {
      throw unreadable(
        file,
        `GGUF tensors need ${storedBytes} bytes after the header but the file has ${file.size - r.pos}`,
      );
    }
    return {
      footprint: {
        path: file.path,
        format: 'gguf',
        tensors: tensorCount,
        parameters,
        storedBytes,
        // llama.cpp and its kin serve GGUF weights as stored (memory-mapped, quantized).
        memoryBytes: storedBytes,
        byDtype,
      },
      llm: llmShape(meta),
    };
  } finally {
    await fh.close();
  }
}

function llmShape(meta: Map<string, number | string | boolean>): LlmShape | undefined {
  const arch = meta.get('general.architecture');
  if (typeof arch !== 'string') return undefined;
  const num = (key: string): number | undefined => {
    const v = meta.get(`${arch}.${key}`);
    return typeof v === 'number' && v > 0 ? v : undefined;
  };
  const layers = num('block_count');
  const embedding = num('embedding_length');
  const heads = num('attention.head_count');
  const kvHeads = num('attention.head_count_kv') ?? heads;
  const contextLength = num('context_length');
  const shape: LlmShape = { architecture: arch, ...(contextLength ? { contextLength } : {}) };
  if (layers && embedding && heads && kvHeads) {
    // Keys and values, per layer, per KV head of width embedding/heads, in f16.
    shape.kvCacheBytesPerToken = 2 * layers * kvHeads * (embedding / heads) * 2;
  }
  return shape;
}
