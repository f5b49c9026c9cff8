/**
 * The policy's `monitor:` section: how long the live model is watched after a healthy rollout, what is measured (in
 * Argo Rollouts' AnalysisTemplate terms) and what a breach leads to, with per-environment overrides.
 *
 *   monitor:
 *     window: 24h
 *     onBreach: rollback            # rollback | pause | record
 *     pause: { roles: [release-manager], timeout: 4h, onTimeout: rollback }
 *     prometheus: { address: http://prometheus.monitoring:9090 }   # what templates and queries default to
 *     metrics:
 *       - name: latency
 *         template: p95-latency     # p95-latency | error-rate | traffic (templates.ts)
 *         args: { threshold: 0.3 }
 *       - name: slow-requests
 *         provider:
 *           prometheus: { query: 'sum(rate(x{model="{{args.model}}"}[5m]))', timeout: 10s }
 *         interval: 10m
 *         count: 6
 *         successCondition: result[0] < 5
 *         failureLimit: 1
 *       - name: data-drift
 *         provider: { drift: { minRows: 200 } }
 *         interval: 1h
 *         successCondition: '!result.datasetDrift'
 *     environments:
 *       production:
 *         window: 72h
 *         prometheus: { address: https://prometheus.prod.internal }
 *         metrics: [{ name: latency, args: { threshold: 0.2 } }]
 *
 * An environment's metric of a known name overrides that metric field by field (args merge; a provider, or either
 * condition, replaces the section's whole); a new name adds a metric for that environment only.
 * `drift:` under `monitor:` holds the data drift settings (activities/monitor/drift/policy.ts). The whole section is
 * checked when the policy loads, naming the field; resolveMonitor then gives the environment's MonitorPolicy with
 * templates expanded, `{{args.*}}` filled into conditions, and Argo's defaults.
 */
import { z } from 'zod';
import ipaddr from 'ipaddr.js';
// Not config/loader or config/schema: the loader is handed this section's validator, and importing either
// would close a cycle.
import { ConfigError } from '../../../config/yaml-file';
import { durationMs, durationSchema, parseDuration } from '../../../contract/duration';
import {
  releaseArgs,
  type BreachAction,
  type MetricProvider,
  type MonitorMetric,
  type MonitorPolicy,
} from '../../../contract/monitoring';
import { zodProblems } from '../../../contract/problems';
import { InvalidPolicy } from '../../gate/gate';
import { parseDriftPolicy } from '../drift/policy';
import { conditionProblem, MAX_CONDITION_CHARS } from './conditions';
import { fillArgs, placeholdersOf } from './prometheus';
import { METRIC_TEMPLATES, TEMPLATE_NAMES, templateArgProblem, type MetricTemplate } from './templates';

/** Argo Rollouts' defaults, and ours for what Argo has no word on. */
export const MONITOR_DEFAULTS = {
  window: '24h',
  onBreach: 'rollback' as BreachAction,
  pauseTimeout: '4h',
  pauseOnTimeout: 'rollback' as const,
  failureLimit: 0,
  inconclusiveLimit: 0,
  consecutiveErrorLimit: 4,
};

export const MAX_METRICS = 20;
const MAX_ARGS = 50;

/** The release's labels, available to every query as `{{args.<name>}}`. */
export const RELEASE_ARG_NAMES: readonly string[] = Object.keys(
  releaseArgs({ releaseId: '', model: '', version: '', environment: '', manifestDigest: '' }),
);

const ROLE = z.string().regex(/^[a-z][a-z0-9-]*$/, 'roles are lower-case words joined by "-" (e.g. release-manager)');

/** A DNS name, as config/sources.yaml spells hosts (without its wildcards). */
const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Why an address cannot be Prometheus' base URL, without repeating it (it might carry a password). */
export function prometheusAddressProblem(address: string): string | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return 'must be an http(s) URL such as http://prometheus.monitoring:9090';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `must be an http:// or https:// URL, not ${url.protocol.slice(0, 20)}`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'must not carry credentials (user:password@): policies live in Git; put an authenticating proxy in front';
  }
  if (url.search !== '' || url.hash !== '') return 'must be the base URL, without ?query or #fragment';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!HOST_NAME.test(host) && !ipaddr.isValid(host)) {
    return 'must name a host: a DNS name (prometheus.monitoring.svc) or an IP address';
  }
  return undefined;
}

const addressSchema = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .superRefine((address, ctx) => {
    const problem = prometheusAddressProblem(address);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** `0s` and the like are allowed here (no delay); everything else is a positive duration. */
const delaySchema = z
  .string()
  .max(32)
  .refine((text) => /^0+(?:\.0+)?\s*(?:ms|s|m|h|d|w)?$/.test(text) || parseDuration(text) !== undefined, {
    message: 'must be 0s or a positive duration such as 90s, 30m or 2h',
  });

const argsSchema = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/, 'arg names are letters, digits, "_" and "-"'),
    z
      .union([z.string().max(1024, 'must be at most 1024 characters'), z.number(), z.boolean()], {
        message: 'must be a string or a number',
      })
      .transform(String),
  )
  .refine((args) => Object.keys(args).length <= MAX_ARGS, { message: `at most ${MAX_ARGS} args` });

const conditionSchema = z.string().max(MAX_CONDITION_CHARS, `must be at most ${MAX_CONDITION_CHARS} characters`);
const limitSchema = z.number().int('must be a whole number').min(0, 'must be ≥ 0').max(1_000_000);
const columnsSchema = z.array(z.string().min(1).max(256)).max(1000);

const providerSchema = z
  .object({
    prometheus: z
      .object({
        address: addressSchema.optional(),
        query: z.string().min(1, 'give the PromQL query').max(4096, 'must be at most 4096 characters').optional(),
        timeout: durationSchema.optional(),
      })
      .strict()
      .optional(),
    drift: z
      .object({
        columns: columnsSchema.optional(),
        categorical: columnsSchema.optional(),
        overrides: z.record(z.string().min(1).max(256), z.unknown()).optional(),
        minRows: z.number().int('must be a whole number').min(1, 'must be ≥ 1').optional(),
      })
      .strict()
      .optional(),
    bias: z
      .object({
        metrics: z.array(z.string().min(1).max(128)).max(50).optional(),
        minRows: z.number().int('must be a whole number').min(1, 'must be ≥ 1').optional(),
        resamples: z.number().int('must be a whole number').min(1, 'must be ≥ 1').max(100_000).optional(),
        confidence: z.number().gt(0, 'must be in (0, 1)').lt(1, 'must be in (0, 1)').optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => [p.prometheus, p.drift, p.bias].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one provider: prometheus, drift or bias',
  });

const metricSchema = z
  .object({
    name: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required: every metric has a name' : undefined) })
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
        'metric names are letters, digits, ".", "_" and "-", at most 63 (e.g. p95-latency)',
      ),
    template: z.enum(TEMPLATE_NAMES, { message: `must be one of ${TEMPLATE_NAMES.join(', ')}` }).optional(),
    provider: providerSchema.optional(),
    args: argsSchema.optional(),
    interval: durationSchema.optional(),
    count: z.number().int('must be a whole number').min(1, 'must be ≥ 1').max(100_000).optional(),
    initialDelay: delaySchema.optional(),
    successCondition: conditionSchema.optional(),
    failureCondition: conditionSchema.optional(),
    failureLimit: limitSchema.optional(),
    inconclusiveLimit: limitSchema.optional(),
    consecutiveErrorLimit: limitSchema.optional(),
  })
  .strict();
type RawMetric = z.infer<typeof metricSchema>;

const metricsSchema = z
  .array(metricSchema)
  .max(MAX_METRICS, `at most ${MAX_METRICS} metrics`)
  .superRefine((metrics, ctx) => {
    const seen = new Map<string, number>();
    metrics.forEach((m, i) => {
      const first = seen.get(m.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'name'],
          message: `"${m.name}" is already the name of metrics[${first}]; metric names must be unique`,
        });
      } else seen.set(m.name, i);
    });
  });

const monitorSettings = {
  window: durationSchema.optional(),
  onBreach: z.enum(['rollback', 'pause', 'record'], { message: 'must be rollback, pause or record' }).optional(),
  pause: z
    .object({
      roles: z.array(ROLE).min(1, 'name at least one role that may decide a paused release').optional(),
      timeout: durationSchema.optional(),
      onTimeout: z.enum(['rollback', 'keep'], { message: 'must be rollback or keep' }).optional(),
    })
    .strict()
    .optional(),
  /** The Prometheus that templates and queries without an address of their own ask. */
  prometheus: z.object({ address: addressSchema.optional(), timeout: durationSchema.optional() }).strict().optional(),
  metrics: metricsSchema.optional(),
  /**
   * History events per run before the release continues as new during its window (default 10,000): lower keeps each
   * run's history short for long windows with many metrics.
   */
  continueAsNewAfter: z
    .number({ message: 'must be a whole number of history events' })
    .int('must be a whole number of history events')
    .min(200, 'must be at least 200 history events (a run must have room for a round of measurements)')
    .max(50_000, 'must be at most 50,000 history events (Temporal warns at 10,240 events)')
    .optional(),
};

/** The `monitor:` section as written. */
export const monitorSectionSchema = z
  .object({
    ...monitorSettings,
    /** Data drift settings (activities/monitor/drift/policy.ts checks them). */
    drift: z.unknown().optional(),
    environments: z.record(z.string().min(1).max(63), z.object(monitorSettings).strict()).optional(),
  })
  .strict();
export type MonitorSection = z.infer<typeof monitorSectionSchema>;

type Settings = Omit<MonitorSection, 'drift' | 'environments'>;

/** One metric of an environment's view and where each of its fields was written. */
interface Located {
  metric: RawMetric;
  /** `monitor.…metrics[i].<field>`, in the list that wrote the field (its first segment). */
  at: (field: string) => string;
  /** The metric's path in the list that wrote `field`. */
  source: (field: string) => string;
}

/** The metrics of `env` (or of the section itself): the section's, each merged with the environment's of that name. */
function metricsOf(section: MonitorSection, env: string | undefined): Located[] {
  const global = section.metrics ?? [];
  const local = env === undefined ? [] : (section.environments?.[env]?.metrics ?? []);
  const globalPath = (i: number) => `monitor.metrics[${i}]`;
  const localPath = (j: number) => `monitor.environments.${env}.metrics[${j}]`;
  const located = (metric: RawMetric, source: (field: string) => string): Located => ({
    metric,
    source,
    at: (field) => `${source(field)}.${field}`,
  });
  const out: Located[] = global.map((metric, i) => {
    const j = local.findIndex((m) => m.name === metric.name);
    const override = local[j];
    if (override === undefined) return located(metric, () => globalPath(i));
    const defined = Object.fromEntries(Object.entries(override).filter(([, v]) => v !== undefined)) as RawMetric;
    const merged: RawMetric = { ...metric, ...defined, args: { ...metric.args, ...override.args } };
    // A metric that brings its own conditions replaces both of the section's (or the template's).
    if (override.successCondition !== undefined || override.failureCondition !== undefined) {
      merged.successCondition = override.successCondition;
      merged.failureCondition = override.failureCondition;
    }
    return located(merged, (field) => ((field.split('.')[0] ?? field) in defined ? localPath(j) : globalPath(i)));
  });
  local.forEach((metric, j) => {
    if (!global.some((m) => m.name === metric.name)) out.push(located(metric, () => localPath(j)));
  });
  return out;
}

function settingsOf(section: MonitorSection, env: string | undefined): Settings {
  const local = env === undefined ? undefined : section.environments?.[env];
  return {
    window: local?.window ?? section.window,
    onBreach: local?.onBreach ?? section.onBreach,
    pause: { ...section.pause, ...local?.pause },
    prometheus: { ...section.prometheus, ...local?.prometheus },
    continueAsNewAfter: local?.continueAsNewAfter ?? section.continueAsNewAfter,
  };
}

function settingAt(section: MonitorSection, env: string | undefined, field: 'window'): string {
  return env !== undefined && section.environments?.[env]?.[field] !== undefined
    ? `monitor.environments.${env}.${field}`
    : `monitor.${field}`;
}

/** A metric with its template expanded and Argo's defaults filled in, or the problems that stop it. */
function resolveMetric(
  { metric, at, source }: Located,
  defaults: Settings['prometheus'],
  problems: string[],
): MonitorMetric | undefined {
  const before = problems.length;
  const template: MetricTemplate | undefined = metric.template ? METRIC_TEMPLATES[metric.template] : undefined;
  const args: Record<string, string> = { ...template?.args, ...metric.args };
  let argsUsable = true;
  let provider: MetricProvider | undefined;
  if (template) {
    if (metric.provider?.drift || metric.provider?.bias) {
      problems.push(`${at('provider')}: a template queries Prometheus; drop the template or the drift/bias provider`);
    } else if (metric.provider?.prometheus?.query !== undefined) {
      problems.push(
        `${at('provider.prometheus.query')}: the template ${metric.template} brings its query; drop the template or the query`,
      );
    }
    for (const [name, value] of Object.entries(args)) {
      if (!(name in template.args)) continue;
      const problem = templateArgProblem(name, value);
      if (problem) {
        problems.push(`${at(`args.${name}`)}: ${problem}`);
        argsUsable = false;
      }
    }
  }
  const prometheus = metric.provider?.prometheus;
  if (template || prometheus) {
    const address = prometheus?.address ?? defaults?.address;
    const query = template?.query ?? prometheus?.query;
    const timeout = prometheus?.timeout ?? defaults?.timeout;
    if (address === undefined) {
      problems.push(
        `${at('provider.prometheus.address')}: is required: the Prometheus to ask (or set monitor.prometheus.address for every metric)`,
      );
    }
    if (query === undefined) {
      problems.push(`${at('provider.prometheus.query')}: is required: the PromQL whose result the conditions judge`);
    } else {
      const { args: used, invalid } = placeholdersOf(query);
      for (const placeholder of invalid) {
        problems.push(`${at('provider.prometheus.query')}: ${placeholder} is not a {{args.<name>}} placeholder`);
      }
      for (const name of used) {
        if (!(name in args) && !RELEASE_ARG_NAMES.includes(name)) {
          problems.push(
            `${at('provider.prometheus.query')}: uses args.${name}, which has no value; add it under args (the release gives ${RELEASE_ARG_NAMES.join(', ')})`,
          );
        }
      }
    }
    if (address !== undefined && query !== undefined) {
      provider = { prometheus: { address, query, ...(timeout === undefined ? {} : { timeout }) } };
    }
  } else if (metric.provider?.drift) provider = { drift: metric.provider.drift };
  else if (metric.provider?.bias) provider = { bias: metric.provider.bias };
  else {
    problems.push(
      `${at('provider')}: give a template (${TEMPLATE_NAMES.join(', ')}) or a provider (prometheus, drift or bias)`,
    );
  }
  const interval = metric.interval ?? template?.interval;
  if (metric.count !== undefined && metric.count > 1 && interval === undefined) {
    // Named where count was set: an environment that raises count is the one that needs an interval.
    problems.push(`${source('count')}.interval: is required when count is more than 1 (the time between measurements)`);
  }
  const own = metric.successCondition !== undefined || metric.failureCondition !== undefined;
  const conditions: Partial<Record<'successCondition' | 'failureCondition', string>> = {};
  for (const field of ['successCondition', 'failureCondition'] as const) {
    // A template's conditions hold its args: a bad threshold is reported once, at the arg.
    if (!own && !argsUsable) continue;
    const written = own ? metric[field] : template?.[field];
    if (written === undefined) continue;
    let text: string;
    try {
      // Conditions take the metric's args as written: a threshold is part of the expression.
      text = fillArgs(written, args, (value) => value);
    } catch (err) {
      problems.push(`${at(field)}: ${(err as Error).message}`);
      continue;
    }
    const problem = conditionProblem(text);
    if (problem) problems.push(`${at(field)}: ${problem}`);
    else conditions[field] = text;
  }
  if (problems.length > before || provider === undefined) return undefined;
  return {
    name: metric.name,
    provider,
    args,
    ...(interval === undefined ? {} : { interval }),
    ...(metric.count === undefined ? {} : { count: metric.count }),
    ...(metric.initialDelay === undefined ? {} : { initialDelay: metric.initialDelay }),
    ...conditions,
    failureLimit: metric.failureLimit ?? MONITOR_DEFAULTS.failureLimit,
    inconclusiveLimit: metric.inconclusiveLimit ?? MONITOR_DEFAULTS.inconclusiveLimit,
    consecutiveErrorLimit: metric.consecutiveErrorLimit ?? MONITOR_DEFAULTS.consecutiveErrorLimit,
  };
}

function delayMs(text: string | undefined): number {
  return text === undefined ? 0 : (parseDuration(text) ?? 0);
}

/** The policy of one environment (or of the section itself) and the problems that stop it. */
function resolveView(
  section: MonitorSection,
  env: string | undefined,
  approvalRoles: readonly string[],
): { policy: MonitorPolicy; problems: string[] } {
  const problems: string[] = [];
  const settings = settingsOf(section, env);
  const window = settings.window ?? MONITOR_DEFAULTS.window;
  const metrics: MonitorMetric[] = [];
  for (const located of metricsOf(section, env)) {
    const metric = resolveMetric(located, settings.prometheus, problems);
    if (!metric) continue;
    if (delayMs(metric.initialDelay) > durationMs(window)) {
      problems.push(
        `${located.at('initialDelay')}: ${metric.initialDelay} is longer than the window (${window} at ${settingAt(section, env, 'window')}); the metric would never be measured`,
      );
    }
    metrics.push(metric);
  }
  return {
    policy: {
      window,
      metrics,
      onBreach: settings.onBreach ?? MONITOR_DEFAULTS.onBreach,
      pause: {
        roles: [...(settings.pause?.roles ?? approvalRoles)],
        timeout: settings.pause?.timeout ?? MONITOR_DEFAULTS.pauseTimeout,
        onTimeout: settings.pause?.onTimeout ?? MONITOR_DEFAULTS.pauseOnTimeout,
      },
      ...(settings.continueAsNewAfter === undefined ? {} : { continueAsNewAfter: settings.continueAsNewAfter }),
    },
    problems,
  };
}

function parse(section: unknown, file: string): { section?: MonitorSection; problems: string[] } {
  const parsed = monitorSectionSchema.safeParse(section ?? {});
  if (!parsed.success) return { problems: zodProblems(parsed.error, 'monitor') };
  const problems: string[] = [];
  try {
    parseDriftPolicy(section, file);
  } catch (err) {
    if (!(err instanceof InvalidPolicy)) throw err;
    problems.push(...err.problems);
  }
  return { section: parsed.data, problems };
}

/**
 * Every problem of a `monitor:` section, each naming its field (`monitor.metrics[1].interval: …`): the schema, the
 * section's own view and every environment's (merged) view, and the roles of the pause path against `knownRoles`.
 */
export function monitorPolicyProblems(
  section: unknown,
  knownRoles: readonly string[] | undefined,
  file = 'policy',
): string[] {
  const parsed = parse(section, file);
  if (!parsed.section) return parsed.problems;
  const problems = new Set(parsed.problems);
  const data = parsed.section;
  for (const env of [undefined, ...Object.keys(data.environments ?? {})]) {
    for (const problem of resolveView(data, env, []).problems) problems.add(problem);
  }
  if (knownRoles !== undefined) {
    const check = (at: string, roles: readonly string[] | undefined) =>
      roles?.forEach((role, i) => {
        if (!knownRoles.includes(role)) {
          problems.add(
            `${at}.pause.roles[${i}] "${role}" is not a known role (known: ${knownRoles.join(', ')}); add it under roles: in approvers.yaml or fix the name`,
          );
        }
      });
    check('monitor', data.pause?.roles);
    for (const [env, settings] of Object.entries(data.environments ?? {})) {
      check(`monitor.environments.${env}`, settings.pause?.roles);
    }
  }
  return [...problems];
}

/**
 * The `monitor:` section resolved for `environment`: the environment's overrides over the section, templates expanded,
 * defaults filled in; the pause path defaults to the roles that may approve the environment. Undefined when the policy
 * has no section or the environment has no metric (nothing to watch). Throws ConfigError naming the field for a
 * section that does not pass monitorPolicyProblems.
 */
export function resolveMonitor(
  section: unknown,
  environment: string,
  approvalRoles: readonly string[],
  file = 'policy',
): MonitorPolicy | undefined {
  if (section === undefined || section === null) return undefined;
  const problems = monitorPolicyProblems(section, undefined, file);
  if (problems.length > 0) throw new ConfigError(file, problems);
  const data = monitorSectionSchema.parse(section);
  const { policy } = resolveView(data, environment, approvalRoles);
  return policy.metrics.length > 0 ? policy : undefined;
}
