/**
 * The policy's `monitor:` section: checked when the policy loads (each problem names its field), then resolved per
 * environment with templates expanded, args filled into conditions and Argo's defaults.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { createConfigActivities } from '../../../activities/config';
import { POLICY_SECTIONS } from '../../../activities/gate-policies';
import { monitorPolicyProblems, resolveMonitor } from '../../../activities/monitor/analysis/policy';
import { METRIC_TEMPLATES } from '../../../activities/monitor/analysis/templates';
import { ConfigError, loadApprovers, loadPolicy, resolveReleaseConfig } from '../../../config/loader';

const FIXTURE_CONFIG = resolve(import.meta.dirname, '../../fixtures/config');
const PROM = 'http://prometheus.monitoring:9090';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-monitor-policy-'));
  await cp(FIXTURE_CONFIG, join(dir, 'config'), { recursive: true });
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const APPROVAL = `approval:
  timeout: 72h
  environments:
    staging: { minApprovers: 1, allowedRoles: [ml-lead, release-manager] }
    production: { minApprovers: 1, allowedRoles: [release-manager] }
`;

async function loadWithMonitor(monitor: string) {
  const config = join(dir, 'config');
  await writeFile(join(config, 'policies', 'watched.yaml'), `${APPROVAL}monitor:\n${monitor}`);
  return loadPolicy('watched', await loadApprovers(config), POLICY_SECTIONS, config);
}

async function loadProblems(monitor: string): Promise<string[]> {
  const err = await loadWithMonitor(monitor).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).problems;
}

describe('the monitor section at load', () => {
  it('names the field of each problem', async () => {
    const problems = await loadProblems(`
  window: 24h
  prometheus: { address: ${PROM} }
  metrics:
    - { name: latency, template: p95-latency }
    - { name: errors, template: error-rate, count: 3, interval: soon }
    - { name: latency, template: traffic }
    - { name: custom, provider: { prometheus: { query: 'up' } }, count: 0 }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^monitor\.metrics\[1\]\.interval: must be a positive duration/),
        expect.stringMatching(/^monitor\.metrics\[2\]\.name: "latency" is already the name of metrics\[0\]/),
        expect.stringMatching(/^monitor\.metrics\[3\]\.count: must be ≥ 1/),
      ]),
    );
  });

  it('requires an interval when count is more than 1 (Argo) and a window no shorter than any initialDelay', async () => {
    const problems = await loadProblems(`
  window: 1h
  metrics:
    - { name: up, provider: { prometheus: { address: ${PROM}, query: up } }, count: 3, successCondition: 'result[0] == 1.0' }
    - { name: late, provider: { prometheus: { address: ${PROM}, query: up } }, initialDelay: 2h }
`);
    expect(problems).toEqual([
      'monitor.metrics[0].interval: is required when count is more than 1 (the time between measurements)',
      'monitor.metrics[1].initialDelay: 2h is longer than the window (1h at monitor.window); the metric would never be measured',
    ]);
  });

  it('compiles conditions at load and names the metric and field of a syntax error', async () => {
    const problems = await loadProblems(`
  prometheus: { address: ${PROM} }
  metrics:
    - { name: ok, template: traffic }
    - { name: broken, provider: { prometheus: { query: up } }, successCondition: 'result[0] >= ' }
    - { name: typo, provider: { prometheus: { query: up } }, failureCondition: 'reslt > 1' }
`);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^monitor\.metrics\[1\]\.successCondition: does not parse: /);
    expect(problems[1]).toMatch(/^monitor\.metrics\[2\]\.failureCondition: does not type-check: Unknown variable/);
  });

  it('accepts only an http(s) Prometheus address, without credentials, and never repeats it', async () => {
    const problems = await loadProblems(`
  metrics:
    - { name: a, template: traffic, provider: { prometheus: { address: 'ftp://prom:21' } } }
    - { name: b, template: traffic, provider: { prometheus: { address: 'http://admin:s3cret@prom:9090' } } }
    - { name: c, template: traffic, provider: { prometheus: { address: 'not a url' } } }
    - { name: d, template: traffic, provider: { prometheus: { address: 'http://prom:9090/?x=1' } } }
    - { name: e, template: traffic }
`);
    expect(problems).toEqual([
      'monitor.metrics[0].provider.prometheus.address: must be an http:// or https:// URL, not ftp:',
      'monitor.metrics[1].provider.prometheus.address: must not carry credentials (user:password@): policies live in Git; put an authenticating proxy in front',
      'monitor.metrics[2].provider.prometheus.address: must be an http(s) URL such as http://prometheus.monitoring:9090',
      'monitor.metrics[3].provider.prometheus.address: must be the base URL, without ?query or #fragment',
    ]);
    expect(problems.join('\n')).not.toContain('s3cret');
    const missing = await loadProblems(`
  metrics:
    - { name: e, template: traffic }
`);
    expect(missing).toEqual([
      'monitor.metrics[0].provider.prometheus.address: is required: the Prometheus to ask (or set monitor.prometheus.address for every metric)',
    ]);
  });

  it('checks args: placeholders need a value, template args their form', async () => {
    const problems = await loadProblems(`
  prometheus: { address: ${PROM} }
  metrics:
    - { name: q, provider: { prometheus: { query: 'x{a="{{args.team}}",m="{{args.model}}"}' } } }
    - { name: r, provider: { prometheus: { query: 'x{a="{{ inputs.team }}"}' } } }
    - { name: t, template: p95-latency, args: { threshold: fast, range: 5 minutes } }
    - { name: u, provider: { prometheus: { query: up } }, successCondition: 'result[0] < {{args.limit}}' }
`);
    expect(problems).toEqual([
      'monitor.metrics[0].provider.prometheus.query: uses args.team, which has no value; add it under args (the release gives releaseId, model, version, environment, namespace, workload, manifestDigest)',
      'monitor.metrics[1].provider.prometheus.query: {{ inputs.team }} is not a {{args.<name>}} placeholder',
      'monitor.metrics[2].args.threshold: must be a number (it is compared with the result)',
      'monitor.metrics[2].args.range: must be a PromQL duration such as 5m or 1h',
      "monitor.metrics[3].successCondition: args.limit has no value: add it under the metric's args",
    ]);
  });

  it("checks the pause path's roles against approvers.yaml and the provider's form", async () => {
    const problems = await loadProblems(`
  onBreach: halt
  pause: { roles: [release-mgr] }
  metrics:
    - { name: both, provider: { drift: {}, bias: {} } }
    - { name: none }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'monitor.onBreach: must be rollback, pause or record',
        'monitor.metrics[0].provider: give exactly one provider: prometheus, drift or bias',
      ]),
    );
    const roles = await loadProblems(`
  pause: { roles: [release-mgr] }
  metrics:
    - { name: none }
`);
    expect(roles).toEqual([
      'monitor.metrics[0].provider: give a template (p95-latency, error-rate, traffic) or a provider (prometheus, drift or bias)',
      expect.stringMatching(/^monitor\.pause\.roles\[0\] "release-mgr" is not a known role \(known: /),
    ]);
  });

  it("checks an environment's merged view, naming the override's field", async () => {
    const problems = await loadProblems(`
  prometheus: { address: ${PROM} }
  metrics:
    - { name: latency, template: p95-latency }
  environments:
    production:
      metrics:
        - { name: latency, count: 4 }
        - { name: extra, provider: { prometheus: { query: up } }, successCondition: 'result >' }
`);
    expect(problems).toEqual([
      expect.stringMatching(/^monitor\.environments\.production\.metrics\[1\]\.successCondition: does not parse/),
    ]);
    // count 4 with the template's interval is fine; without any interval it is not.
    const noInterval = await loadProblems(`
  prometheus: { address: ${PROM} }
  metrics:
    - { name: up, provider: { prometheus: { query: up } } }
  environments:
    production:
      metrics: [{ name: up, count: 4 }]
`);
    expect(noInterval).toEqual([
      'monitor.environments.production.metrics[0].interval: is required when count is more than 1 (the time between measurements)',
    ]);
  });

  it('checks the drift settings beside the metrics', async () => {
    const problems = await loadProblems(`
  drift: { driftShare: 2 }
  metrics: []
`);
    expect(problems).toEqual(['monitor.drift.driftShare: must be a number in (0, 1]']);
  });

  it('rejects unknown fields, as Argo would not know them either', async () => {
    const problems = await loadProblems(`
  metrics:
    - { name: a, template: traffic, provider: { prometheus: { address: ${PROM} } }, successCriteria: 'x' }
`);
    expect(problems).toEqual([expect.stringMatching(/^monitor\.metrics\[0\]: Unrecognized key: "successCriteria"/)]);
  });
});

describe('the monitor section resolved per environment', () => {
  const section = {
    window: '24h',
    prometheus: { address: PROM, timeout: '10s' },
    metrics: [
      { name: 'latency', template: 'p95-latency', args: { threshold: 0.3 } },
      {
        name: 'slow',
        provider: { prometheus: { query: 'sum(rate(slow_total{model="{{args.model}}"}[{{args.range}}]))' } },
        args: { range: '10m', limit: '5' },
        interval: '10m',
        count: 6,
        initialDelay: '0s',
        successCondition: 'result[0] < {{args.limit}}',
        failureLimit: 1,
      },
      {
        name: 'drift',
        provider: { drift: { minRows: 200 } },
        interval: '1h',
        successCondition: '!result.datasetDrift',
      },
    ],
    environments: {
      production: {
        window: '72h',
        onBreach: 'pause',
        prometheus: { address: 'https://prometheus.prod.internal' },
        metrics: [{ name: 'latency', args: { threshold: '0.2' } }],
      },
    },
  };

  it('expands templates and fills Argo defaults', () => {
    expect(monitorPolicyProblems(section, ['release-manager'])).toEqual([]);
    const staging = resolveMonitor(section, 'staging', ['ml-lead', 'release-manager']);
    const template = METRIC_TEMPLATES['p95-latency'];
    expect(staging).toEqual({
      window: '24h',
      onBreach: 'rollback',
      pause: { roles: ['ml-lead', 'release-manager'], timeout: '4h', onTimeout: 'rollback' },
      metrics: [
        {
          name: 'latency',
          provider: { prometheus: { address: PROM, query: template.query, timeout: '10s' } },
          args: { threshold: '0.3', range: '5m' },
          interval: '5m',
          successCondition: 'len(result) > 0 && result[0] <= 0.3',
          failureCondition: 'len(result) > 0 && result[0] > 0.3',
          failureLimit: 0,
          inconclusiveLimit: 0,
          consecutiveErrorLimit: 4,
        },
        {
          name: 'slow',
          provider: {
            prometheus: {
              address: PROM,
              query: 'sum(rate(slow_total{model="{{args.model}}"}[{{args.range}}]))',
              timeout: '10s',
            },
          },
          args: { range: '10m', limit: '5' },
          interval: '10m',
          count: 6,
          initialDelay: '0s',
          successCondition: 'result[0] < 5',
          failureLimit: 1,
          inconclusiveLimit: 0,
          consecutiveErrorLimit: 4,
        },
        {
          name: 'drift',
          provider: { drift: { minRows: 200 } },
          args: {},
          interval: '1h',
          successCondition: '!result.datasetDrift',
          failureLimit: 0,
          inconclusiveLimit: 0,
          consecutiveErrorLimit: 4,
        },
      ],
    });
    expect(template.query).toContain('modelserver_request_duration_seconds_bucket{model="{{args.model}}"');
  });

  it("applies the environment's overrides: window, outcome, Prometheus, a metric's args", () => {
    const production = resolveMonitor(section, 'production', ['release-manager']);
    expect(production?.window).toBe('72h');
    expect(production?.onBreach).toBe('pause');
    expect(production?.pause.roles).toEqual(['release-manager']);
    const latency = production?.metrics[0];
    expect(latency?.provider).toEqual({
      prometheus: {
        address: 'https://prometheus.prod.internal',
        query: METRIC_TEMPLATES['p95-latency'].query,
        timeout: '10s',
      },
    });
    expect(latency?.successCondition).toBe('len(result) > 0 && result[0] <= 0.2');
    expect(production?.metrics.map((m) => m.name)).toEqual(['latency', 'slow', 'drift']);
  });

  it('is absent without a section or without metrics, and throws ConfigError for a bad one', () => {
    expect(resolveMonitor(undefined, 'staging', [])).toBeUndefined();
    expect(resolveMonitor({ drift: { driftShare: 0.3 } }, 'staging', [])).toBeUndefined();
    expect(() => resolveMonitor({ window: 'forever' }, 'staging', [], 'policies/x.yaml')).toThrow(
      /policies\/x\.yaml: monitor\.window: must be a positive duration/,
    );
  });

  it('reaches the release config from the monitored fixture policy', async () => {
    const config = await resolveReleaseConfig(
      { policy: 'monitored', environment: 'production' },
      POLICY_SECTIONS,
      join(dir, 'config'),
    );
    const monitor = resolveMonitor(config.gatePolicies.monitor, 'production', config.approval.allowedRoles);
    expect(monitor?.window).toBe('24h');
    expect(monitor?.onBreach).toBe('pause');
    expect(monitor?.metrics.map((m) => [m.name, m.interval])).toEqual([
      ['latency', '1m'],
      ['errors', '1m'],
      ['traffic', '1m'],
      ['data-drift', '30m'],
      ['bias-drift', '30m'],
    ]);
    expect(monitor?.metrics[2]?.successCondition).toBe('len(result) > 0 && result[0] >= 0.1');
  });

  it('is resolved into the release config by the config activity, and a bad section fails it as InvalidConfig', async () => {
    const config = join(dir, 'config');
    const activities = createConfigActivities({ configDir: config, taskQueues: { release: 'r', evaluation: 'e' } });
    const model = { name: 'credit', version: '1.0.0' };
    const staging = await activities.loadReleaseConfig({ policy: 'monitored', environment: 'staging', model });
    expect(staging.monitor?.window).toBe('2h');
    expect(staging.monitor?.onBreach).toBe('rollback');
    expect(staging.monitor?.pause.roles).toEqual(['release-manager']);
    const plain = await activities.loadReleaseConfig({ policy: 'default', environment: 'staging', model });
    expect(plain.monitor).toBeUndefined();
    await writeFile(
      join(config, 'policies', 'watched.yaml'),
      `${APPROVAL}monitor:\n  metrics:\n    - { name: a, template: traffic, interval: 1m, count: 0 }\n`,
    );
    const err = await activities.loadReleaseConfig({ policy: 'watched', environment: 'staging', model }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidConfig');
    expect((err as ApplicationFailure).message).toMatch(/monitor\.metrics\[0\]\.count: must be ≥ 1/);
  });
});
