/**
 * Drill: 200 releases started at once through one release worker process, on a dev server of their own. All of
 * them reach approval and none fails; a sample is approved and gets exactly one commit each. The drill prints the
 * throughput (releases per second from the first start to the last release awaiting approval) and the p95 of each
 * release's start→awaiting-approval time; it asserts correctness only (the machine's speed is not the product's).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getRelease, listReleases, startRelease } from '../../client/release-client';
import { approve, finalStatus, isolatedDrill, percentile, silentWaits, waitFor, type DrillEnv } from './harness';

const RELEASES = 200;
const SAMPLE = 10;

let env: DrillEnv;
let closeDrill: (() => Promise<void>) | undefined;
beforeAll(async () => {
  ({ env, close: closeDrill } = await isolatedDrill('load'));
});
afterAll(async () => {
  await closeDrill?.();
});

it(`${RELEASES} releases at once through one worker all reach approval; a sample is released once each`, async () => {
  const worker = env.releaseWorker();
  await worker.start();
  const requests = await Promise.all(
    Array.from({ length: RELEASES }, (_, i) => env.request(`load-${String(i).padStart(3, '0')}`)),
  );

  const first = Date.now();
  const started = await Promise.all(
    requests.map(async (request) => {
      const at = Date.now();
      const { releaseId } = await startRelease(env.client, request, { taskQueue: env.taskQueue });
      return { releaseId, at };
    }),
  );
  expect(new Set(started.map((s) => s.releaseId)).size).toBe(RELEASES);

  const ended = (await waitFor(
    `${RELEASES} releases await approval`,
    async () => {
      const inApproval = await listReleases(env.client, { stage: 'approval', limit: RELEASES });
      const failed = await listReleases(env.client, { stage: 'failed', limit: RELEASES });
      return { approval: inApproval.length, failed: failed.length };
    },
    (n) => n.approval === RELEASES || n.failed > 0,
    300_000,
    1_000,
  )) as { approval: number; failed: number };
  expect(ended).toEqual({ approval: RELEASES, failed: 0 });

  // Each release's own clock: the status was last updated when it opened its approval.
  const statuses = await Promise.all(started.map((s) => getRelease(env.client, s.releaseId)));
  const toApproval = statuses.map((s, i) => Date.parse(s.updatedAt) - started[i]!.at);
  const last = Math.max(...statuses.map((s) => Date.parse(s.updatedAt)));
  for (const s of statuses) {
    expect(s.stage).toBe('approval');
    expect(s.awaiting?.approvalsMissing).toBe(2);
  }
  const seconds = (last - first) / 1000;
  console.log(
    `drill load: ${RELEASES} releases through one worker reached approval in ${seconds.toFixed(1)} s ` +
      `(${(RELEASES / seconds).toFixed(2)} releases/s); start→awaiting approval p50 ` +
      `${(percentile(toApproval, 50) / 1000).toFixed(1)} s, p95 ${(percentile(toApproval, 95) / 1000).toFixed(1)} s, ` +
      `max ${(Math.max(...toApproval) / 1000).toFixed(1)} s`,
  );

  const sample = started.filter((_, i) => i % (RELEASES / SAMPLE) === 0).map((s) => s.releaseId);
  await Promise.all(sample.map((id) => approve(env.client, id)));
  for (const id of sample) {
    const final = await finalStatus(env.client, id, 120_000);
    expect(final.stage, final.reason).toBe('released');
    expect(await env.commitsFor(id)).toBe(1);
  }
  expect(
    await silentWaits(
      env.client,
      started.map((s) => s.releaseId),
    ),
  ).toEqual([]);
  expect(worker.unexpectedExit()).toBeUndefined();
}, 600_000);
