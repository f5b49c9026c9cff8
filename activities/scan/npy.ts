/**
 * NumPy .npy as scan findings: the shared reader checks the header (a Python literal, parsed with patterns, never
 * evaluated); raw data must be exactly the size the header promises, and object arrays — a pickle — go through the
 * pickle walker.
 */
import { FormatError } from '../formats/errors';
import { readNpyHeader } from '../formats/npy';
import { finding, type ScanFinding } from './findings';
import { walkPickle, type PickleLimits, type PickleWalk } from './pickle';
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
  let header;
  try {
    header = await readNpyHeader(reader, path);
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return { findings: [finding('npy.invalid-header', path, err.reason, { offset: err.offset })] };
  }
  const findings: ScanFinding[] = [];
  if (header.hasObject) {
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
  if (header.dataBytes === undefined) return { findings };
  const expected = header.dataBytes;
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
