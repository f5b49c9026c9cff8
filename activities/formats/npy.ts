/**
 * NumPy .npy: the magic, a version, a header length, a Python dict literal {descr, fortran_order, shape} (parsed
 * with patterns after a check of the whole literal, never evaluated), then the array data — raw elements, or a
 * pickle for object arrays (which the scanner walks).
 */
import { NPY_DTYPES, type Dtype } from './dtypes';
import { FormatError } from './errors';
import type { ByteSource } from './source';

/** numpy itself refuses headers much above this. */
const MAX_HEADER_BYTES = 1 << 20;

export interface NpyHeader {
  version: number;
  /** The dtype string (`<f4`, `|b1`, `O`); undefined for a structured dtype (a list of fields). */
  descr: string | undefined;
  structured: boolean;
  /** True when the array (or a field of it) holds Python objects: its data is a pickle. */
  hasObject: boolean;
  shape: bigint[];
  elements: bigint;
  /** Bytes per element, for plain dtypes numpy can size. */
  itemBytes: number | undefined;
  /** The shared element type, for the fixed-width numeric dtypes. */
  type: Dtype | undefined;
  /** Bytes of array data the header promises (undefined for object and structured arrays). */
  dataBytes: bigint | undefined;
  /** Absolute offset where the array data (or the pickle) starts. */
  dataStart: number;
}

/** True when the bytes start with the .npy magic. */
export function isNpy(head: Buffer): boolean {
  return head.length >= 6 && head.toString('latin1', 0, 6) === '\x93NUMPY';
}

/** Reads the header from `source`, positioned at the start of the file; leaves it at the start of the data. */
export async function readNpyHeader(source: ByteSource, file: string): Promise<NpyHeader> {
  const fail = (reason: string, offset = 0): never => {
    throw new FormatError('npy', file, offset, reason);
  };
  const pre = await source.read(8);
  if (!pre) return fail('file ends inside the .npy preamble');
  if (!isNpy(pre)) fail('the file does not start with the .npy magic');
  const version = pre[6] as number;
  let headerLength: number;
  if (version === 1) {
    const b = await source.read(2);
    if (!b) return fail('file ends inside the header length');
    headerLength = b.readUInt16LE(0);
  } else if (version === 2 || version === 3) {
    const b = await source.read(4);
    if (!b) return fail('file ends inside the header length');
    headerLength = b.readUInt32LE(0);
  } else return fail(`unknown .npy version ${version}`, 6);
  if (headerLength > MAX_HEADER_BYTES) fail(`header of ${headerLength} bytes is implausibly large`);
  const headerStart = source.offset;
  const raw = await source.read(headerLength);
  if (!raw) return fail('file ends inside the header', headerStart);
  const header = raw.toString(version === 3 ? 'utf8' : 'latin1');
  const malformed = dictLiteralProblem(header);
  if (malformed) fail(`header ${malformed}: numpy.load refuses it`, headerStart);
  const descr = /['"]descr['"]\s*:\s*(['"])(.*?)\1/.exec(header)?.[2];
  const structured = /['"]descr['"]\s*:\s*\[/.test(header);
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if ((!descr && !structured) || shapeText === undefined)
    fail('header has no descr string or list, or no shape tuple', headerStart);
  const dims = (shapeText as string)
    .split(',')
    .map((s) => s.trim().replace(/L$/, ''))
    .filter((s) => s !== '');
  if (dims.some((d) => !/^\d+$/.test(d))) fail('shape is not a tuple of integers', headerStart);
  const shape = dims.map((d) => BigInt(d));
  const elements = shape.reduce((a, d) => a * d, 1n);
  const hasObject = structured ? /['"]\|?O\d*['"]/.test(header) : (descr ?? '').replace(/^[<>|=]/, '').startsWith('O');
  const plain = !structured && !hasObject;
  const itemBytes = plain ? npyItemSize(descr as string) : undefined;
  if (plain && itemBytes === undefined)
    fail(`dtype ${JSON.stringify((descr as string).slice(0, 40))} is not understood`, headerStart);
  return {
    version,
    descr: structured ? undefined : descr,
    structured,
    hasObject,
    shape,
    elements,
    itemBytes,
    type: plain ? npyDtype(descr as string) : undefined,
    dataBytes: itemBytes === undefined ? undefined : elements * BigInt(itemBytes),
    dataStart: source.offset,
  };
}

/** Itemsize of a numpy dtype string such as f8, <i4, |b1, U10, S5, V16, M8[ns]; undefined when it has none. */
export function npyItemSize(descr: string): number | undefined {
  const m = /^[<>|=]?([a-zA-Z?])(\d*)(\[\w+\])?$/.exec(descr);
  if (!m) return undefined;
  const kind = m[1] as string;
  const n = m[2] ? Number(m[2]) : undefined;
  if (kind === '?') return 1;
  if (kind === 'U') return (n ?? 0) * 4;
  if ('SaV'.includes(kind)) return n ?? 0;
  if ('biufcmM'.includes(kind)) return n ?? (kind === 'b' ? 1 : undefined);
  return undefined;
}

/** The shared element type of a plain numeric numpy dtype string. */
export function npyDtype(descr: string): Dtype | undefined {
  const m = /^[<>|=]?([biufc?])(\d*)$/.exec(descr);
  if (!m) return undefined;
  return NPY_DTYPES[`${m[1]}${m[2] || '1'}`];
}

const NPY_KEYS = ['descr', 'fortran_order', 'shape'];

/**
 * numpy reads the header with `ast.literal_eval` and wants a dict of exactly descr, fortran_order and shape. The
 * values are read with patterns above; this checks the whole literal first, so that a duplicated key (Python keeps
 * the last, a pattern finds the first) or trailing junk cannot make the scanner and numpy read different headers.
 */
function dictLiteralProblem(header: string): string | undefined {
  const s = header.replace(/\s+$/, '');
  let i = 0;
  const space = (): void => {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
  };
  const literal = (): string | undefined => {
    const q = s[i];
    if (q !== "'" && q !== '"') return undefined;
    const end = s.indexOf(q, i + 1);
    if (end < 0) return undefined;
    const text = s.slice(i + 1, end);
    // Python source cannot hold NULs or other control bytes inside a string literal.
    if (/[\u0000-\u001f]/.test(text)) return undefined;
    i = end + 1;
    return text;
  };
  /** A value: a string, True/False, or a bracketed tuple or list (nesting and quotes respected). */
  const value = (): boolean => {
    if (s[i] === "'" || s[i] === '"') return literal() !== undefined;
    const word = /^(True|False)/.exec(s.slice(i, i + 5));
    if (word) {
      i += word[0].length;
      return true;
    }
    if (s[i] !== '(' && s[i] !== '[') return false;
    const stack: string[] = [];
    while (i < s.length) {
      const c = s[i] as string;
      if (c === "'" || c === '"') {
        if (literal() === undefined) return false;
        continue;
      }
      if (c === '(' || c === '[') stack.push(c === '(' ? ')' : ']');
      else if (c === ')' || c === ']') {
        if (stack.pop() !== c) return false;
        if (stack.length === 0) {
          i++;
          return true;
        }
      } else if (!/[\s\w<>|=,.-]/.test(c)) return false;
      i++;
    }
    return false;
  };
  space();
  if (s[i++] !== '{') return 'is not a dict literal';
  const keys: string[] = [];
  for (;;) {
    space();
    if (s[i] === '}') break;
    const key = literal();
    space();
    if (key === undefined || s[i++] !== ':') return 'is not a dict literal';
    space();
    if (!value()) return `has an unreadable value for ${JSON.stringify(key.slice(0, 40))}`;
    keys.push(key);
    space();
    if (s[i] === ',') i++;
    else if (s[i] !== '}') return 'is not a dict literal';
  }
  if (i + 1 !== s.length) return 'has bytes after its closing brace';
  if (keys.length !== NPY_KEYS.length || !NPY_KEYS.every((k) => keys.includes(k)))
    return `must have exactly the keys ${NPY_KEYS.join(', ')}`;
  return undefined;
}
