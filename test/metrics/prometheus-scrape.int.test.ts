/**
 * Operators' view, end to end: this test process is a worker with telemetry on (MREL_METRICS_ADDRESS), a real
 * Prometheus scrapes it every second, and releases run through the real release worker (and the engine's metrics
 * module through a small workflow of its own). The SDK's metrics and the engine's reach Prometheus with their labels,
 * the stuck-release rule finds the release that stopped moving, and every metric the dashboard and the alert rules
 * read is one that Prometheus actually got.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, startRelease } from '../../client/release-client';
import { loadSettings, runtimeTelemetry } from '../../workers/settings';
import { ENGINE_METRICS } from '../../workflows/release-metrics';
import { startPrometheus, type LocalPrometheus } from '../cost/prometheus';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import type { MetricsDrillInput } from './metrics-workflow';
import { dashboard, dashboardQueries, metricNames, rules, variableQueries } from './monitoring-files';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const metricsAddress = `127.0.0.1:${await freePort()}`;
// The Runtime is fixed once the process connects: telemetry goes in before createReleaseEnv opens a connection.
Runtime.install({
  logger: new DefaultLogger('WARN'),
  telemetryOptions: runtimeTelemetry(loadSettings({ MREL_METRICS_ADDRESS: metricsAddress })),
});

let dir: string;
let env: ReleaseEnv;
let prom: LocalPrometheus;
let drillConnection: NativeConnection;
let drillWorker: Worker;
let drillDone: Promise<void>;
const drillQueue = `metrics-drill-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-metrics-'));
  env = await createReleaseEnv('metrics');
  await env.startWorker();
  drillConnection = await NativeConnection.connect({ address: env.settings.address });
  drillWorker = await Worker.create({
    connection: drillConnection,
    taskQueue: drillQueue,
    workflowsPath: fileURLToPath(new URL('./metrics-workflow.ts', import.meta.url)),
  });
  drillDone = drillWorker.run();
  prom = await startPrometheus(dir, [], '', [metricsAddress]);
}, 180_000);

afterAll(async () => {
  await prom?.stop();
  if (drillWorker?.getState() === 'RUNNING') drillWorker.shutdown();
  await drillDone;
  await drillConnection?.close();
  await env?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data.result;
}

/** The value of a query that yields one series, once Prometheus has scraped it (it scrapes every second). */
async function valueOf(expr: string, expected: (v: number) => boolean = (v) => v >= 1): Promise<number> {
  const result = await eventually(
    () => query(expr),
    (r) => r.length === 1 && expected(Number(r[0]!.value[1])),
    30_000,
  ).catch((err: unknown) => {
    throw new Error(`Prometheus never had the expected value of ${expr}`, { cause: err });
  });
  return Number(result[0]!.value[1]);
}

/** Series of `expr`, summed by `labels`, as "l1=v1,l2=v2 → value". */
async function byLabels(expr: string, labels: string[]): Promise<Record<string, number>> {
  const rows = await query(`sum by (${labels.join(', ')}) (${expr})`);
  return Object.fromEntries(
    rows.map((r) => [labels.map((l) => `${l}=${r.metric[l] ?? ''}`).join(','), Number(r.value[1])] as const),
  );
}

describe('metrics through a real Prometheus', () => {
  it('a released and a failed release: the SDK counts their workflows and activities, the engine their outcome, stages and gates', async () => {
    const queue = env.settings.taskQueue;
    const good = await env.model('scraped', '1.0.0');
    const { releaseId } = await startRelease(env.client, good, { taskQueue: queue });
    await eventually(
      () => env.client.workflow.getHandle(releaseId).query<{ stage: string }>('status'),
      (s) => s.stage === 'approval',
    );
    await decide(env.client, releaseId, { approver: 'boris', decision: 'approve' });
    await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
    expect(await env.client.workflow.getHandle(releaseId).result()).toMatchObject({ stage: 'released' });
    const tampered = await env.model('tampered', '1.0.0', { environment: 'staging' });
    tampered.model.digests = { 'config.json': '0'.repeat(64) };
    const failed = await startRelease(env.client, tampered, { taskQueue: queue });
    await expect(env.client.workflow.getHandle(failed.releaseId).result()).rejects.toThrow();

    // The SDK's own metrics: workflows by result, activities by type, pollers of the release queue.
    const sdk = `task_queue="${queue}", workflow_type="modelReleaseWorkflow"`;
    expect(await valueOf(`temporal_workflow_completed{${sdk}}`)).toBe(1);
    expect(await valueOf(`temporal_workflow_failed{${sdk}}`)).toBe(1);
    expect(
      await valueOf(`temporal_activity_execution_latency_count{task_queue="${queue}", activity_type="commitRelease"}`),
    ).toBe(1);
    expect(
      await valueOf(`sum(temporal_num_pollers{task_queue="${queue}", poller_type="workflow_task"})`),
    ).toBeGreaterThan(0);

    // The engine's, from the workflow: started and ended by environment and outcome.
    const mine = `taskQueue="${queue}"`;
    await valueOf(`sum(${ENGINE_METRICS.releasesEnded}{${mine}})`, (v) => v === 2);
    expect(await byLabels(`${ENGINE_METRICS.releasesStarted}{${mine}}`, ['environment', 'model'])).toEqual({
      'environment=production,model=scraped': 1,
      'environment=staging,model=tampered': 1,
    });
    expect(await byLabels(`${ENGINE_METRICS.releasesEnded}{${mine}}`, ['environment', 'outcome'])).toEqual({
      'environment=production,outcome=released': 1,
      'environment=staging,outcome=failed': 1,
    });
    // Time in each stage the released one went through, and how long it waited for its approvers.
    expect(
      await byLabels(`${ENGINE_METRICS.stageDuration}_count{${mine}, environment="production"}`, ['stage']),
    ).toEqual({
      'stage=config': 1,
      'stage=acquire': 1,
      'stage=scan+license': 1,
      'stage=cost': 1,
      'stage=approval': 1,
      'stage=gitops': 1,
      // No cluster for this worker: the monitor says so at once, and the release ends at its commit.
      'stage=monitor': 1,
    });
    expect(await byLabels(`${ENGINE_METRICS.approvalWait}_count{${mine}}`, ['environment', 'result'])).toEqual({
      'environment=production,result=approved': 1,
    });
    // Every gate's verdict, and its duration by the same labels.
    const verdicts = await byLabels(`${ENGINE_METRICS.gateVerdicts}{${mine}}`, ['environment', 'gate', 'verdict']);
    expect(verdicts).toEqual({
      'environment=production,gate=acquire,verdict=pass': 1,
      'environment=production,gate=scan,verdict=pass': 1,
      'environment=production,gate=license,verdict=pass': 1,
      'environment=production,gate=cost,verdict=pass': 1,
      'environment=staging,gate=acquire,verdict=fail': 1,
    });
    expect(await byLabels(`${ENGINE_METRICS.gateDuration}_count{${mine}}`, ['environment', 'gate', 'verdict'])).toEqual(
      verdicts,
    );
  });

  it('the metrics module on its own: a gate in error, a rejection, a rollback, and a release that stopped moving', async () => {
    const drills: (MetricsDrillInput & { id: string })[] = [
      {
        id: 'stuck',
        environment: 'staging',
        model: 'drill-stuck',
        stages: [
          { stage: 'config' },
          { stage: 'acquire', gates: [{ gate: 'acquire', verdict: 'pass' }] },
          // Ends here, as a release whose gates never answer: still in scan+license.
          { stage: 'scan+license', gates: [{ gate: 'scan', verdict: 'error' }] },
        ],
      },
      {
        id: 'rejected',
        environment: 'production',
        model: 'drill-rejected',
        stages: [{ stage: 'config' }, { stage: 'approval' }, { stage: 'rejected' }],
      },
      {
        id: 'rolled-back',
        environment: 'production',
        model: 'drill-rolled-back',
        stages: [
          { stage: 'config' },
          { stage: 'approval' },
          { stage: 'gitops' },
          { stage: 'monitor' },
          { stage: 'rolled-back' },
        ],
      },
    ];
    for (const { id, ...input } of drills) {
      await env.client.workflow.execute('metricsDrillWorkflow', {
        taskQueue: drillQueue,
        workflowId: `metrics-drill-${id}-${drillQueue}`,
        args: [input],
      });
    }
    const mine = `taskQueue="${drillQueue}"`;
    expect(await valueOf(`${ENGINE_METRICS.rollbacks}{${mine}}`)).toBe(1);
    const rollbacks = await query(`${ENGINE_METRICS.rollbacks}{${mine}}`);
    expect(rollbacks[0]?.metric).toMatchObject({ environment: 'production', model: 'drill-rolled-back' });
    expect(await byLabels(`${ENGINE_METRICS.approvalWait}_count{${mine}}`, ['result'])).toEqual({
      'result=rejected': 1,
      'result=approved': 1,
    });
    expect(await byLabels(`${ENGINE_METRICS.gateVerdicts}{${mine}}`, ['gate', 'verdict'])).toEqual({
      'gate=acquire,verdict=pass': 1,
      'gate=scan,verdict=error': 1,
    });
    expect(await byLabels(`${ENGINE_METRICS.releasesEnded}{${mine}}`, ['model', 'outcome'])).toEqual({
      'model=drill-rejected,outcome=rejected': 1,
      'model=drill-rolled-back,outcome=rolled-back': 1,
    });

    // The shipped recording rule, on live data: of the drills, only the one that stopped moving is in a stage.
    const stageAge = (await rules()).find((r) => r.record === 'modelrelease:release_stage_age_seconds');
    const inStage = (await query(stageAge!.expr)).filter((r) => r.metric.model?.startsWith('drill-'));
    expect(inStage.map((r) => r.metric)).toEqual([
      { environment: 'staging', model: 'drill-stuck', stage: 'scan+license' },
    ]);
    expect(Number(inStage[0]!.value[1])).toBeGreaterThanOrEqual(0);
  });

  it('every metric the dashboard and the alert rules read is one the workers exported (or a rule records)', async () => {
    const res = await fetch(`${prom.url}/api/v1/label/__name__/values`);
    const seen = new Set(((await res.json()) as { data: string[] }).data);
    const ruleList = await rules();
    for (const r of ruleList) if (r.record) seen.add(r.record);
    const board = await dashboard();
    const queries = [...ruleList.map((r) => r.expr), ...dashboardQueries(board)];
    const used = [...new Set([...queries, ...variableQueries(board)].flatMap(metricNames))].sort();
    expect(used.length).toBeGreaterThan(15);
    expect(used.filter((name) => !seen.has(name))).toEqual([]);
    // And every label they group by is one those series carry.
    const labels = new Set(((await (await fetch(`${prom.url}/api/v1/labels`)).json()) as { data: string[] }).data);
    const grouped = queries.flatMap((q) =>
      [...q.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim())),
    );
    expect(grouped.filter((l) => l !== '' && !labels.has(l))).toEqual([]);
    // Prometheus accepts every query as written (Grafana's $variables filled in as "All" would).
    for (const q of queries) {
      await query(q.replaceAll('$__rate_interval', '1m').replaceAll('$environment', '.*'));
    }
  });
});
