/**
 * Drill: the evaluation worker process is killed with SIGKILL while the fairness, robustness and explain gates run
 * their batches, and started again; the gates complete (resuming from their last heartbeat) with the verdicts a
 * calm run gives, and the release ends `released` with one commit. On a dev server of its own: the release workflow
 * sends evaluation work to the fixed `evaluation` task queue, which no other test's worker may share.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRelease } from '../../client/release-client';
import { evaluatedRequest, trainModelFixture, useBackend, type ModelFixture } from '../evaluate/fixtures';
import { approve, finalStatus, isolatedDrill, serverView, silentWaits, waitFor, type DrillEnv } from './harness';

const ROUNDS = 2;
const EVALUATION_ACTIVITIES = ['evaluateFairness', 'evaluateRobustness', 'explainModel'];

let env: DrillEnv;
let model: ModelFixture;
let closeDrill: (() => Promise<void>) | undefined;
beforeAll(async () => {
  ({ env, close: closeDrill } = await isolatedDrill('evaluation-kill'));
  await useBackend(); // training here runs on the backend the worker chooses, not tfjs's slow default
  // A held-out set large enough that the gates run several batches: the kill lands between two of them.
  model = await trainModelFixture(env.dir, 'fair', 1500, 12_000);
  await writeFile(join(model.dir, 'README.md'), '---\nlicense: mit\n---\n');
}, 180_000);
afterAll(async () => {
  await closeDrill?.();
});

it('kill -9 of the evaluation worker mid-batch: the gates resume and complete', async () => {
  const releaseWorker = env.releaseWorker();
  const evaluationWorker = env.evaluationWorker();
  await Promise.all([releaseWorker.start(), evaluationWorker.start()]);
  const ids: string[] = [];
  const lines: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const { releaseId } = await startRelease(env.client, evaluatedRequest(model, `evaluated-${round}`, 'drill'), {
      taskQueue: env.taskQueue,
    });
    ids.push(releaseId);
    const view = await waitFor(
      `${releaseId} evaluates`,
      () => serverView(env.client, releaseId),
      (v) =>
        v.status !== 'RUNNING' ||
        v.pending.some((p) => EVALUATION_ACTIVITIES.includes(p.type) && p.state === 'STARTED'),
      120_000,
      50,
    );
    if (view.status !== 'RUNNING') {
      const ended = await finalStatus(env.client, releaseId, 10_000);
      expect.fail(`${releaseId} ended as ${ended.stage} before its evaluation ran: ${ended.reason ?? ''}`);
    }
    const killedAt = Date.now();
    await evaluationWorker.kill();
    await evaluationWorker.start();
    const waiting = await waitFor(
      `${releaseId} awaits approval`,
      () => serverView(env.client, releaseId),
      (v) => v.stage === 'approval' || v.status !== 'RUNNING',
      180_000,
      250,
    );
    const recoveredMs = Date.now() - killedAt;
    expect(waiting.stage).toBe('approval');
    await approve(env.client, releaseId, ['amara']);
    const final = await finalStatus(env.client, releaseId, 60_000);
    const verdicts = Object.fromEntries(final.gates.map((g) => [g.gate, g.verdict]));
    expect(verdicts).toMatchObject({ fairness: 'pass', robustness: 'pass', cost: 'pass' });
    expect(['pass', 'warn']).toContain(verdicts.explain);
    expect(final.stage, final.reason).toBe('released');
    expect(await env.commitsFor(releaseId)).toBe(1);
    const running = view.pending.filter((p) => p.state === 'STARTED').map((p) => `${p.type}#${p.attempt}`);
    lines.push(`#${round} killed during ${running.join('+')}, at approval ${(recoveredMs / 1000).toFixed(1)} s later`);
  }
  console.log(`drill evaluation-worker-kill: ${lines.join('; ')}`);
  expect(evaluationWorker.unexpectedExit()).toBeUndefined();
  expect(releaseWorker.unexpectedExit()).toBeUndefined();
  expect(await silentWaits(env.client, ids)).toEqual([]);
}, 600_000);
