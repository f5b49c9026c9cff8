/**
 * One measurement of one metric: the `measureMetric` activity. The metric's provider gives a result (Prometheus here;
 * data drift and bias drift over the inference log from their own modules), the conditions judge it as Argo Rollouts
 * does, and the Measurement that goes into history is bounded. A provider that fails (unreachable, refused, no data
 * source on this worker) is an Error measurement, which the metric's consecutiveErrorLimit weighs: the activity
 * itself throws only for an input no workflow should send, or a bug.
 */
import { durationMs } from '../../../contract/duration';
import { ProductError } from '../../../contract/errors';
import {
  releaseArgs,
  type MeasureInput,
  type Measurement,
  type MeasurementPhase,
  type MonitorMetric,
} from '../../../contract/monitoring';
import { checkUrl, policyFetch, SourceNotAllowedError, type SourcePolicy } from '../../common/source-policy';
import type { ArtifactStore } from '../../store/artifact-store';
import { measureBias } from '../bias/provider';
import { measureDrift } from '../drift/provider';
import { evaluateConditions } from './conditions';
import { DEFAULT_QUERY_TIMEOUT_MS, fillArgs, PrometheusQueryError, queryPrometheus } from './prometheus';

export const MAX_RESULT_BYTES = 8 * 1024;
export const MAX_VALUE_CHARS = 200;
export const MAX_MESSAGE_CHARS = 500;

export interface AnalysisDeps {
  /** The artifact store: drift reads the evaluation dataset the release pinned from it. */
  store?: ArtifactStore;
  /** The inference log the model servers write (MREL_INFERENCE_LOG_DIR); drift and bias read it. */
  inferenceLogDir?: string;
  /**
   * When given, a Prometheus address must be on an allowed host and network (config/sources.yaml and MREL_SOURCE_*),
   * checked as the cost gate checks a traffic history's Prometheus, connection by connection.
   */
  sourcePolicy?: SourcePolicy;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  now?: () => Date;
}

/** What a provider found: the result the conditions see, a short rendering, or why it cannot say. */
export interface ProviderResult {
  result: unknown;
  value: string;
  inconclusive?: string;
}

/** A measurement request no workflow should send (permanent: retrying the same input cannot help). */
export class InvalidMeasureInput extends ProductError {
  readonly code = 'InvalidRequest';
  readonly permanent = true;
}

/** A metric's provider has nothing to measure with on this worker (a missing setting). */
class ProviderUnavailable extends Error {}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function render(result: unknown): string {
  if (typeof result === 'number') return formatNumber(result);
  if (Array.isArray(result) && result.every((x) => typeof x === 'number')) {
    return `[${result.map(formatNumber).join(', ')}]`;
  }
  return JSON.stringify(jsonSafe(result)) ?? String(result);
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)));
}

/** JSON has no NaN or infinities: they are kept as Prometheus writes them, so history shows what the conditions saw. */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : formatNumber(value);
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

const size = (value: unknown): number => JSON.stringify(value)?.length ?? 0;

/**
 * `value` cut down to at most `budget` characters of JSON: strings shortened, lists and maps keep what fits in order
 * and say how much they left out (`"… 12 more"`), scalar fields of a map before its nested ones.
 */
export function boundResult(value: unknown, budget = MAX_RESULT_BYTES): unknown {
  const safe = jsonSafe(value);
  return size(safe) <= budget ? safe : shrink(safe, budget);
}

function shrink(value: unknown, budget: number): unknown {
  if (size(value) <= budget) return value;
  if (typeof value === 'string') return clip(value, Math.max(1, budget - 2));
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    let used = 2;
    for (let i = 0; i < value.length; i++) {
      const room = budget - used - 20;
      if (room <= 2) {
        out.push(`… ${value.length - i} more`);
        break;
      }
      const item = shrink(value[i], room);
      const cost = size(item) + 1;
      if (item === undefined || used + cost > budget - 20) {
        out.push(`… ${value.length - i} more`);
        break;
      }
      out.push(item);
      used += cost;
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    const scalarsFirst = [
      ...entries.filter(([, v]) => v === null || typeof v !== 'object'),
      ...entries.filter(([, v]) => v !== null && typeof v === 'object'),
    ];
    const out: Record<string, unknown> = {};
    let used = 2;
    let left = 0;
    for (const [key, item] of scalarsFirst) {
      const room = budget - used - size(key) - 30;
      const shrunk = room > 2 ? shrink(item, room) : undefined;
      const cost = size(key) + 1 + size(shrunk) + 1;
      if (shrunk === undefined || used + cost > budget - 30) {
        left++;
        continue;
      }
      out[key] = shrunk;
      used += cost;
    }
    if (left > 0) out['…'] = `${left} more`;
    return out;
  }
  return undefined;
}

async function prometheusResult(
  metric: MonitorMetric,
  provider: { address: string; query: string; timeout?: string },
  input: MeasureInput,
  deps: AnalysisDeps,
): Promise<ProviderResult> {
  const args = { ...releaseArgs(input.labels), ...metric.args };
  const query = fillArgs(provider.query, args);
  let fetchImpl = deps.fetch;
  if (deps.sourcePolicy) {
    const field = `monitor metric ${metric.name}: provider.prometheus.address`;
    await checkUrl(provider.address, deps.sourcePolicy, field);
    fetchImpl = policyFetch(deps.sourcePolicy, field, deps.fetch);
  }
  const result = await queryPrometheus({
    address: provider.address,
    query,
    timeoutMs: provider.timeout === undefined ? DEFAULT_QUERY_TIMEOUT_MS : durationMs(provider.timeout),
    fetch: fetchImpl,
    signal: deps.signal,
  });
  return { result, value: render(result) };
}

async function runProvider(input: MeasureInput, deps: AnalysisDeps): Promise<ProviderResult> {
  const provider = input.metric.provider;
  if ('prometheus' in provider) return prometheusResult(input.metric, provider.prometheus, input, deps);
  // Without MREL_INFERENCE_LOG_DIR the providers say what to set; that is an Error measurement like any other.
  const logDir = deps.inferenceLogDir;
  if ('drift' in provider) {
    if (deps.store === undefined) throw new ProviderUnavailable('data drift needs the artifact store on this worker');
    return measureDrift(input, { logDir, store: deps.store, signal: deps.signal });
  }
  return measureBias(input, { logDir, signal: deps.signal });
}

/** Errors that are the provider's answer (or a missing setting), as opposed to a bug of ours. */
function isProviderFailure(err: unknown): err is Error {
  if (err instanceof PrometheusQueryError || err instanceof SourceNotAllowedError) return true;
  if (err instanceof ProviderUnavailable || err instanceof ProductError) return true;
  return err instanceof Error && !(err instanceof TypeError) && !(err instanceof ReferenceError);
}

/**
 * Takes one measurement of `input.metric`. Never throws for what the provider says or cannot say (an Error
 * measurement); throws InvalidMeasureInput for a malformed input, and rethrows when `deps.signal` aborts.
 */
export async function measureMetric(input: MeasureInput, deps: AnalysisDeps = {}): Promise<Measurement> {
  validateInput(input);
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const done = (phase: MeasurementPhase, value: string, message?: string, result?: unknown): Measurement => ({
    phase,
    value: clip(value, MAX_VALUE_CHARS),
    ...(result === undefined ? {} : { result: boundResult(result) }),
    ...(message === undefined ? {} : { message: clip(message, MAX_MESSAGE_CHARS) }),
    startedAt,
    finishedAt: now().toISOString(),
  });
  let provided: ProviderResult;
  try {
    provided = await runProvider(input, deps);
  } catch (err) {
    if (deps.signal?.aborted || !isProviderFailure(err)) throw err;
    return done('Error', 'error', err.message);
  }
  if (provided.inconclusive !== undefined) {
    return done('Inconclusive', provided.value, provided.inconclusive, provided.result);
  }
  const outcome = evaluateConditions(input.metric, provided.result);
  return done(outcome.phase, provided.value, outcome.message, provided.result);
}

const LINE = /^[^\r\n]{1,512}$/;

function validateInput(input: MeasureInput): void {
  const problems: string[] = [];
  const metric = input?.metric;
  if (typeof metric?.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(metric.name)) {
    problems.push('metric.name: must be a metric name');
  }
  const provider = metric?.provider as Record<string, unknown> | undefined;
  const kinds = provider && typeof provider === 'object' ? Object.keys(provider) : [];
  if (kinds.length !== 1 || !['prometheus', 'drift', 'bias'].includes(kinds[0] as string)) {
    problems.push('metric.provider: must be exactly one of prometheus, drift and bias');
  } else if (kinds[0] === 'prometheus') {
    const p = provider?.prometheus as { address?: unknown; query?: unknown; timeout?: unknown } | undefined;
    if (typeof p?.address !== 'string' || !/^https?:\/\//.test(p.address)) {
      problems.push('metric.provider.prometheus.address: must be an http(s) URL');
    }
    if (typeof p?.query !== 'string' || p.query.length === 0 || p.query.length > 4096) {
      problems.push('metric.provider.prometheus.query: must be PromQL of at most 4096 characters');
    }
    if (p?.timeout !== undefined && (typeof p.timeout !== 'string' || !isDuration(p.timeout))) {
      problems.push('metric.provider.prometheus.timeout: must be a duration');
    }
  }
  for (const field of ['successCondition', 'failureCondition'] as const) {
    const text = metric?.[field];
    if (text !== undefined && (typeof text !== 'string' || text.length > 1024)) {
      problems.push(`metric.${field}: must be an expression of at most 1024 characters`);
    }
  }
  const args = metric?.args;
  if (
    args === null ||
    typeof args !== 'object' ||
    Object.values(args).some((v) => typeof v !== 'string' || v.length > 1024)
  ) {
    problems.push('metric.args: must map names to strings');
  }
  const labels = input?.labels;
  for (const key of ['releaseId', 'model', 'version', 'environment', 'manifestDigest'] as const) {
    if (typeof labels?.[key] !== 'string' || !LINE.test(labels[key])) problems.push(`labels.${key}: must be one line`);
  }
  for (const key of ['namespace', 'workload'] as const) {
    const value = labels?.[key];
    if (value !== undefined && (typeof value !== 'string' || !/^[^\r\n]{0,512}$/.test(value))) {
      problems.push(`labels.${key}: must be one line`);
    }
  }
  if (typeof input?.windowStart !== 'string' || Number.isNaN(Date.parse(input.windowStart))) {
    problems.push('windowStart: must be an ISO time');
  }
  if (!Number.isInteger(input?.index) || input.index < 1) problems.push('index: must be a whole number ≥ 1');
  if (problems.length > 0) {
    throw new InvalidMeasureInput(`invalid measurement input: ${problems.join('; ')}`, { details: { problems } });
  }
}

function isDuration(text: string): boolean {
  try {
    durationMs(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The analysis activities. `measureMetric`: one measurement of one metric (see measureMetric above). Idempotent: it
 * only reads. Prometheus queries are bounded by the metric's timeout (default 30 s); the activity needs a
 * start-to-close timeout above it. Non-retryable: InvalidMeasureInput (map its type in the retry policy).
 */
export function createAnalysisActivities(deps: AnalysisDeps = {}) {
  return {
    async measureMetric(input: MeasureInput): Promise<Measurement> {
      return measureMetric(input, deps);
    },
  };
}
