/**
 * The traffic profile a release declares in `request.traffic`: how much load the model will serve, how fast it must
 * answer, for how many hours, and optionally a history (CSV or Prometheus range query) to forecast from. The request
 * schema carries `traffic` as an open record; this is its shape, validated by the cost gate with field-named errors.
 */
import { z } from 'zod';
import { durationSchema, parseDuration } from '../../contract/duration';
import { zodProblems } from '../../contract/problems';
import { CostError } from './errors';

/** An instant: ISO 8601 time, `now`, or `now-<duration>` (e.g. now-28d). */
const instantSchema = z
  .string()
  .max(64, 'must be at most 64 characters (an ISO time, "now" or "now-<duration>")')
  .refine((s) => resolveInstant(s, 0) !== undefined, {
    message: 'must be an ISO time (2025-01-31T00:00:00Z), "now" or "now-<duration>" such as now-28d',
  });

/** Resolves an instant against `nowMs`; undefined when it is not one. */
export function resolveInstant(text: string, nowMs: number): number | undefined {
  const t = text.trim();
  if (t === 'now') return nowMs;
  const rel = /^now-(.+)$/.exec(t);
  if (rel) {
    const ms = parseDuration(rel[1] as string);
    return ms === undefined ? undefined : nowMs - ms;
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

const positive = (what: string) =>
  z.number({ message: `must be a number (${what})` }).positive(`must be > 0 (${what})`);
const nonNegative = (what: string) =>
  z.number({ message: `must be a number (${what})` }).nonnegative(`must be ≥ 0 (${what})`);

export const prometheusHistorySchema = z
  .object({
    /** Base URL of the Prometheus server, e.g. http://prometheus:9090. */
    url: z
      .url({ message: 'must be the Prometheus base URL, e.g. http://prometheus:9090' })
      .max(2048, 'must be at most 2048 characters'),
    /** PromQL whose single series is the request rate in requests/s. */
    query: z
      .string()
      .min(1, 'give the PromQL query that yields requests per second')
      .max(4096, 'must be at most 4096 characters'),
    start: instantSchema.default('now-28d'),
    end: instantSchema.default('now'),
    step: durationSchema.default('1h'),
  })
  .strict();

export const trafficHistorySchema = z
  .object({
    /** A manifest path (a file shipped with the model) or an absolute path readable by the worker. */
    csv: z
      .string()
      .min(1, 'name the CSV file of timestamped request counts')
      .max(1024, 'must be at most 1024 characters')
      .optional(),
    prometheus: prometheusHistorySchema.optional(),
  })
  .strict()
  .refine((h) => (h.csv === undefined) !== (h.prometheus === undefined), {
    message: 'give either csv or prometheus',
  });

export const trafficSchema = z
  .object({
    averageRequestsPerSecond: nonNegative('requests per second, averaged over the hours of operation').optional(),
    peakRequestsPerSecond: positive('requests per second at the busiest time').optional(),
    tokensPerRequest: positive('tokens generated and read per request, for language models').optional(),
    rowsPerRequest: positive('rows (examples) per request, for tabular or batch models').optional(),
    /** Latency objective at the policy's percentile (default p95); the policy's default applies when absent. */
    latencySloMs: positive('latency objective in milliseconds').optional(),
    hoursPerDay: z.number().positive('must be > 0').max(24, 'must be ≤ 24').default(24),
    daysPerMonth: z.number().positive('must be > 0').max(31, 'must be ≤ 31').default(30.4),
    /** Declared compute when the evaluation measured no throughput: time for one request on `measuredOn`. */
    compute: z
      .object({
        msPerRequest: positive('milliseconds of compute for one request'),
        /** `reference` (the catalog's reference machine) or an instance type of config/pricing.yaml. */
        measuredOn: z.string().min(1).max(128, 'must be at most 128 characters').default('reference'),
      })
      .strict()
      .optional(),
    history: trafficHistorySchema.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.tokensPerRequest !== undefined && t.rowsPerRequest !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rowsPerRequest'],
        message: 'give tokensPerRequest (language models) or rowsPerRequest (others), not both',
      });
    }
    if (t.history === undefined) {
      for (const key of ['averageRequestsPerSecond', 'peakRequestsPerSecond'] as const) {
        if (t[key] === undefined) {
          ctx.addIssue({ code: 'custom', path: [key], message: 'is required when no history is given' });
        }
      }
    }
    if (
      t.averageRequestsPerSecond !== undefined &&
      t.peakRequestsPerSecond !== undefined &&
      t.peakRequestsPerSecond < t.averageRequestsPerSecond
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['peakRequestsPerSecond'],
        message: `(${t.peakRequestsPerSecond}) must be ≥ averageRequestsPerSecond (${t.averageRequestsPerSecond})`,
      });
    }
  });

export type TrafficProfile = z.infer<typeof trafficSchema>;
export type TrafficHistory = z.infer<typeof trafficHistorySchema>;

/** What one request costs in work units: tokens for language models, rows otherwise (1 row by default). */
export function workUnits(traffic: TrafficProfile): { unit: 'tokens' | 'rows'; perRequest: number } {
  if (traffic.tokensPerRequest !== undefined) return { unit: 'tokens', perRequest: traffic.tokensPerRequest };
  return { unit: 'rows', perRequest: traffic.rowsPerRequest ?? 1 };
}

/** Validates `request.traffic`; throws CostError('InvalidTraffic') with one problem per bad field. */
export function parseTraffic(raw: unknown): TrafficProfile {
  if (raw === undefined || raw === null) {
    throw new CostError(
      'InvalidTraffic',
      'request.traffic is missing: declare averageRequestsPerSecond and peakRequestsPerSecond (or a history) so the cost can be estimated',
    );
  }
  const parsed = trafficSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = zodProblems(parsed.error, 'request.traffic');
  throw new CostError('InvalidTraffic', `invalid traffic profile: ${problems.join('; ')}`, problems);
}
