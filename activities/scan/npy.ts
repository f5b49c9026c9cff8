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
