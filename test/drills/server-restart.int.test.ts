/**
 * Drill: the Temporal server is killed with SIGKILL while releases are in flight (one in the middle of a model
 * transfer, one awaiting approval) and started again on the same SQLite file and port. The release worker process
 * reconnects by itself, the releases continue where they were, and each ends `released` with exactly one commit.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRelease } from '../../client/release-client';
import {
  approve,
  finalStatus,
  isolatedDrill,
  serverView,
  silentWaits,
  slowFileServer,
  SMALL_MODEL_FILES,
  waitFor,
  type DrillEnv,
  type DrillServer,
} from './harness';

const ROUNDS = 2;
const DOWNTIME_MS = 3_000;

let server: DrillServer;
let env: DrillEnv;
let source: Awaited<ReturnType<typeof slowFileServer>>;
let closeDrill: (() => Promise<void>) | undefined;
beforeAll(async () => {
  ({ server, env, close: closeDrill } = await isolatedDrill('server-restart'));
  source = await slowFileServer(join(env.dir, 'models'), 2_000);
});
afterAll(async () => {
  await source?.close();
  await closeDrill?.();
});

it('kill -9 of the Temporal server mid-release, restarted on its database: releases continue', async () => {
  const worker = env.releaseWorker();
  await worker.start();
  const ids: string[] = [];
  const lines: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const waiting = await startRelease(env.client, await env.request(`waiting-${round}`), {
      taskQueue: env.taskQueue,
    });
    await waitFor(
      `${waiting.releaseId} awaits approval`,
      () => serverView(env.client, waiting.releaseId),
      (v) => v.stage === 'approval',
      60_000,
    );
    const slow = await env.request(`moving-${round}`);
    const moving = await startRelease(
      env.client,
      { ...slow, model: { ...slow.model, source: `${source.url}moving-${round}/1.0.0/`, files: SMALL_MODEL_FILES } },
      { taskQueue: env.taskQueue },
    );
    ids.push(waiting.releaseId, moving.releaseId);
    await waitFor(
      `${moving.releaseId} transfers its model`,
      () => serverView(env.client, moving.releaseId),
      (v) => v.pending.some((p) => p.type === 'acquireModel' && p.state === 'STARTED'),
      60_000,
      50,
    );

    await server.kill();
    await sleep(DOWNTIME_MS);
    await server.start();
    const restartedAt = Date.now();

    // The first call after the restart may meet a connection that is still reconnecting: the wait retries it.
    await waitFor(
      `approval of ${waiting.releaseId}`,
      () => approve(env.client, waiting.releaseId).then(() => true),
      Boolean,
      60_000,
      500,
    );
    await waitFor(
      `${moving.releaseId} awaits approval`,
      () => serverView(env.client, moving.releaseId),
      (v) => v.stage === 'approval' || v.status !== 'RUNNING',
      120_000,
      250,
    );
    const movingAtApprovalMs = Date.now() - restartedAt;
    await approve(env.client, moving.releaseId);
    for (const id of [waiting.releaseId, moving.releaseId]) {
      const final = await finalStatus(env.client, id, 120_000);
      expect(final.stage, `${id}: ${final.reason ?? ''}`).toBe('released');
      expect(final.approvals.map((a) => a.approver).sort()).toEqual(['amara', 'boris']);
      expect(await env.commitsFor(id)).toBe(1);
    }
    lines.push(
      `#${round} down ${DOWNTIME_MS / 1000} s; the release killed mid-transfer reached approval ` +
        `${(movingAtApprovalMs / 1000).toFixed(1)} s after the restart; both released ` +
        `${((Date.now() - restartedAt) / 1000).toFixed(1)} s after it`,
    );
  }
  console.log(`drill server-restart: ${lines.join('; ')}; worker process restarts: ${worker.starts - 1}`);
  // The worker process rode out both restarts: it reconnected by itself.
  expect(worker.unexpectedExit()).toBeUndefined();
  expect(worker.starts).toBe(1);
  expect(await silentWaits(env.client, ids)).toEqual([]);
}, 600_000);
