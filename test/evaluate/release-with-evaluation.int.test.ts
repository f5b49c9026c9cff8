/**
 * The evaluation gates inside whole releases, on the evaluation task queue: a model trained on unbiased data passes
 * fairness, robustness and explain and the cost gate uses the throughput they measured; a model that learned an
 * injected group bias is stopped before approval.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import { createEvaluationWorker } from '../../workers/evaluation-worker';
import type { ReleaseStatus } from '../../contract/types';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { evaluatedRequest, trainModelFixture, useBackend, type ModelFixture } from './fixtures';

let env: ReleaseEnv;
let evaluation: Worker;
let running: Promise<void>;
let fair: ModelFixture;
let biased: ModelFixture;

beforeAll(async () => {
  env = await createReleaseEnv('evaluation-release');
  await env.startWorker();
  const backend = await useBackend();
  evaluation = await createEvaluationWorker(env.settings, { backend });
  running = evaluation.run();
  fair = await trainModelFixture(env.dir, 'fair', 1500, 3000);
  biased = await trainModelFixture(env.dir, 'biased', 1500, 3000);
  for (const model of [fair, biased]) await writeFile(join(model.dir, 'README.md'), '---\nlicense: mit\n---\n');
});
afterAll(async () => {
  evaluation?.shutdown();
  await running;
  await env?.close();
});

describe('a release with an evaluation', () => {
  it('a fair model passes the three gates, and cost prices it from the measured throughput', async () => {
    const { releaseId } = await startRelease(env.client, evaluatedRequest(fair, 'fair-credit'), {
      taskQueue: env.settings.taskQueue,
    });
    const waiting = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.stage === 'approval' || s.stage === 'failed',
      120_000,
    );
    const verdicts = Object.fromEntries(waiting.gates.map((g) => [g.gate, g.verdict]));
    expect(verdicts).toMatchObject({ fairness: 'pass', robustness: 'pass', cost: 'pass' });
    expect(['pass', 'warn']).toContain(verdicts.explain);
    const fairness = waiting.gates.find((g) => g.gate === 'fairness');
    expect(fairness?.metrics.backend).toBeTruthy();
    expect(fairness?.annotations?.['bias-drift-threshold']).toBe('0.05');
    const cost = waiting.gates.find((g) => g.gate === 'cost');
    expect(cost?.metrics.throughputSource).toBe('measured');
    expect(cost?.summary).toMatch(/throughput measured/);
    await env.client.workflow.getHandle(releaseId).signal('approve', { approver: 'amara' });
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    const patch = await env.git('show', 'main:apps/fair-credit/overlays/staging/deployment-patch.yaml');
    expect(patch).toContain('policy.modelrelease.io/fairness-verdict: pass');
    expect(patch).toContain('policy.modelrelease.io/bias-drift-threshold: "0.05"');
    await recordHistory(env.client, releaseId, 'evaluated-released');
  });

  it('a model that learned a group bias fails fairness and never reaches approval', async () => {
    const { releaseId } = await startRelease(env.client, evaluatedRequest(biased, 'biased-credit'), {
      taskQueue: env.settings.taskQueue,
    });
    await env.client.workflow
      .getHandle(releaseId)
      .result()
      .catch(() => undefined);
    const status = await getRelease(env.client, releaseId);
    expect(status.stage).toBe('failed');
    expect(status.reason).toMatch(/^fairness fail: .*demographicParityDifference/);
    expect(status.approvals).toEqual([]);
  });
});
