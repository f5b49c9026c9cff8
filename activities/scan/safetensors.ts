/**
 * Safetensors header validation: size cap, JSON, dtypes, shape × dtype size = byte range, ranges inside the file,
 * contiguous and non-overlapping. The format cannot run code; a malformed header is how loaders get attacked.
 */
import { finding, type ScanFinding } from './findings';

/** Bits per element of each safetensors dtype. */
const DTYPE_BITS: Record<string, number> = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  I64: 64,
  U64: 64,
  F64: 64,
  C64: 64,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
};

export interface SafetensorsSummary {
  tensors: number;
  findings: ScanFinding[];
}

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
  const findings: ScanFinding[] = [];
  const bad = (ruleId: Parameters<typeof finding>[0], message: string, offset?: number): SafetensorsSummary => {
    findings.push(finding(ruleId, path, message, offset === undefined ? {} : { offset }));
    return { tensors: 0, findings };
  };
  if (headerLength > BigInt(maxHeaderBytes))
    return bad(
      'safetensors.invalid-header',
      `header of ${headerLength} bytes exceeds the ${maxHeaderBytes}-byte cap`,
      0,
    );
  if (headerLength + 8n > BigInt(size))
    return bad('safetensors.invalid-header', `header length ${headerLength} runs past the end of the file`, 0);
  const raw = await readHeader(Number(headerLength));
  let header: unknown;
  try {
    header = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return bad('safetensors.invalid-header', `header is not valid JSON (${(err as Error).message})`, 8);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    return bad('safetensors.invalid-header', 'header is not a JSON object', 8);
  const dataLength = BigInt(size) - 8n - headerLength;
  const ranges: { name: string; begin: bigint; end: bigint }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        Object.values(value).some((v) => typeof v !== 'string')
      )
        findings.push(
          finding('safetensors.invalid-header', path, '__metadata__ must map strings to strings', { offset: 8 }),
        );
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof t !== 'object' || t === null) {
      findings.push(finding('safetensors.invalid-tensor', path, `${where} is not an object`, { offset: 8 }));
      continue;
    }
    const bits = typeof t.dtype === 'string' ? DTYPE_BITS[t.dtype] : undefined;
    if (bits === undefined) {
      findings.push(
        finding('safetensors.invalid-tensor', path, `${where} has unknown dtype ${JSON.stringify(t.dtype)}`, {
          offset: 8,
        }),
      );
      continue;
    }
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      findings.push(finding('safetensors.invalid-tensor', path, `${where} has an invalid shape`, { offset: 8 }));
      continue;
    }
    const offsets = t.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      findings.push(finding('safetensors.invalid-tensor', path, `${where} has invalid data_offsets`, { offset: 8 }));
      continue;
    }
    const begin = BigInt(offsets[0] as number);
    const end = BigInt(offsets[1] as number);
    const numel = (t.shape as number[]).reduce((a, d) => a * BigInt(d), 1n);
    const bitsTotal = numel * BigInt(bits);
    if (bitsTotal % 8n !== 0n || bitsTotal / 8n !== end - begin) {
      findings.push(
        finding(
          'safetensors.invalid-tensor',
          path,
          `${where}: shape [${(t.shape as number[]).join(', ')}] of ${t.dtype as string} needs ${bitsTotal / 8n} bytes but its range holds ${end - begin}`,
          { offset: 8 },
        ),
      );
    }
    if (end > dataLength) {
      findings.push(
        finding(
          'safetensors.out-of-bounds',
          path,
          `${where} ends at byte ${end} of a ${dataLength}-byte data section`,
          {
            offset: 8,
          },
        ),
      );
      continue;
    }
    ranges.push({ name, begin, end });
  }
  ranges.sort((a, b) => (a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : 0));
  let cursor = 0n;
  const dataStart = 8n + headerLength;
  for (const r of ranges) {
    if (r.begin < cursor)
      findings.push(
        finding('safetensors.overlap', path, `tensor ${JSON.stringify(r.name)} overlaps the tensor before it`, {
          offset: Number(dataStart + r.begin),
        }),
      );
    else if (r.begin > cursor)
      findings.push(
        finding(
          'safetensors.gap',
          path,
          `${r.begin - cursor} bytes before tensor ${JSON.stringify(r.name)} belong to no tensor`,
          {
            offset: Number(dataStart + cursor),
          },
        ),
      );
    if (r.end > cursor) cursor = r.end;
  }
  if (cursor < dataLength && findings.length === 0)
    findings.push(
      finding('safetensors.gap', path, `${dataLength - cursor} bytes after the last tensor belong to no tensor`, {
        offset: Number(dataStart + cursor),
      }),
    );
  return { tensors: ranges.length, findings };
}
