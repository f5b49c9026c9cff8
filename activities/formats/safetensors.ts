/**
 * Safetensors: a u64 little-endian header length, a JSON header mapping tensor names to {dtype, shape,
 * data_offsets}, then the tensor bytes. The reader parses and checks the header (size cap, JSON, dtypes, shape ×
 * dtype = byte range, ranges inside the file, overlaps and unclaimed bytes) without reading any tensor data.
 *
 * A header that cannot be read at all throws a FormatError; problems with single tensors are returned as issues, so
 * the scanner can report each one and the cost footprint can refuse the file on the first.
 */
import { packedBytes, SAFETENSORS_DTYPES, type Dtype } from './dtypes';
import { FormatError, quote } from './errors';
import type { ByteSource } from './source';

/** The safetensors library caps its header at 100 MB. */
export const SAFETENSORS_HEADER_LIMIT = 100_000_000;

export interface SafetensorsTensor {
  name: string;
  /** The dtype as the file names it (F32, BF16, …). */
  dtype: string;
  type: Dtype;
  shape: number[];
  elements: bigint;
  /** Byte range relative to the start of the data section. */
  begin: bigint;
  end: bigint;
  /** Bytes its shape and dtype need (may differ from end - begin: see issues). */
  bytes: bigint | undefined;
}

export type SafetensorsIssueKind = 'metadata' | 'tensor' | 'out-of-bounds' | 'overlap' | 'gap';

export interface SafetensorsIssue {
  kind: SafetensorsIssueKind;
  reason: string;
  /** Absolute byte offset in the file the issue is about. */
  offset: number;
}

export interface SafetensorsHeader {
  headerLength: bigint;
  /** Absolute offset of the data section (8 + header length). */
  dataStart: bigint;
  dataLength: bigint;
  /** Tensors whose dtype, shape and offsets parse (in header order), including ones with issues. */
  tensors: SafetensorsTensor[];
  issues: SafetensorsIssue[];
  metadata?: Record<string, string>;
}

/** True when the first bytes look like a safetensors file: a plausible header length followed by `{`. */
export function looksLikeSafetensors(head: Buffer): boolean {
  if (head.length < 9) return false;
  const n = head.readBigUInt64LE(0);
  // Text that starts with `{` reads as a length far above 2^40, so a plausible length is what tells them apart
  // (whether it fits the file is the header check's job).
  return head[8] === 0x7b && n >= 2n && n < 1n << 40n;
}

/** Reads the header from `source`, positioned at the start of the file; only the header bytes are read. */
export async function readSafetensorsHeader(
  source: ByteSource,
  file: string,
  size: number,
  maxHeaderBytes = SAFETENSORS_HEADER_LIMIT,
): Promise<SafetensorsHeader> {
  const lengthBytes = await source.read(8);
  if (!lengthBytes) throw new FormatError('safetensors', file, 0, 'the file ends inside the 8-byte header length');
  const headerLength = lengthBytes.readBigUInt64LE(0);
  checkHeaderLength(file, size, headerLength, maxHeaderBytes);
  const raw = await source.read(Number(headerLength));
  if (!raw) throw new FormatError('safetensors', file, 8, 'the file ends inside the header');
  return parseSafetensorsHeader(file, size, headerLength, raw);
}

/** Throws when the declared header length is over the cap or past the end of the file. */
export function checkHeaderLength(file: string, size: number, headerLength: bigint, maxHeaderBytes: number): void {
  if (headerLength > BigInt(maxHeaderBytes))
    throw new FormatError(
      'safetensors',
      file,
      0,
      `header of ${headerLength} bytes exceeds the ${maxHeaderBytes}-byte cap`,
    );
  if (headerLength + 8n > BigInt(size))
    throw new FormatError('safetensors', file, 0, `header length ${headerLength} runs past the end of the file`);
}

/** Parses the header bytes (after the length); `size` is the whole file's. */
export function parseSafetensorsHeader(
  file: string,
  size: number,
  headerLength: bigint,
  raw: Buffer,
): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    // JSON.parse quotes the text it could not parse; keep only the position.
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new FormatError(
      'safetensors',
      file,
      8,
      `header is not valid JSON${position === undefined ? '' : ` (at character ${position})`}`,
    );
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new FormatError('safetensors', file, 8, 'header is not a JSON object');
  const dataStart = 8n + headerLength;
  const dataLength = BigInt(size) - dataStart;
  const issues: SafetensorsIssue[] = [];
  const tensors: SafetensorsTensor[] = [];
  const inBounds: SafetensorsTensor[] = [];
  let metadata: Record<string, string> | undefined;
  const issue = (kind: SafetensorsIssueKind, reason: string, offset = 8): void => {
    issues.push({ kind, reason, offset });
  };
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        Object.values(value).some((v) => typeof v !== 'string')
      )
        issue('metadata', '__metadata__ must map strings to strings');
      else metadata = value as Record<string, string>;
      continue;
    }
    const where = `tensor ${quote(name)}`;
    if (typeof value !== 'object' || value === null) {
      issue('tensor', `${where} is not an object`);
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const type =
      typeof t.dtype === 'string' && Object.hasOwn(SAFETENSORS_DTYPES, t.dtype)
        ? SAFETENSORS_DTYPES[t.dtype]
        : undefined;
    if (type === undefined) {
      issue('tensor', `${where} has unknown dtype ${quote(t.dtype)}`);
      continue;
    }
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      issue('tensor', `${where} has an invalid shape`);
      continue;
    }
    const offsets = t.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      issue('tensor', `${where} has invalid data_offsets`);
      continue;
    }
    const shape = t.shape as number[];
    const elements = shape.reduce((a, d) => a * BigInt(d), 1n);
    const tensor: SafetensorsTensor = {
      name,
      dtype: t.dtype as string,
      type,
      shape,
      elements,
      begin: BigInt(offsets[0] as number),
      end: BigInt(offsets[1] as number),
      bytes: packedBytes(type, elements),
    };
    tensors.push(tensor);
    const span = tensor.end - tensor.begin;
    if (tensor.bytes !== span)
      issue(
        'tensor',
        `${where} spans ${span} bytes but ${tensor.dtype}[${shape.join(',')}] needs ${tensor.bytes ?? 'a fractional number of'}`,
      );
    if (tensor.end > dataLength) {
      issue('out-of-bounds', `${where} ends at byte ${tensor.end} of a ${dataLength}-byte data section`);
      continue;
    }
    inBounds.push(tensor);
  }
  const ranges = [...inBounds].sort((a, b) => (a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : 0));
  let cursor = 0n;
  for (const r of ranges) {
    if (r.begin < cursor)
      issue('overlap', `tensor ${quote(r.name)} overlaps the tensor before it`, Number(dataStart + r.begin));
    else if (r.begin > cursor)
      issue(
        'gap',
        `${r.begin - cursor} bytes before tensor ${quote(r.name)} belong to no tensor`,
        Number(dataStart + cursor),
      );
    if (r.end > cursor) cursor = r.end;
  }
  // Trailing bytes are worth a word only about an otherwise sound file; a broken one has its real problems said.
  if (cursor < dataLength && issues.length === 0)
    issue('gap', `${dataLength - cursor} bytes after the last tensor belong to no tensor`, Number(dataStart + cursor));
  return { headerLength, dataStart, dataLength, tensors, issues, ...(metadata ? { metadata } : {}) };
}
