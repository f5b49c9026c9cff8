/**
 * Safetensors header validation as scan findings. The format cannot run code; a malformed header is how loaders get
 * attacked. The header is read and checked by the shared format reader; this maps what it finds to rules.
 */
import { FormatError } from '../formats/errors';
import { checkHeaderLength, parseSafetensorsHeader, type SafetensorsIssueKind } from '../formats/safetensors';
import { finding, type ScanFinding } from './findings';

export interface SafetensorsSummary {
  tensors: number;
  findings: ScanFinding[];
}

const RULES: Record<SafetensorsIssueKind, Parameters<typeof finding>[0]> = {
  metadata: 'safetensors.invalid-header',
  tensor: 'safetensors.invalid-tensor',
  'out-of-bounds': 'safetensors.out-of-bounds',
  overlap: 'safetensors.overlap',
  gap: 'safetensors.gap',
};

/**
 * Validates a safetensors header. `readHeader(n)` returns the n header bytes after the 8-byte length;
 * `size` is the whole file's size.
 */
export async function checkSafetensors(
  path: string,
  size: number,
  headerLength: bigint,
  readHeader: (n: number) => Promise<Buffer>,
  maxHeaderBytes: number,
): Promise<SafetensorsSummary> {
  try {
    checkHeaderLength(path, size, headerLength, maxHeaderBytes);
    const header = parseSafetensorsHeader(path, size, headerLength, await readHeader(Number(headerLength)));
    const findings = header.issues.map((i) => finding(RULES[i.kind], path, i.reason, { offset: i.offset }));
    const tensors = header.tensors.filter((t) => t.end <= header.dataLength).length;
    return { tensors, findings };
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return {
      tensors: 0,
      findings: [finding('safetensors.invalid-header', path, err.reason, { offset: err.offset })],
    };
  }
}
