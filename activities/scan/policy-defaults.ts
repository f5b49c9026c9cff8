/**
 * What an absent `scan:` policy section means. Kept apart from the schema (policy.ts) so the scanner
 * itself loads no validation library: `mrel scan` and the gate start faster, and the schema's defaults read from here.
 */
export type Severity = 'critical' | 'high' | 'medium' | 'low';

/** Bounds that keep the scanner's memory and time in check; a breach is a finding, not a crash. */
export interface ScanLimits {
  maxPickleMemo: number;
  maxPickleStack: number;
  maxArchiveEntries: number;
  /** Uncompressed : compressed size of one archive entry above which it is reported as a bomb. */
  maxCompressionRatio: number;
  /** Total uncompressed bytes of one archive. */
  maxUncompressedBytes: number;
  /** Largest protobuf (ONNX, SavedModel) decoded in memory. */
  maxProtobufBytes: number;
  maxSafetensorsHeaderBytes: number;
  maxJsonBytes: number;
}

/** A validated `scan:` section (policy.ts checks that its schema produces exactly this). */
export interface ScanPolicy {
  failOn: Severity;
  warnOn: Severity;
  strict: boolean;
  allowGlobals: string[];
  denyGlobals: string[];
  secrets: boolean;
  limits: ScanLimits;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = {
  maxPickleMemo: 4_000_000,
  maxPickleStack: 1_000_000,
  maxArchiveEntries: 100_000,
  maxCompressionRatio: 1_000,
  maxUncompressedBytes: 256 * 2 ** 30,
  maxProtobufBytes: 2 * 2 ** 30 - 1,
  maxSafetensorsHeaderBytes: 100_000_000,
  maxJsonBytes: 64 * 2 ** 20,
};

export const DEFAULT_SCAN_POLICY: ScanPolicy = {
  failOn: 'high',
  warnOn: 'low',
  strict: false,
  allowGlobals: [],
  denyGlobals: [],
  secrets: true,
  limits: DEFAULT_SCAN_LIMITS,
};
