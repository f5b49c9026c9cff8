/**
 * The `scan:` section of a policy file: when the model-file scan gate fails, which pickle globals are allowed or
 * denied beyond the built-in lists, strict mode, and the limits that keep the scanner's memory and time bounded.
 */
import { z } from 'zod';
import { DEFAULT_SCAN_LIMITS as L, DEFAULT_SCAN_POLICY as D, type ScanLimits, type ScanPolicy } from './scan-defaults';

const SEVERITY = z.enum(['critical', 'high', 'medium', 'low'], {
  error: () => 'must be one of critical, high, medium, low',
});

/** `module:name`, `module:*` or `module.*:*`, e.g. `torch._utils:_rebuild_tensor_v2`. */
const GLOBAL_ENTRY = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?:(\*|[A-Za-z_][A-Za-z0-9_.]*)$/,
    'write pickle globals as module:name, module:* or module.*:* (e.g. torch._utils:_rebuild_tensor_v2)',
  );

const positiveInt = (what: string) => z.number().int().positive(`${what} must be a positive whole number`);

export const scanLimitsSchema = z
  .object({
    maxPickleMemo: positiveInt('maxPickleMemo').default(L.maxPickleMemo),
    maxPickleStack: positiveInt('maxPickleStack').default(L.maxPickleStack),
    maxArchiveEntries: positiveInt('maxArchiveEntries').default(L.maxArchiveEntries),
    /** Uncompressed : compressed size of one archive entry above which it is reported as a bomb. */
    maxCompressionRatio: positiveInt('maxCompressionRatio').default(L.maxCompressionRatio),
    /** Total uncompressed bytes of one archive (default 256 GiB). */
    maxUncompressedBytes: positiveInt('maxUncompressedBytes').default(L.maxUncompressedBytes),
    /** Largest protobuf (ONNX, SavedModel) decoded in memory (default 2 GiB, protobuf's own limit). */
    maxProtobufBytes: positiveInt('maxProtobufBytes').default(L.maxProtobufBytes),
    /** safetensors' reference loader refuses headers over 100 MB. */
    maxSafetensorsHeaderBytes: positiveInt('maxSafetensorsHeaderBytes').default(L.maxSafetensorsHeaderBytes),
    maxJsonBytes: positiveInt('maxJsonBytes').default(L.maxJsonBytes),
  })
  .strict();

export const scanPolicySchema = z
  .object({
    /** The gate fails on any unwaived finding at or above this severity. */
    failOn: SEVERITY.default(D.failOn),
    /** Findings below failOn but at or above this make the verdict warn. */
    warnOn: SEVERITY.default(D.warnOn),
    /** Strict: every pickle global outside the allowlist is high (not-allowlisted), not medium (unknown). */
    strict: z.boolean().default(D.strict),
    /** Extra safe pickle globals on top of the built-in allowlist. A denylisted global stays denied. */
    allowGlobals: z.array(GLOBAL_ENTRY).default([]),
    /** Extra pickle globals to deny (critical). */
    denyGlobals: z.array(GLOBAL_ENTRY).default([]),
    /** Look for tokens and private keys in text files. */
    secrets: z.boolean().default(D.secrets),
    limits: scanLimitsSchema.default(() => scanLimitsSchema.parse({})),
  })
  .strict();

// The schema and the plain types in scan-defaults.ts must describe the same data: each is assignable to the other.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameTypes: [
  Same<z.infer<typeof scanPolicySchema>, ScanPolicy>,
  Same<z.infer<typeof scanLimitsSchema>, ScanLimits>,
] = [true, true];
void sameTypes;

export type { ScanLimits, ScanPolicy };
export { DEFAULT_SCAN_POLICY } from './scan-defaults';

/**
 * Validates a policy's `scan:` section. Throws an Error whose message lists every problem as
 * `<source>: scan.<field> <what to do>`.
 */
export function parseScanPolicy(section: unknown, source = 'policy'): ScanPolicy {
  const result = scanPolicySchema.safeParse(section ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = ['scan', ...issue.path.map(String)].join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
    return `${source}: ${field} ${issue.message}`;
  });
  throw new Error(problems.join('\n'));
}
