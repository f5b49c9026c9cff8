/**
 * Format detection by bytes, never by name: magic numbers first, then structural checks (a safetensors header
 * length that fits the file, a protobuf whose top-level fields parse and say which message it is). The weight
 * formats' own tests (magic, plausible header) come from the format library, which the cost footprint uses too.
 */
import { isGguf } from '../formats/gguf';
import { isHdf5 } from '../formats/hdf5';
import { isNpy } from '../formats/npy';
import { looksLikeSafetensors } from '../formats/safetensors';
import type { RandomAccess } from './reader';

export type Format =
  | 'empty'
  | 'pickle'
  | 'pickle-text' // a candidate protocol 0 pickle: plain ASCII, confirmed by walking it
  | 'zip'
  | 'tar'
  | 'gzip'
  | 'compressed' // bzip2, xz, zstd, 7z, lz4: not opened
  | 'npy'
  | 'safetensors'
  | 'gguf'
  | 'hdf5'
  | 'protobuf' // resolved further by classifyProtobuf
  | 'tf-checkpoint-index'
  | 'image'
  | 'json'
  | 'text'
  | 'unknown';

/** Bytes read from the start of each file for detection. */
export const HEAD_BYTES = 64 * 1024;

/**
 * ASCII bytes a pickle can start with: every opcode that pushes without popping. `)` (EMPTY_TUPLE), `B`/`C`
 * (BINBYTES) and `T`/`U` (BINSTRING) with printable lengths make a loadable pickle that reads as text.
 */
const PICKLE_TEXT_START = new Set([...'(cdl]})NIJKLFSVXGtpgqhPBCTU'].map((c) => c.charCodeAt(0)));

/** Detects a format from the first bytes of a file (or stream) of `size` bytes (unknown size: -1). */
export function detectHead(head: Buffer, size: number): Format {
  if (size === 0 || head.length === 0) return 'empty';
  const b = (i: number): number => head[i] ?? -1;
  const ascii = (i: number, s: string): boolean => head.subarray(i, i + s.length).toString('latin1') === s;
  if (b(0) === 0x80 && b(1) >= 0 && b(1) <= 5) return 'pickle';
  if (ascii(0, 'PK\x03\x04') || ascii(0, 'PK\x05\x06') || ascii(0, 'PK\x07\x08')) return 'zip';
  if (ascii(257, 'ustar')) return 'tar';
  if (b(0) === 0x1f && b(1) === 0x8b) return 'gzip';
  if (
    ascii(0, 'BZh') ||
    ascii(0, '\xfd7zXZ\x00') ||
    ascii(0, '\x28\xb5\x2f\xfd') ||
    ascii(0, '7z\xbc\xaf\x27\x1c') ||
    ascii(0, '\x04\x22\x4d\x18')
  )
    return 'compressed';
  if (isNpy(head)) return 'npy';
  if (isGguf(head)) return 'gguf';
  if (isHdf5(head)) return 'hdf5';
  if (ascii(0, '\x89PNG') || (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) || ascii(0, 'GIF8')) return 'image';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'image';
  if (looksLikeSafetensors(head)) return 'safetensors';
  if (looksLikeText(head)) return PICKLE_TEXT_START.has(b(0)) ? 'pickle-text' : jsonOrText(head);
  // Protocol 1 pickles are binary and have no PROTO opcode: a MARK, dict, list or global first.
  if (PICKLE_TEXT_START.has(b(0)) && (b(0) === 0x28 || b(0) === 0x7d || b(0) === 0x5d || b(0) === 0x63))
    return 'pickle-text';
  if (b(0) === 0x08 || b(0) === 0x0a) return 'protobuf';
  return 'unknown';
}

function jsonOrText(head: Buffer): Format {
  const s = head
    .subarray(0, 64)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trimStart();
  return s.startsWith('{') || s.startsWith('[') ? 'json' : 'text';
}

/** UTF-8 text without NULs or control bytes other than tab, CR, LF, FF, ESC. */
export function looksLikeText(head: Buffer): boolean {
  const sample = head.subarray(0, 8192);
  for (const c of sample) {
    if (c === 0) return false;
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 13 && c !== 12 && c !== 27) return false;
  }
  // A multi-byte character may be cut at the end of the sample; drop up to 3 trailing bytes before checking.
  for (let cut = 0; cut < 4; cut++) {
    const part = sample.subarray(0, sample.length - cut);
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(part);
      return true;
    } catch {
      if (sample.length - cut <= 0) return false;
    }
  }
  return false;
}

/** TF checkpoint index files (SSTables) end with this magic. */
const SSTABLE_MAGIC = 0xdb4775248b80fb57n;

export async function isTfCheckpointIndex(handle: RandomAccess, size: number): Promise<boolean> {
  if (size < 48) return false;
  const tail = Buffer.alloc(8);
  await handle.read(tail, 0, 8, size - 8);
  return tail.readBigUInt64LE(0) === SSTABLE_MAGIC;
}

export type ProtobufKind = 'onnx' | 'savedmodel' | 'keras-metadata' | 'sentencepiece' | 'protobuf';

/**
 * Walks the top-level protobuf fields (tag, wire type, length) without decoding their contents, and says which
 * message it is by its field numbers. Null when the bytes are not a well-formed protobuf.
 */
export async function classifyProtobuf(handle: RandomAccess, size: number): Promise<ProtobufKind | null> {
  const fields = new Map<number, number>();
  let firstField = -1;
  let firstVarint: bigint | undefined;
  let pos = 0;
  const small = size <= 16 << 20 ? Buffer.alloc(size) : undefined;
  if (small) await handle.read(small, 0, size, 0);
  const window = Buffer.alloc(32);
  let steps = 0;
  while (pos < size) {
    if (++steps > 200_000) break;
    let view: Buffer;
    let base: number;
    if (small) {
      view = small;
      base = 0;
    } else {
      const { bytesRead } = await handle.read(window, 0, 32, pos);
      view = window.subarray(0, bytesRead);
      base = pos;
    }
    const tag = varint(view, pos - base);
    if (!tag) return null;
    const field = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    if (field === 0) return null;
    let next = pos + tag.length;
    if (wire === 0) {
      const v = varint(view, next - base);
      if (!v) return null;
      if (firstField < 0) firstVarint = v.value;
      next += v.length;
    } else if (wire === 2) {
      const len = varint(view, next - base);
      if (!len) return null;
      next += len.length + Number(len.value);
    } else if (wire === 1) next += 8;
    else if (wire === 5) next += 4;
    else return null;
    if (next > size) return null;
    if (firstField < 0) firstField = field;
    fields.set(field, wire);
    pos = next;
  }
  const has = (f: number, w: number): boolean => fields.get(f) === w;
  if (has(7, 2) && (has(1, 0) || has(8, 2))) return 'onnx';
  if (firstField === 1 && firstVarint !== undefined && has(2, 2) && [...fields.keys()].every((f) => f <= 2))
    return 'savedmodel';
  if (firstField === 1 && has(1, 2) && [...fields.keys()].every((f) => f <= 5)) {
    // sentencepiece pieces start with their string (field 1); keras metadata nodes with node_id (field 2).
    const head = Buffer.alloc(16);
    await handle.read(head, 0, 16, 0);
    const len = varint(head, 1);
    const inner = len ? varint(head, 1 + len.length) : null;
    if (inner && inner.value >> 3n === 1n && (inner.value & 7n) === 2n) return 'sentencepiece';
    return 'keras-metadata';
  }
  return 'protobuf';
}

function varint(buf: Buffer, at: number): { value: bigint; length: number } | null {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const byte = buf[at + i];
    if (byte === undefined) return null;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value, length: i + 1 };
  }
  return null;
}
