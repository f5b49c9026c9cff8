/**
 * The model server's settings, from the environment the Deployment gives the pod (activities/gitops/render.ts:
 * MODEL_NAME, MODEL_VERSION, MODEL_MANIFEST_DIGEST, MODEL_MANIFEST_BLOB, MODEL_DIR) and from flags, which win. Every
 * bad value is an error naming the variable or flag and what it takes.
 */
import { resolve } from 'node:path';

export interface ServerOptions {
  modelDir: string;
  /** Defaults to the manifest's model (when a manifest file is given), else "model". */
  modelName?: string;
  modelVersion?: string;
  /** sha256 over the sorted `path\0sha256\n` lines (hex, with or without `sha256:`). */
  manifestDigest?: string;
  /** The ArtifactManifest JSON (the store's manifest blob), when mounted beside the model. */
  manifestFile?: string;
  /** sha256 of that file, as the Deployment names it. */
  manifestBlob?: string;
  host: string;
  port: number;
  /** Where the inference and feedback logs go; none means no log. */
  inferenceLogDir?: string;
  /** Requests being read, predicted and answered at once. */
  maxInflight: number;
  /** Requests waiting for one of those places; beyond it the server answers 429. */
  maxQueue: number;
  /** Protected attributes the evaluation used (its `protected` list): read from requests for metrics and the log. */
  groupColumns: string[];
  /** Rows one request may carry. */
  maxBatchRows: number;
  /** Rows one model call takes when concurrent requests are predicted together. */
  maxModelBatchRows: number;
  maxBodyBytes: number;
  logFlushRecords: number;
  logFlushMs: number;
  /** Bytes of log lines held in memory while the disk catches up; beyond it records are dropped and counted. */
  logBufferBytes: number;
  logRotateBytes: number;
  /** How long a SIGTERM waits for requests in flight before the server closes anyway. */
  shutdownTimeoutMs: number;
  /** auto, tensorflow-gpu, tensorflow, wasm or cpu (activities/evaluate/backend.ts). */
  backend?: string;
}

export class OptionsError extends Error {
  override readonly name = 'OptionsError';
}

interface Setting {
  flag: string;
  env: string;
  key: keyof ServerOptions;
  kind: 'string' | 'int' | 'list';
  min?: number;
  max?: number;
  help: string;
}

const MIB = 1024 * 1024;

const SETTINGS: Setting[] = [
  { flag: 'model-dir', env: 'MODEL_DIR', key: 'modelDir', kind: 'string', help: 'the mounted model (/mnt/models)' },
  { flag: 'model-name', env: 'MODEL_NAME', key: 'modelName', kind: 'string', help: 'the name in /v2/models/<name>' },
  { flag: 'model-version', env: 'MODEL_VERSION', key: 'modelVersion', kind: 'string', help: 'the model version' },
  {
    flag: 'manifest-digest',
    env: 'MODEL_MANIFEST_DIGEST',
    key: 'manifestDigest',
    kind: 'string',
    help: 'the manifest digest the release approved (sha256:<hex>)',
  },
  {
    flag: 'manifest',
    env: 'MODEL_MANIFEST_FILE',
    key: 'manifestFile',
    kind: 'string',
    help: 'the ArtifactManifest JSON, to check each file by its own digest',
  },
  {
    flag: 'manifest-blob',
    env: 'MODEL_MANIFEST_BLOB',
    key: 'manifestBlob',
    kind: 'string',
    help: 'sha256 of the manifest file',
  },
  { flag: 'host', env: 'LISTEN_HOST', key: 'host', kind: 'string', help: 'address to listen on (127.0.0.1)' },
  { flag: 'port', env: 'LISTEN_PORT', key: 'port', kind: 'int', min: 0, max: 65535, help: 'port (8080; 0: any)' },
  {
    flag: 'inference-log-dir',
    env: 'INFERENCE_LOG_DIR',
    key: 'inferenceLogDir',
    kind: 'string',
    help: 'directory of the inference and feedback logs (none: no log)',
  },
  { flag: 'max-inflight', env: 'MAX_INFLIGHT', key: 'maxInflight', kind: 'int', min: 1, max: 10_000, help: '(64)' },
  { flag: 'max-queue', env: 'MAX_QUEUE', key: 'maxQueue', kind: 'int', min: 0, max: 100_000, help: '(256)' },
  {
    flag: 'group-columns',
    env: 'GROUP_COLUMNS',
    key: 'groupColumns',
    kind: 'list',
    help: "the evaluation's protected attributes, comma-separated (sex,group)",
  },
  {
    flag: 'max-batch-rows',
    env: 'MAX_BATCH_ROWS',
    key: 'maxBatchRows',
    kind: 'int',
    min: 1,
    max: 1_000_000,
    help: 'rows per request (1024)',
  },
  {
    flag: 'max-model-batch-rows',
    env: 'MAX_MODEL_BATCH_ROWS',
    key: 'maxModelBatchRows',
    kind: 'int',
    min: 1,
    max: 1_000_000,
    help: 'rows per model call across requests (4096)',
  },
  {
    flag: 'max-body-bytes',
    env: 'MAX_BODY_BYTES',
    key: 'maxBodyBytes',
    kind: 'int',
    min: 1024,
    max: 1024 * MIB,
    help: 'request body limit (8 MiB)',
  },
  { flag: 'log-flush-records', env: 'LOG_FLUSH_RECORDS', key: 'logFlushRecords', kind: 'int', min: 1, help: '(256)' },
  { flag: 'log-flush-ms', env: 'LOG_FLUSH_MS', key: 'logFlushMs', kind: 'int', min: 1, help: '(1000)' },
  { flag: 'log-buffer-bytes', env: 'LOG_BUFFER_BYTES', key: 'logBufferBytes', kind: 'int', min: 1, help: '(32 MiB)' },
  { flag: 'log-rotate-bytes', env: 'LOG_ROTATE_BYTES', key: 'logRotateBytes', kind: 'int', min: 1, help: '(64 MiB)' },
  {
    flag: 'shutdown-timeout-ms',
    env: 'SHUTDOWN_TIMEOUT_MS',
    key: 'shutdownTimeoutMs',
    kind: 'int',
    min: 0,
    help: '(25000)',
  },
  { flag: 'backend', env: 'TFJS_BACKEND', key: 'backend', kind: 'string', help: 'tfjs backend (auto)' },
];

export const DEFAULT_OPTIONS: ServerOptions = {
  modelDir: '/mnt/models',
  host: '127.0.0.1',
  port: 8080,
  maxInflight: 64,
  maxQueue: 256,
  groupColumns: [],
  maxBatchRows: 1024,
  maxModelBatchRows: 4096,
  maxBodyBytes: 8 * MIB,
  logFlushRecords: 256,
  logFlushMs: 1000,
  logBufferBytes: 32 * MIB,
  logRotateBytes: 64 * MIB,
  // Kubernetes sends SIGKILL 30 s after SIGTERM by default: drain well within that.
  shutdownTimeoutMs: 25_000,
};

export function usage(): string {
  const lines = SETTINGS.map((s) => `  --${s.flag} <value>`.padEnd(34) + `${s.env.padEnd(24)} ${s.help}`);
  return `usage: node serving/main.js [flags]\nflags (and the environment variables they override):\n${lines.join('\n')}`;
}

/** The options from `env` and `argv` (flags as `--name value` or `--name=value`); throws OptionsError. */
export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): ServerOptions {
  const raw = new Map<Setting, { value: string; from: string }>();
  for (const s of SETTINGS) {
    const value = env[s.env];
    if (value !== undefined && value !== '') raw.set(s, { value, from: s.env });
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    const setting = match ? SETTINGS.find((s) => s.flag === match[1]) : undefined;
    if (!match || !setting) {
      throw new OptionsError(`${arg.slice(0, 64)}: not a flag of the model server (see --help)`);
    }
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new OptionsError(`--${setting.flag}: give a value`);
    raw.set(setting, { value, from: `--${setting.flag}` });
  }
  const options: ServerOptions = { ...DEFAULT_OPTIONS, groupColumns: [] };
  const record = options as unknown as Record<string, unknown>;
  for (const [s, { value, from }] of raw) {
    if (s.kind === 'string') record[s.key] = value;
    else if (s.kind === 'list') record[s.key] = parseList(value, from);
    else record[s.key] = parseInteger(value, from, s.min ?? 0, s.max ?? Number.MAX_SAFE_INTEGER);
  }
  if (options.manifestDigest !== undefined) options.manifestDigest = parseDigest(options.manifestDigest, 'digest');
  if (options.manifestBlob !== undefined) options.manifestBlob = parseDigest(options.manifestBlob, 'blob');
  if (options.manifestDigest === undefined && options.manifestFile === undefined) {
    throw new OptionsError(
      'MODEL_MANIFEST_DIGEST is not set: the server loads only a model it can check, so give the manifest digest the release approved (sha256:<hex>) or a manifest file (MODEL_MANIFEST_FILE)',
    );
  }
  options.modelDir = resolve(options.modelDir);
  if (options.manifestFile !== undefined) options.manifestFile = resolve(options.manifestFile);
  if (options.inferenceLogDir !== undefined) options.inferenceLogDir = resolve(options.inferenceLogDir);
  if (options.maxModelBatchRows < options.maxBatchRows) options.maxModelBatchRows = options.maxBatchRows;
  return options;
}

function parseDigest(value: string, what: 'digest' | 'blob'): string {
  const hex = value.startsWith('sha256:') ? value.slice(7) : value;
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    const name =
      what === 'digest' ? 'MODEL_MANIFEST_DIGEST (--manifest-digest)' : 'MODEL_MANIFEST_BLOB (--manifest-blob)';
    throw new OptionsError(`${name}: not a sha256 digest; give sha256:<64 lowercase hex digits>`);
  }
  return hex;
}

function parseInteger(value: string, from: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new OptionsError(`${from}: "${value.slice(0, 32)}" is not a whole number from ${min} to ${max}`);
  }
  return n;
}

function parseList(value: string, from: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (new Set(items).size !== items.length) throw new OptionsError(`${from}: a column is listed twice`);
  if (items.length > 64) throw new OptionsError(`${from}: at most 64 columns`);
  return items;
}
