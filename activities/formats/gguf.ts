/**
 * GGUF (llama.cpp, versions 1 to 3): magic, version, tensor and metadata counts, metadata key/values, tensor infos
 * {name, dims, ggml type, offset}, then the aligned data section. Every length is checked against the file before it
 * is trusted and tensors are sized from the one ggml type table, so the scanner and the cost footprint read the same
 * tensors with the same byte sizes. Tensor data is never read.
 */
import { FormatError, quote } from './errors';
import { ggmlType, type GgmlType } from './gguf-types';
import type { ByteSource } from './source';

const MAX_COUNT = 1n << 24n;
const MAX_STRING = 64 << 20;
/** GGML_MAX_DIMS */
const MAX_DIMS = 4;
/** Arrays of arrays nest this deep at most; no writer nests at all. */
const MAX_ARRAY_DEPTH = 4;
const STRING = 8;
const ARRAY = 9;
/** Fixed widths of the metadata value types; 8 (string) and 9 (array) are variable. */
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export type GgufValue = number | bigint | boolean | string;

export interface GgufTensor {
  name: string;
  shape: bigint[];
  elements: bigint;
  typeId: number;
  /** Undefined for a ggml type id that no current runtime knows. */
  type: GgmlType | undefined;
  /** Offset relative to the data section. */
  offset: bigint;
  /** Bytes of data (0n when the type is unknown). */
  bytes: bigint;
  /** Where its tensor info starts in the file. */
  at: number;
}

export interface GgufMetadataEntry {
  key: string;
  /** Scalars always; strings only for keys the caller asked to keep; arrays never. */
  value: GgufValue | undefined;
  /** Where the value starts in the file. */
  at: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  metadata: GgufMetadataEntry[];
  tensors: GgufTensor[];
  /** Absolute offset of the data section (the end of the header, aligned). */
  dataStart: bigint;
}

export interface GgufReadOptions {
  /** String values to keep, by key (other strings are skipped, not read). */
  keepString?: (key: string) => boolean;
  /** The header must end within this many bytes of the start. */
  maxHeaderBytes?: number;
  /** Told each metadata entry as it is read: what was read before a later part fails to parse is not lost. */
  onMetadata?: (entry: GgufMetadataEntry) => void;
  /** Told each tensor info as it is read. */
  onTensor?: (tensor: GgufTensor) => void;
}

/** True when the bytes start with the GGUF magic. */
export function isGguf(head: Buffer): boolean {
  return head.length >= 4 && head.toString('latin1', 0, 4) === 'GGUF';
}

/** Reads the header from `source`, positioned at the start of a file of `size` bytes. */
export async function readGgufHeader(
  source: ByteSource,
  file: string,
  size: number,
  options: GgufReadOptions = {},
): Promise<GgufHeader> {
  const fail = (reason: string, at: number): never => {
    throw new FormatError('gguf', file, at, reason);
  };
  const limit = Math.min(size, options.maxHeaderBytes ?? Number.MAX_SAFE_INTEGER);
  const room = (at: number, n: bigint | number, what: string): void => {
    if (BigInt(at) + BigInt(n) <= BigInt(limit)) return;
    if (limit < size) fail(`GGUF header exceeds the ${limit}-byte limit`, at);
    fail(`GGUF header is truncated (${what} runs past the end of the file)`, at);
  };
  const need = async (n: number): Promise<Buffer> => {
    const at = source.offset;
    room(at, n, `a ${n}-byte field`);
    const b = await source.read(n);
    if (!b) return fail('GGUF header is truncated', at);
    return b;
  };
  const u32 = async (): Promise<number> => (await need(4)).readUInt32LE(0);
  const u64 = async (): Promise<bigint> => (await need(8)).readBigUInt64LE(0);
  const magic = await need(4);
  if (!isGguf(magic)) fail('the file does not start with the GGUF magic', 0);
  const version = await u32();
  if (version < 1 || version > 3) fail(`unknown GGUF version ${version} (1 to 3 are known)`, 4);
  const count = async (): Promise<bigint> => (version === 1 ? BigInt(await u32()) : await u64());
  const tensorCount = await count();
  const kvCount = await count();
  if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT)
    fail(`implausible counts: ${tensorCount} tensors, ${kvCount} metadata entries`, 8);
  const str = async (keep: boolean): Promise<string> => {
    const at = source.offset;
    const n = await count();
    if (n > BigInt(MAX_STRING)) fail(`a string of ${n} bytes is implausible`, at);
    room(source.offset, n, `a string of ${n} bytes`);
    if (!keep) {
      if (!(await source.skip(Number(n)))) fail('GGUF header is truncated (the file ends inside a string)', at);
      return '';
    }
    return (await need(Number(n))).toString('utf8');
  };
  const value = async (type: number, keep: boolean, depth: number): Promise<GgufValue | undefined> => {
    const at = source.offset;
    if (type === STRING) return str(keep);
    if (type === ARRAY) {
      if (depth >= MAX_ARRAY_DEPTH) fail(`arrays nested more than ${MAX_ARRAY_DEPTH} deep`, at);
      const elem = await u32();
      const n = await count();
      if (n > MAX_COUNT * 16n) fail(`an array of ${n} elements is implausible`, at);
      const fixed = SCALAR_BYTES[elem];
      if (fixed !== undefined) {
        room(source.offset, n * BigInt(fixed), `an array of ${n} elements`);
        if (!(await source.skip(Number(n) * fixed)))
          fail('GGUF header is truncated (the file ends inside an array)', at);
      } else if (elem === STRING || elem === ARRAY) {
        for (let i = 0n; i < n; i++) await value(elem, false, depth + 1);
      } else fail(`array of unknown metadata value type ${elem}`, at);
      return undefined;
    }
    const width = SCALAR_BYTES[type];
    if (width === undefined) return fail(`unknown metadata value type ${type}`, at);
    const b = await need(width);
    switch (type) {
      case 0:
        return b.readUInt8(0);
      case 1:
        return b.readInt8(0);
      case 2:
        return b.readUInt16LE(0);
      case 3:
        return b.readInt16LE(0);
      case 4:
        return b.readUInt32LE(0);
      case 5:
        return b.readInt32LE(0);
      case 6:
        return b.readFloatLE(0);
      case 7:
        return b.readUInt8(0) !== 0;
      case 10:
        return b.readBigUInt64LE(0);
      case 11:
        return b.readBigInt64LE(0);
      default:
        return b.readDoubleLE(0);
    }
  };
  let alignment = 32;
  const metadata: GgufMetadataEntry[] = [];
  for (let i = 0n; i < kvCount; i++) {
    const key = await str(true);
    const type = await u32();
    const at = source.offset;
    const v = await value(type, key === 'general.alignment' || (options.keepString?.(key) ?? false), 0);
    if (key === 'general.alignment' && typeof v === 'number') {
      if (v === 0 || (v & (v - 1)) !== 0) fail(`general.alignment ${v} is not a power of two`, at);
      alignment = v;
    }
    const entry = { key, value: v, at };
    metadata.push(entry);
    options.onMetadata?.(entry);
  }
  const tensors: GgufTensor[] = [];
  for (let i = 0n; i < tensorCount; i++) {
    const at = source.offset;
    const name = await str(true);
    const nDims = await u32();
    if (nDims > MAX_DIMS) fail(`tensor ${quote(name)} has ${nDims} dimensions (at most ${MAX_DIMS})`, at);
    const shape: bigint[] = [];
    for (let d = 0; d < nDims; d++) shape.push(await u64());
    const elements = shape.reduce((a, d) => a * d, 1n);
    const typeId = await u32();
    const offset = await u64();
    const type = ggmlType(typeId);
    let bytes = 0n;
    if (type) {
      const block = BigInt(type.blockSize);
      if (elements % block !== 0n)
        fail(
          `tensor ${quote(name)}: ${elements} elements is not a whole number of ${type.name} blocks of ${type.blockSize}`,
          at,
        );
      if (offset % BigInt(alignment) !== 0n)
        fail(`tensor ${quote(name)} offset ${offset} is not ${alignment}-aligned`, at);
      bytes = (elements / block) * BigInt(type.bytesPerBlock);
    }
    const tensor = { name, shape, elements, typeId, type, offset, bytes, at };
    tensors.push(tensor);
    options.onTensor?.(tensor);
  }
  const headerEnd = BigInt(source.offset);
  const dataStart = ((headerEnd + BigInt(alignment) - 1n) / BigInt(alignment)) * BigInt(alignment);
  return { version, alignment, metadata, tensors, dataStart };
}

export interface GgufLayoutIssue {
  kind: 'out-of-bounds' | 'overlap';
  tensor: GgufTensor;
  reason: string;
}

/** Tensors (of known type) whose data runs past the file or overlaps the tensor before it. */
export function ggufLayoutIssues(header: GgufHeader, size: number): GgufLayoutIssue[] {
  const dataLength = BigInt(size) - header.dataStart;
  const known = header.tensors.filter((t) => t.type !== undefined);
  const sorted = [...known].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const issues: GgufLayoutIssue[] = [];
  let cursor = 0n;
  for (const t of sorted) {
    const end = t.offset + t.bytes;
    if (end > dataLength)
      issues.push({
        kind: 'out-of-bounds',
        tensor: t,
        reason: `tensor ${quote(t.name)} ends at data byte ${end} but the data section has ${dataLength < 0n ? 0n : dataLength}`,
      });
    else if (t.offset < cursor)
      issues.push({
        kind: 'overlap',
        tensor: t,
        reason: `tensor ${quote(t.name)} overlaps the one before it`,
      });
    if (end > cursor) cursor = end;
  }
  return issues;
}

/** A metadata value by key (the last one, as llama.cpp's loader keeps). */
export function ggufMetadata(header: GgufHeader, key: string): GgufValue | undefined {
  for (let i = header.metadata.length - 1; i >= 0; i--)
    if (header.metadata[i]!.key === key) return header.metadata[i]!.value;
  return undefined;
}
