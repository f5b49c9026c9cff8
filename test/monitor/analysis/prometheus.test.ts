/**
 * The Prometheus provider against a real Prometheus on 127.0.0.1 (Debian's package, test/cost/prometheus.ts): it
 * scrapes, every second, an exporter that serves the model server's series for a healthy version (fast, no errors)
 * and a broken one (slow, failing), growing on every scrape as live counters do. Measurements through the ready
 * templates, and the provider's answers for vectors, scalars, empty results, bad queries and an unreachable server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnalysisActivities, measureMetric } from '../../../activities/monitor/analysis/measure';
import { resolveMonitor } from '../../../activities/monitor/analysis/policy';
import { escapeLabelValue, queryPrometheus } from '../../../activities/monitor/analysis/prometheus';
import type { MeasureInput, MonitorMetric } from '../../../contract/monitoring';
import { startPrometheus, type LocalPrometheus } from '../../cost/prometheus';

let dir: string;
let prom: LocalPrometheus;
let exporter: Server;

/** Per scrape: 100 requests of each version; the broken one answers 20 with 500 and logs 5 errors, all slowly. */
function exposition(scrape: number): string {
  const n = scrape * 100;
  const series = (version: string, buckets: [string, number][], ok: number, failed: number, errors: number) => [
    `modelserver_requests_total{model="credit",version="${version}",endpoint="infer",code="200"} ${ok}`,
    `modelserver_requests_total{model="credit",version="${version}",endpoint="infer",code="500"} ${failed}`,
    `modelserver_request_errors_total{model="credit",version="${version}",endpoint="infer",reason="timeout"} ${errors}`,
    ...buckets.map(
      ([le, count]) =>
        `modelserver_request_duration_seconds_bucket{model="credit",version="${version}",endpoint="infer",code="200",le="${le}"} ${count}`,
    ),
    `modelserver_request_duration_seconds_count{model="credit",version="${version}",endpoint="infer",code="200"} ${n}`,
  ];
  return [
    '# TYPE modelserver_requests_total counter',
    '# TYPE modelserver_request_errors_total counter',
    '# TYPE modelserver_request_duration_seconds histogram',
    ...series(
      '1.0.0',
      [
        ['0.1', scrape * 90],
        ['0.25', n],
        ['0.5', n],
        ['1', n],
        ['+Inf', n],
      ],
      n,
      0,
      0,
    ),
    ...series(
      '2.0.0',
      [
        ['0.1', 0],
        ['0.25', 0],
        ['0.5', 0],
        ['1', n],
        ['+Inf', n],
      ],
      scrape * 80,
      scrape * 20,
      scrape * 5,
    ),
    '',
  ].join('\n');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-analysis-prom-'));
  let scrapes = 0;
  exporter = createServer((_req, res) => {
    scrapes += 1;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(exposition(scrapes));
  });
  await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
  const { port } = exporter.address() as AddressInfo;
  prom = await startPrometheus(dir, [], '', [`127.0.0.1:${port}`]);
  // Rates need two samples of the growing series in range: wait (bounded) until Prometheus has them.
  for (let i = 0; i < 60; i++) {
    const rate = await queryPrometheus({
      address: prom.url,
      query: 'sum(rate(modelserver_requests_total{version="1.0.0"}[10s]))',
    });
    if (Array.isArray(rate) && (rate[0] ?? 0) > 0) break;
    await sleep(500);
  }
}, 90_000);

afterAll(async () => {
  await prom?.stop();
  await new Promise<void>((resolve) => (exporter ? exporter.close(() => resolve()) : resolve()));
  await rm(dir, { recursive: true, force: true });
});

function input(metric: MonitorMetric, version = '1.0.0'): MeasureInput {
  return {
    metric,
    labels: {
      releaseId: `credit@${version}/staging`,
      model: 'credit',
      version,
      environment: 'staging',
      manifestDigest: `sha256:${'a'.repeat(64)}`,
    },
    windowStart: new Date().toISOString(),
    index: 1,
  };
}

function templated(address: string, range = '10s'): MonitorMetric[] {
  const policy = resolveMonitor(
    {
      prometheus: { address },
      metrics: [
        { name: 'latency', template: 'p95-latency', args: { range } },
        { name: 'errors', template: 'error-rate', args: { range } },
        { name: 'traffic', template: 'traffic', args: { range, minRps: 1 } },
      ],
    },
    'staging',
    ['release-manager'],
  );
  return policy?.metrics ?? [];
}

describe('the Prometheus provider', () => {
  it('returns an instant vector as numbers sorted by labels, a scalar as a number, an empty vector as []', async () => {
    const vector = await queryPrometheus({
      address: prom.url,
      query: 'sum by (version) (modelserver_requests_total{model="credit",code="200"}) > 0',
    });
    expect(Array.isArray(vector)).toBe(true);
    const [good, bad] = vector as number[];
    // Sorted by labels: version 1.0.0 before 2.0.0, and its 100 requests per scrape against the other's 80.
    expect(good! / bad!).toBeCloseTo(100 / 80, 1);
    const scalar = await queryPrometheus({ address: prom.url, query: 'scalar(vector(42))' });
    expect(scalar).toBe(42);
    const empty = await queryPrometheus({ address: prom.url, query: 'modelserver_requests_total{model="nope"}' });
    expect(empty).toEqual([]);
  });

  it('judges the healthy version Successful and the broken one Failed through the ready templates', async () => {
    const metrics = templated(prom.url);
    const healthy = await Promise.all(metrics.map((m) => measureMetric(input(m, '1.0.0'))));
    expect(healthy.map((m) => [m.phase, m.message])).toEqual([
      ['Successful', undefined],
      ['Successful', undefined],
      ['Successful', undefined],
    ]);
    // p95 interpolated in the (0.1, 0.25] bucket: 0.1 + 0.15 × (0.95 − 0.9) / 0.1.
    expect(healthy[0]?.result).toEqual([expect.closeTo(0.175, 3)]);
    expect(healthy[1]?.value).toBe('[0]');
    const broken = await Promise.all(metrics.slice(0, 2).map((m) => measureMetric(input(m, '2.0.0'))));
    expect(broken.map((m) => [m.phase, m.message])).toEqual([
      ['Failed', 'failureCondition is true'],
      ['Failed', 'failureCondition is true'],
    ]);
    // 20 answered 500 of 100 requests; the server's error counter (which also counts them) is not added twice.
    expect((broken[1]?.result as number[])[0]).toBeCloseTo(0.2, 2);
  });

  it('is Inconclusive where the model has no traffic: no series, or 0/0', async () => {
    const metrics = templated(prom.url);
    const absent = await Promise.all(metrics.map((m) => measureMetric(input(m, '9.9.9'))));
    expect(absent.map((m) => [m.phase, m.value])).toEqual([
      ['Inconclusive', '[]'],
      ['Inconclusive', '[]'],
      ['Inconclusive', '[]'],
    ]);
  });

  it('is an Error measurement quoting Prometheus for a bad query, and never throws for it', async () => {
    const metric: MonitorMetric = {
      ...templated(prom.url)[2]!,
      provider: { prometheus: { address: prom.url, query: 'sum(rate(modelserver_requests_total[1m]' } },
    };
    const measured = await measureMetric(input(metric));
    expect(measured.phase).toBe('Error');
    expect(measured.message).toMatch(/^Prometheus at http:\/\/127\.0\.0\.1:\d+ refused the query \(400\): bad_data: /);
    expect(measured.message).toMatch(/parse error/);
    const range = await measureMetric(
      input({ ...metric, provider: { prometheus: { address: prom.url, query: 'modelserver_requests_total[1m]' } } }),
    );
    expect(range.message).toMatch(/answered a matrix where a scalar or an instant vector was expected/);
  });

  it('is an Error measurement for an unreachable Prometheus', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const metric = templated(`http://127.0.0.1:${port}`)[0]!;
    const measured = await createAnalysisActivities().measureMetric(input(metric));
    expect(measured).toMatchObject({
      phase: 'Error',
      value: 'error',
      message: `Prometheus at http://127.0.0.1:${port} cannot be reached (ECONNREFUSED)`,
    });
  });

  it('holds the address to the source policy when the worker has one', async () => {
    const metric = templated(prom.url)[0]!;
    const refused = await measureMetric(input(metric), { sourcePolicy: { roots: [], hosts: [], networks: [] } });
    expect(refused.phase).toBe('Error');
    expect(refused.message).toMatch(/host 127\.0\.0\.1 is not an allowed source host/);
    const allowed = await measureMetric(input(metric), {
      sourcePolicy: { roots: [], hosts: ['127.0.0.1'], networks: ['127.0.0.0/8'] },
    });
    expect(allowed.phase).toBe('Successful');
  });

  it('fills args escaped as label strings, and names an arg that has no value', async () => {
    const query = 'sum(modelserver_requests_total{model="{{args.team}}"})';
    const base = templated(prom.url)[2]!;
    const injected = await measureMetric(
      input({
        ...base,
        args: { team: 'x"}) or vector(1) or sum(up{job="' },
        successCondition: 'len(result) == 0',
        failureCondition: undefined,
        provider: { prometheus: { address: prom.url, query } },
      }),
    );
    // The value stayed inside its label string: no series matched, rather than vector(1).
    expect([injected.phase, injected.value]).toEqual(['Successful', '[]']);
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const missing = await measureMetric(
      input({ ...base, args: {}, provider: { prometheus: { address: prom.url, query } } }),
    );
    expect([missing.phase, missing.message]).toEqual([
      'Error',
      "args.team has no value: add it under the metric's args",
    ]);
  });
});
