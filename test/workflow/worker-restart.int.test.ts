/**
 * Crashes and restarts lose nothing and repeat nothing: the worker goes away while a release waits for approval,
 * the approvals arrive with no worker running, and a new worker finishes the release with exactly one commit.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import { approveSignal } from '../../contract/definitions';
import type { ReleaseStatus } from '../../contract/types';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
beforeAll(async () => {
  env = await createReleaseEnv('restart');
});
afterAll(async () => env?.close());

it('a new worker finishes a release approved while no worker ran, with exactly one commit', async () => {
  const first = await env.startWorker();
  const request = await env.model('survivor', '4.2.0');
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
  await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval',
  );
  await first.stop();

  const handle = env.client.workflow.getHandle(releaseId);
  await handle.signal(approveSignal, { approver: 'boris', comment: 'while the worker was down' });
  await handle.signal(approveSignal, { approver: 'amara' });
  const described = await handle.describe();
  expect(described.status.name).toBe('RUNNING');

  await env.startWorker();
  const result = (await handle.result()) as ReleaseStatus;
  expect(result.stage).toBe('released');
  expect(result.approvals.map((a) => a.approver)).toEqual(['boris', 'amara']);
  const messages = await env.git('log', '--format=%B%x00', 'main');
  expect(messages.split('\0').filter((m) => m.includes(`Release-Id: ${releaseId}`))).toHaveLength(1);
  await recordHistory(env.client, releaseId, 'approved-while-worker-down');
});
