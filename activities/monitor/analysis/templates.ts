/**
 * Ready metrics over what the model server (serving/) exports, so that a policy can say `template: p95-latency`
 * instead of writing PromQL. Each is a Prometheus query with `{{args.*}}` placeholders (the release's `model` and
 * `version` among them), conditions over its result, and defaults for its own args, which the metric's `args`
 * override.
 *
 * Every template gives both conditions, so that a window without traffic (an empty vector, or 0/0 = NaN) is
 * Inconclusive rather than Failed: Argo's rule when neither condition holds.
 */

/** The series the model server exports (serving/), labelled `model` and `version` by the server itself. */
export const MODEL_SERVER_METRICS = {
  duration: 'modelserver_request_duration_seconds',
  requests: 'modelserver_requests_total',
  errors: 'modelserver_request_errors_total',
} as const;

export interface MetricTemplate {
  description: string;
  query: string;
  successCondition: string;
  failureCondition: string;
  /** Defaults of the template's own args (strings, as every arg is). */
  args: Record<string, string>;
  /** Between measurements, unless the metric sets its own. */
  interval: string;
}

const RELEASE_SELECTOR = 'model="{{args.model}}",version="{{args.version}}"';

export const METRIC_TEMPLATES = {
  'p95-latency': {
    description: '95th percentile of request latency in seconds; args.threshold (seconds, default 0.5)',
    query:
      `histogram_quantile(0.95, sum by (le) (rate(${MODEL_SERVER_METRICS.duration}_bucket{${RELEASE_SELECTOR}}` +
      `[{{args.range}}])))`,
    successCondition: 'len(result) > 0 && result[0] <= {{args.threshold}}',
    failureCondition: 'len(result) > 0 && result[0] > {{args.threshold}}',
    args: { threshold: '0.5', range: '5m' },
    interval: '5m',
  },
  'error-rate': {
    description:
      'share of requests the server failed (5xx) or shed (429); client errors (other 4xx) do not count; args.threshold (a share, default 0.01)',
    query:
      `(sum(rate(${MODEL_SERVER_METRICS.requests}{${RELEASE_SELECTOR},code=~"5..|429"}[{{args.range}}])) or vector(0))` +
      ` / sum(rate(${MODEL_SERVER_METRICS.requests}{${RELEASE_SELECTOR}}[{{args.range}}]))`,
    successCondition: 'len(result) > 0 && result[0] <= {{args.threshold}}',
    failureCondition: 'len(result) > 0 && result[0] > {{args.threshold}}',
    args: { threshold: '0.01', range: '5m' },
    interval: '5m',
  },
  traffic: {
    description:
      'requests per second; below args.minRps (default 1) the window is Inconclusive, below args.failBelow (default 0: never) it fails',
    query: `sum(rate(${MODEL_SERVER_METRICS.requests}{${RELEASE_SELECTOR}}[{{args.range}}]))`,
    successCondition: 'len(result) > 0 && result[0] >= {{args.minRps}}',
    failureCondition: 'len(result) > 0 && result[0] < {{args.failBelow}}',
    args: { minRps: '1', failBelow: '0', range: '5m' },
    interval: '5m',
  },
} as const satisfies Record<string, MetricTemplate>;

export type TemplateName = keyof typeof METRIC_TEMPLATES;
export const TEMPLATE_NAMES = Object.keys(METRIC_TEMPLATES) as [TemplateName, ...TemplateName[]];

/** A PromQL range duration such as 5m, 1h30m or 90s. */
const PROMQL_DURATION = /^(?:\d{1,6}(?:ms|s|m|h|d|w|y))+$/;

/** What each template arg must look like, and what to do otherwise; args the templates do not use are not checked. */
export function templateArgProblem(name: string, value: string): string | undefined {
  if (name === 'range') {
    return PROMQL_DURATION.test(value) ? undefined : 'must be a PromQL duration such as 5m or 1h';
  }
  if (['threshold', 'minRps', 'failBelow'].includes(name)) {
    return /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/.test(value) && Number.isFinite(Number(value))
      ? undefined
      : 'must be a number (it is compared with the result)';
  }
  return undefined;
}
