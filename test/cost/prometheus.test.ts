/**
 * Traffic history and utilization through a real Prometheus on 127.0.0.1: the gate forecasts from a range query over
 * three weeks of backfilled request rates, and the sprawl report finds an idle endpoint from live scrapes.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCostActivities } from '../../activities/cost';
import { prometheusRange } from '../../activities/cost/history';
import { sprawlReport } from '../../activities/cost/sprawl';
import { CostError } from '../../activities/cost/errors';
import { renderRelease } from '../../activities/gitops/render';
import { FilesystemStore } from '../../activities/store';
import type { GateResult } from '../../contract/types';
import { earlierGate, gateInput, referenceWeights, request, seasonalHistory, storeModel } from './fixtures';
import { startPrometheus, type LocalPrometheus } from './prometheus';

let dir: string;
let prom: LocalPrometheus;
/** The backfilled history ends at this whole hour, a little before the test runs. */
let endS: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelrelease-cost-prom-'));
  endS = Math.floor(Date.now() / 3_600_000) * 3600 - 3600;
  const weeks = 3;
  const startS = endS - weeks * 7 * 86_400;
  // Hourly truth, sampled every 5 minutes (as a recording rule of request rates would be).
  const { values } = seasonalHistory({ weeks, base: 40, noise: 0.02, startMs: startS * 1000 });
  const samples: [number, number][] = [];
  for (let t = startS; t < endS; t += 300) {
    samples.push([t, Number((values[Math.floor((t - startS) / 3600)] as number).toFixed(3))]);
  }
  prom = await startPrometheus(
    dir,
    [
      {
        metric: 'modelrelease_requests_per_second',
        labels: { model: 'sentiment', environment: 'production' },
        samples,
      },
    ],
    [
      '# TYPE modelrelease_live_requests_per_second gauge',
      'modelrelease_live_requests_per_second{model="sentiment",environment="production"} 35',
      'modelrelease_live_requests_per_second{model="sentiment",environment="staging"} 0',
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  await prom?.stop();
  await rm(dir, { recursive: true, force: true });
});

const QUERY = 'avg_over_time(modelrelease_requests_per_second{model="sentiment",environment="production"}[1h])';

describe('Prometheus history', () => {
  it('the gate forecasts capacity from a range query', async () => {
    const tmp = join(dir, 'gate');
    await mkdir(join(tmp, 'model'), { recursive: true });
    await referenceWeights('safetensors', join(tmp, 'model', 'model.safetensors'));
    const manifest = await storeModel(join(tmp, 'store'), join(tmp, 'model'), ['model.safetensors']);
    const traffic = {
      history: {
        prometheus: {
          url: prom.url,
          query: QUERY,
          start: new Date((endS - 21 * 86_400 + 3600) * 1000).toISOString(),
          end: new Date(endS * 1000).toISOString(),
          step: '1h',
        },
      },
      compute: { msPerRequest: 20 },
      latencySloMs: 200,
    };
    const activities = createCostActivities({ store: new FilesystemStore(join(tmp, 'store')) });
    const result: GateResult = await activities.estimateCost(gateInput(manifest, request(traffic)));
    expect(result.metrics).toMatchObject({ demandSource: 'forecast', forecastSeason: 'weekly' });
    // The pattern peaks at 40 × 1.5 = 60 req/s.
    expect(result.metrics.peakRps as number).toBeGreaterThan(55);
    expect(result.metrics.peakRps as number).toBeLessThan(65);
    expect(result.metrics.forecastMape as number).toBeLessThan(0.08);
    expect(result.summary).toMatch(/forecast peak \d+(\.\d+)? req\/s \(weekly Holt-Winters/);
  });

  it('a query Prometheus refuses is an InvalidHistory error with its message', async () => {
    const err = await prometheusRange({
      url: prom.url,
      query: 'sum(',
      startMs: (endS - 7200) * 1000,
      endMs: endS * 1000,
      stepSeconds: 3600,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CostError);
    expect((err as Error).message).toMatch(/refused the query "sum\(" \(400\): .*parse error/);
  });

  it('the sprawl report finds the idle endpoint from live scrapes', async () => {
    const root = join(dir, 'gitops');
    for (const environment of ['production', 'staging']) {
      const gates = [
        {
          ...earlierGate('cost', 'pass', {
            instanceType: 'm7i.xlarge',
            replicas: 2,
            capacityPerReplicaRps: 50,
            monthlyCompute: 294,
            monthlyTco: 300,
          }),
          deployment: { replicas: 2, nodeSelector: { 'node.kubernetes.io/instance-type': 'm7i.xlarge' } },
        },
      ];
      const files = renderRelease({
        releaseId: `release/sentiment/2.0.0/${environment}`,
        runId: 'r',
        request: {
          model: { name: 'sentiment', version: '2.0.0', source: 'hf://a/b@main' },
          environment,
          policy: 'default',
          requestedBy: 'ci',
        },
        manifest: {
          model: 'sentiment',
          version: '2.0.0',
          source: 'hf://a/b@main',
          resolvedRevision: 'x',
          files: [],
          totalSize: 0,
          manifestDigest: 'd'.repeat(64),
        },
        gates,
        approvals: [],
        policy: { name: 'default', digest: 'e'.repeat(64) },
      });
      for (const [path, content] of files) {
        await mkdir(join(root, path, '..'), { recursive: true });
        await writeFile(join(root, path), content);
      }
    }
    const endMs = Date.now();
    const series = await prometheusRange({
      url: prom.url,
      query: 'modelrelease_live_requests_per_second',
      startMs: endMs - 10_000,
      endMs,
      stepSeconds: 1,
    });
    const report = await sprawlReport(root, root, { utilization: { source: 'prometheus', series } });
    expect(report.utilization?.matched).toBe(2);
    expect(report.flags.map((f) => [f.kind, f.environment])).toEqual([['idle', 'staging']]);
    expect(report.versions.find((v) => v.environment === 'production')?.utilization?.meanRps).toBe(35);
  });
});
