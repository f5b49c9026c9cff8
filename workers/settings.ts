/**
 * Worker and client settings from the environment, validated: a bad value names the variable and what to do.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import type { DataConverter } from '@temporalio/common';
import type { TelemetryOptions } from '@temporalio/worker';
import { z } from 'zod';
import { sourceOverridesEnvSchema } from '../config/schema';
import { EVALUATION_TASK_QUEUE, RELEASE_TASK_QUEUE } from '../contract/definitions';
import { ENGINE_HISTOGRAM_BUCKETS } from '../workflows/release-metrics';
import { PROJECT_ROOT } from './paths';
import type { ArtifactStore } from '../activities/store/artifact-store';
import { artifactStoreFromEnv } from '../activities/store/select';
import { parseSigningKey, type ReleaseSigningKey } from '../activities/gitops/attest';
import {
  CodecKeyConfigError,
  codecDataConverter,
  loadCodecKeys,
  type CodecKey,
} from '../client/connection/payload-codec';
import {
  describeTemporalConnection,
  loadTemporalConnectionConfig,
  temporalConnectOptions,
  TemporalConnectionConfigError,
  type TemporalConnectOptions,
  type TemporalConnectionConfig,
} from '../client/connection/temporal-connection';

// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the rest of the connection: loadTemporalConnectionConfig, as in the CLI.
const settingsSchema = z.object({
  MREL_TASK_QUEUE: z.string().min(1).default(RELEASE_TASK_QUEUE),
  MREL_EVALUATION_TASK_QUEUE: z.string().min(1).default(EVALUATION_TASK_QUEUE),
  MREL_DATA_DIR: z.string().min(1).default(join(PROJECT_ROOT, '.data')),
  MREL_STORE: z.string().min(1).optional(),
  // `file` (default) or `oci://host[:port]/repository`: checked by artifactStoreFromEnv when the worker builds it.
  MREL_ARTIFACT_STORE: z.string().optional(),
  // A kubeconfig file for the monitor stage's rollout watch; KUBECONFIG or the in-cluster service account otherwise.
  MREL_KUBECONFIG: z.string().min(1, 'must be the path of a kubeconfig file, or unset').optional(),
  // The model server's inference log directory (its INFERENCE_LOG_DIR, shared with this worker): drift and bias read it.
  MREL_INFERENCE_LOG_DIR: z.string().min(1, 'must be the path of the inference log directory, or unset').optional(),
  MREL_GITOPS_REPO: z.string().min(1).optional(),
  MREL_GITOPS_BRANCH: z.string().min(1).default('main'),
  MREL_SERVING_IMAGE: z.string().min(1).optional(),
  MREL_CONFIG_DIR: z.string().min(1).optional(),
  MREL_PRICING_FILE: z.string().min(1).optional(),
  HF_ENDPOINT: z.string().url('must be a URL such as https://huggingface.co').optional(),
  HF_TOKEN: z.string().min(1).optional(),
  // Added to config/sources.yaml when the workers load it; checked here too, so a typo stops the worker at start.
  ...sourceOverridesEnvSchema.shape,
  MREL_SOURCE_CA_FILE: z.string().min(1, 'must be the path of a PEM file of CA certificates, or unset').optional(),
  MREL_WORKFLOW_BUNDLE: z
    .string()
    .min(1, 'must be the path of a workflow bundle (npm run build:workflows), or unset to bundle at start')
    .optional(),
  // The SDK binds it as a socket address: an IP literal, not a host name. Empty or unset: no metrics endpoint.
  MREL_METRICS_ADDRESS: z
    .string()
    .refine(isMetricsAddress, 'must be ip:port, e.g. 127.0.0.1:9464 (0.0.0.0:9464 lets another host scrape it)')
    .optional(),
  MREL_UI_URL: z.string().url('must be the Temporal UI base URL, e.g. https://temporal.example.com').optional(),
  // The release signing key (Ed25519, PKCS8 PEM): a file, or the PEM itself. Unset: releases commit no attestation.
  MREL_SIGNING_KEY_FILE: z.string().min(1, 'must be the path of a PKCS8 PEM Ed25519 private key, or unset').optional(),
  MREL_SIGNING_KEY: z.string().min(1, 'must be a PKCS8 PEM Ed25519 private key, or unset').optional(),
});

export interface Settings {
  address: string;
  namespace: string;
  /**
   * The whole connection as configured (profile, TLS, API key): loadSettings fills it; without it the worker
   * connects in plaintext to `address`.
   */
  temporal?: TemporalConnectionConfig;
  /** The payload codec's keys (MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE); payloads stay plain without them. */
  codecKeys?: CodecKey[];
  taskQueue: string;
  /**
   * The evaluation worker's queue; the release workflow schedules evaluations on `evaluation`, so the release worker
   * hands it to every release it starts (the release plan schedules evaluations there). Default `evaluation`.
   */
  evaluationTaskQueue?: string;
  dataDir: string;
  storeRoot: string;
  /**
   * `oci://host[:port]/repository` for the registry artifact store (workers on different machines share it); unset
   * or `file` for the filesystem store at `storeRoot`.
   */
  artifactStore?: string;
  /** The kubeconfig file the rollout watch uses (MREL_KUBECONFIG); else KUBECONFIG, else in-cluster, else none. */
  kubeconfig?: string;
  /** The model server's inference log directory (MREL_INFERENCE_LOG_DIR); the drift and bias metrics need it. */
  inferenceLogDir?: string;
  gitopsRepo: string;
  gitopsBranch: string;
  gitopsWorkRoot: string;
  servingImage?: string;
  configDir?: string;
  pricingFile?: string;
  hfEndpoint?: string;
  hfToken?: string;
  /** PEM file of CA certificates trusted for https model sources besides the bundled roots (loadSourceCa reads it). */
  sourceCaFile?: string;
  /** A prebuilt workflow bundle (bundleWorkflowCode output): the worker starts without bundling the workflows. */
  workflowBundle?: string;
  /** Where the worker serves Prometheus metrics (the SDK's and the engine's) under /metrics; none when unset. */
  metricsAddress?: string;
  /** Base URL of the Temporal UI, for links in notifications. */
  uiUrl?: string;
  /**
   * The release signing key (MREL_SIGNING_KEY_FILE, a path, or MREL_SIGNING_KEY, the PEM itself); loadSigningKey reads
   * it. Releases then commit `attestation.dsse.json`; its public half goes in config/signing-keys/<keyid>.pub.
   */
  signingKey?: { file: string } | { pem: string };
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = settingsSchema.safeParse(env);
  const lines = parsed.success
    ? []
    : parsed.error.issues.map((i) => `environment variable ${i.path.join('.')}: ${i.message}`);
  let temporal: TemporalConnectionConfig | undefined;
  let codecKeys: CodecKey[] | undefined;
  try {
    temporal = loadTemporalConnectionConfig(env);
  } catch (err) {
    if (!(err instanceof TemporalConnectionConfigError)) throw err;
    lines.push(...err.problems);
  }
  try {
    codecKeys = loadCodecKeys(env);
  } catch (err) {
    if (!(err instanceof CodecKeyConfigError)) throw err;
    lines.push(...err.problems);
  }
  if (!parsed.success || temporal === undefined || lines.length > 0) throw new Error(lines.join('\n'));
  const e = parsed.data;
  const dataDir = isAbsolute(e.MREL_DATA_DIR) ? e.MREL_DATA_DIR : join(process.cwd(), e.MREL_DATA_DIR);
  return {
    address: temporal.address,
    namespace: temporal.namespace,
    temporal,
    ...(codecKeys === undefined ? {} : { codecKeys }),
    taskQueue: e.MREL_TASK_QUEUE,
    evaluationTaskQueue: e.MREL_EVALUATION_TASK_QUEUE,
    dataDir,
    storeRoot: e.MREL_STORE ?? join(dataDir, 'store'),
    artifactStore: e.MREL_ARTIFACT_STORE?.trim() || undefined,
    kubeconfig: e.MREL_KUBECONFIG,
    inferenceLogDir: e.MREL_INFERENCE_LOG_DIR,
    gitopsRepo: e.MREL_GITOPS_REPO ?? join(dataDir, 'gitops.git'),
    gitopsBranch: e.MREL_GITOPS_BRANCH,
    gitopsWorkRoot: join(dataDir, 'gitops-work'),
    servingImage: e.MREL_SERVING_IMAGE,
    configDir: e.MREL_CONFIG_DIR,
    pricingFile: e.MREL_PRICING_FILE,
    hfEndpoint: e.HF_ENDPOINT,
    hfToken: e.HF_TOKEN,
    sourceCaFile: e.MREL_SOURCE_CA_FILE,
    workflowBundle: e.MREL_WORKFLOW_BUNDLE,
    metricsAddress: e.MREL_METRICS_ADDRESS || undefined,
    uiUrl: e.MREL_UI_URL,
    ...(e.MREL_SIGNING_KEY_FILE !== undefined
      ? { signingKey: { file: e.MREL_SIGNING_KEY_FILE } }
      : e.MREL_SIGNING_KEY !== undefined
        ? { signingKey: { pem: e.MREL_SIGNING_KEY } }
        : {}),
  };
}

/**
 * The release signing key, read once when a worker starts so that a missing or broken key stops the worker instead of
 * failing every release; undefined when none is configured. Errors name the variable, never the key.
 */
export async function loadSigningKey(settings: Pick<Settings, 'signingKey'>): Promise<ReleaseSigningKey | undefined> {
  const configured = settings.signingKey;
  if (configured === undefined) return undefined;
  if ('pem' in configured) return parseSigningKey(configured.pem, 'environment variable MREL_SIGNING_KEY');
  let pem: string;
  try {
    pem = await readFile(configured.file, 'utf8');
  } catch (err) {
    throw new Error(
      `environment variable MREL_SIGNING_KEY_FILE: ${configured.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); point it at the release signing key, or unset it`,
    );
  }
  return parseSigningKey(pem, `environment variable MREL_SIGNING_KEY_FILE (${configured.file})`);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * The certificates of MREL_SOURCE_CA_FILE as one PEM bundle, read once when a worker starts so that a missing or
 * broken file stops the worker instead of failing every https release. Only certificate blocks are kept: a private
 * key pasted into the bundle by mistake goes no further.
 */
export async function loadSourceCa(settings: Pick<Settings, 'sourceCaFile'>): Promise<string | undefined> {
  const file = settings.sourceCaFile;
  if (file === undefined) return undefined;
  const problem = (why: string) =>
    new Error(
      `environment variable MREL_SOURCE_CA_FILE: ${file} ${why}; point it at a PEM file of the CA certificates ` +
        'that sign your model mirrors, or unset it',
    );
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw problem(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw problem('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      throw problem(`holds a certificate that cannot be parsed (certificate ${i + 1} of ${blocks.length})`);
    }
  }
  return `${blocks.join('\n')}\n`;
}

function isMetricsAddress(value: string): boolean {
  if (value === '') return true;
  const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(value);
  if (!match) return false;
  const [, ipv4, ipv6, port] = match;
  if (ipv4 !== undefined && isIP(ipv4) !== 4) return false;
  if (ipv6 !== undefined && isIP(ipv6) !== 6) return false;
  return Number(port) >= 1 && Number(port) <= 65_535;
}

/**
 * Runtime telemetry for Runtime.install: the SDK's metrics and the engine's (workflows/release-metrics.ts) on one
 * Prometheus endpoint, durations in seconds; no metrics when `metricsAddress` is unset. Runtime.install must run before
 * the process opens its first connection.
 */
export function runtimeTelemetry(settings: Pick<Settings, 'metricsAddress'>): TelemetryOptions {
  if (!settings.metricsAddress) return {};
  return {
    metrics: {
      prometheus: {
        bindAddress: settings.metricsAddress,
        useSecondsForDurations: true,
        histogramBucketOverrides: ENGINE_HISTOGRAM_BUCKETS,
      },
    },
  };
}

/**
 * The worker's artifact store: the filesystem store at `storeRoot`, or the registry store that MREL_ARTIFACT_STORE
 * names (its cache and insecure hosts from MREL_ARTIFACT_CACHE and MREL_INSECURE_REGISTRIES). A bad value stops the
 * worker at start, naming the variable.
 */
export function artifactStoreFor(settings: Settings, env: NodeJS.ProcessEnv = process.env): ArtifactStore {
  const store = { MREL_ARTIFACT_STORE: settings.artifactStore ?? 'file', MREL_STORE: settings.storeRoot };
  return artifactStoreFromEnv({ ...env, ...store }, settings.dataDir);
}

/** How a worker connects: the configured connection, or plaintext to `address` for settings built by hand. */
export function workerConnectOptions(settings: Pick<Settings, 'address' | 'temporal'>): TemporalConnectOptions {
  return settings.temporal ? temporalConnectOptions(settings.temporal) : { address: settings.address };
}

/** The worker's data converter: the payload codec when keys are configured, so it reads what the client wrote. */
export function workerDataConverter(settings: Pick<Settings, 'codecKeys'>): { dataConverter?: DataConverter } {
  const dataConverter = codecDataConverter(settings.codecKeys);
  return dataConverter ? { dataConverter } : {};
}

/** Where and how the worker connects, and whether it encrypts payloads: for its startup line; never a secret. */
export function describeWorkerConnection(
  settings: Pick<Settings, 'address' | 'namespace' | 'temporal' | 'codecKeys'>,
): string {
  const where = settings.temporal
    ? describeTemporalConnection(settings.temporal)
    : `${settings.address} (namespace ${settings.namespace})`;
  const [current] = settings.codecKeys ?? [];
  return current ? `${where}, payloads encrypted with key ${current.id}` : where;
}
