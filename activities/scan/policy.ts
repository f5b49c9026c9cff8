/**
 * The `scan:` section of a policy file: when the model-file scan gate fails, which pickle globals are allowed or
 * denied beyond the built-in lists, strict mode, and the limits that keep the scanner's memory and time bounded.
 */
// zod's tree-shakable build: `mrel scan` validates this section without loading all of zod (about 30 ms at start).
import en from 'zod/v4/locales/en.js';
import * as z from 'zod/mini';
import { zodProblems } from '../../contract/problems';
import {
  DEFAULT_SCAN_LIMITS as L,
  DEFAULT_SCAN_POLICY as D,
  type ScanLimits,
  type ScanPolicy,
} from './policy-defaults';

// The mini build starts without messages; English ones, as the rest of the config gets from full zod.
z.config(en());

const SEVERITY = z.enum(['critical', 'high', 'medium', 'low'], {
  error: () => 'must be one of critical, high, medium, low',
});

/** `module:name`, `module:*` or `module.*:*`, e.g. `torch._utils:_rebuild_tensor_v2`. */
const GLOBAL_ENTRY = z
  .string()
  .check(
    z.regex(
      /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?:(\*|[A-Za-z_][A-Za-z0-9_.]*)$/,
      'write pickle globals as module:name, module:* or module.*:* (e.g. torch._utils:_rebuild_tensor_v2)',
    ),
  );

const positiveInt = (what: string, fallback: number) =>
  z._default(
    z
      .int({ error: `${what} must be a positive whole number` })
      .check(z.positive(`${what} must be a positive whole number`)),
    fallback,
  );

/** Unknown keys are named with the ones that are known (a typo in a policy must not be silently ignored). */
const unknownKeys = (known: string[]) => (issue: { code?: string; keys?: string[] }) =>
  issue.code === 'unrecognized_keys'
    ? `has unknown field(s) ${(issue.keys ?? []).map((k) => JSON.stringify(k)).join(', ')}; known fields: ${known.join(', ')}`
    : undefined;

const LIMIT_FIELDS = Object.keys(L);

export const scanLimitsSchema = z.strictObject(
  {
    maxPickleMemo: positiveInt('maxPickleMemo', L.maxPickleMemo),
    maxPickleStack: positiveInt('maxPickleStack', L.maxPickleStack),
    maxArchiveEntries: positiveInt('maxArchiveEntries', L.maxArchiveEntries),
    /** Uncompressed : compressed size of one archive entry above which it is reported as a bomb. */
    maxCompressionRatio: positiveInt('maxCompressionRatio', L.maxCompressionRatio),
    /** Total uncompressed bytes of one archive (default 256 GiB). */
    maxUncompressedBytes: positiveInt('maxUncompressedBytes', L.maxUncompressedBytes),
    /** Largest protobuf (ONNX, SavedModel) decoded in memory (default 2 GiB, protobuf's own limit). */
    maxProtobufBytes: positiveInt('maxProtobufBytes', L.maxProtobufBytes),
    /** safetensors' reference loader refuses headers over 100 MB. */
    maxSafetensorsHeaderBytes: positiveInt('maxSafetensorsHeaderBytes', L.maxSafetensorsHeaderBytes),
    maxJsonBytes: positiveInt('maxJsonBytes', L.maxJsonBytes),
  },
  { error: unknownKeys(LIMIT_FIELDS) },
);

export const scanPolicySchema = z.strictObject(
  {
    /** The gate fails on any unwaived finding at or above this severity. */
    failOn: z._default(SEVERITY, D.failOn),
    /** Findings below failOn but at or above this make the verdict warn. */
    warnOn: z._default(SEVERITY, D.warnOn),
    /** Strict: every pickle global outside the allowlist is high (not-allowlisted), not medium (unknown). */
    strict: z._default(z.boolean(), D.strict),
    /** Extra safe pickle globals on top of the built-in allowlist. A denylisted global stays denied. */
    allowGlobals: z._default(z.array(GLOBAL_ENTRY), () => []),
    /** Extra pickle globals to deny (critical). */
    denyGlobals: z._default(z.array(GLOBAL_ENTRY), () => []),
    /** Look for tokens and private keys in text files. */
    secrets: z._default(z.boolean(), D.secrets),
    limits: z._default(scanLimitsSchema, () => scanLimitsSchema.parse({})),
  },
  { error: unknownKeys(Object.keys(D)) },
);

// The schema and the plain types in policy-defaults.ts must describe the same data: each is assignable to the other.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameTypes: [
  Same<z.infer<typeof scanPolicySchema>, ScanPolicy>,
  Same<z.infer<typeof scanLimitsSchema>, ScanLimits>,
] = [true, true];
void sameTypes;

export type { ScanLimits, ScanPolicy };
export { DEFAULT_SCAN_POLICY } from './policy-defaults';

/**
 * Validates a policy's `scan:` section. Throws an Error whose message lists every problem as
 * `<source>: scan.<field>: <what to do>`.
 */
export function parseScanPolicy(section: unknown, source = 'policy'): ScanPolicy {
  const result = scanPolicySchema.safeParse(section ?? {});
  if (result.success) return result.data;
  throw new Error(
    zodProblems(result.error, 'scan')
      .map((problem) => `${source}: ${problem}`)
      .join('\n'),
  );
}
