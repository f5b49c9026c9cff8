/**
 * NumPy .npy: magic, version, a Python-literal header (parsed with patterns, never evaluated), then raw data or —
 * for object arrays — a pickle, which goes through the pickle walker.
 */
import { finding, type ScanFinding } from './findings';
import { dtypeSize, walkPickle, type PickleLimits, type PickleWalk } from './pickle';
import type { ByteReader } from './reader';

export interface NpyResult {
  findings: ScanFinding[];
  /** Set for object arrays: the embedded pickle. */
  pickle?: PickleWalk;
}

export async function scanNpy(
  reader: ByteReader,
  path: string,
  options: { limits?: PickleLimits; signal?: AbortSignal; onProgress?: (bytes: number) => void },
): Promise<NpyResult> {
  const findings: ScanFinding[] = [];
  const invalid = (message: string, offset = 0): NpyResult => {
    findings.push(finding('npy.invalid-header', path, message, { offset }));
    return { findings };
  };
  const pre = await reader.read(8);
  if (!pre) return invalid('file ends inside the .npy preamble');
  const major = pre[6] as number;
  let headerLength: number;
  if (major === 1) {
    const b = await reader.read(2);
    if (!b) return invalid('file ends inside the header length');
    headerLength = b.readUInt16LE(0);
  } else if (major === 2 || major === 3) {
    const b = await reader.read(4);
    if (!b) return invalid('file ends inside the header length');
    headerLength = b.readUInt32LE(0);
  } else return invalid(`unknown .npy version ${major}`, 6);
  if (headerLength > 1 << 20) return invalid(`header of ${headerLength} bytes is implausibly large`);
  const headerStart = reader.offset;
  const raw = await reader.read(headerLength);
  if (!raw) return invalid('file ends inside the header', headerStart);
  const header = raw.toString(major === 3 ? 'utf8' : 'latin1');
  const malformed = dictLiteralProblem(header);
  if (malformed) return invalid(`header ${malformed}: numpy.load refuses it`, headerStart);
  const descr = /['"]descr['"]\s*:\s*(['"])(.*?)\1/.exec(header)?.[2];
  const structured = /['"]descr['"]\s*:\s*\[/.test(header);
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if ((!descr && !structured) || shapeText === undefined)
    return invalid(`header is not a valid .npy header: ${JSON.stringify(header.slice(0, 120))}`, headerStart);
  const dims = shapeText
    .split(',')
    .map((s) => s.trim().replace(/L$/, ''))
    .filter((s) => s !== '');
  if (dims.some((d) => !/^\d+$/.test(d)))
    return invalid(`shape (${shapeText}) is not a tuple of integers`, headerStart);
  const hasObject = structured ? /['"]\|?O\d*['"]/.test(header) : (descr ?? '').replace(/^[<>|=]/, '').startsWith('O');
  if (hasObject) {
    findings.push(
      finding(
        'npy.object-array',
        path,
        'object array: numpy.load runs the embedded pickle (allow_pickle=True); the pickle was scanned',
        { offset: reader.offset },
      ),
    );
    const pickle = await walkPickle(reader, path, options);
    return { findings, pickle };
  }
  if (structured) return { findings };
  const itemSize = dtypeSize(descr as string);
  if (itemSize === undefined) return invalid(`dtype ${JSON.stringify(descr)} is not understood`, headerStart);
  const expected = dims.reduce((a, d) => a * BigInt(d), 1n) * BigInt(itemSize);
  const dataStart = reader.offset;
  const complete = await reader.skip(Number(expected));
  const extra = complete && !(await reader.atEnd());
  if (!complete || extra)
    findings.push(
      finding(
        'npy.size-mismatch',
        path,
        complete
          ? `bytes after the ${expected}-byte array data are not part of the array`
          : `the header promises ${expected} bytes of data but the file ends first`,
        { offset: dataStart },
      ),
    );
  return { findings };
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
