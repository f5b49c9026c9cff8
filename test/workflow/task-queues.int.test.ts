/**
 * The release plan routes each step to the task queue the workers were configured with, and a queue that no worker
 * polls shows in the release's status by name instead of a silent wait. Real dev server, real release worker, no
 * evaluation worker; the schedule-to-start timeout is shortened through the worker's config activity, as an operator
 * would set it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createReleaseActivities } from '../../activities';
import { getRelease, startRelease } from '../../client/release-client';
import { RELEASE_STATUS_MEMO } from '../../contract/definitions';
import type { ReleaseStatus } from '../../contract/types';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let connection: NativeConnection;
let running: Promise<void> | undefined;
let worker: Worker | undefined;
const evaluationQueue = `gpu-pool-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  env = await createReleaseEnv('queues');
  connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  const { settings } = env;
  worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    activities: createReleaseActivities({
      configDir: settings.configDir,
      storeRoot: settings.storeRoot,
      gitops: { repoUrl: settings.gitopsRepo, branch: settings.gitopsBranch, workRoot: settings.gitopsWorkRoot },
      // The evaluation workers of this deployment poll their own queue, and none is up.
      taskQueues: { evaluation: evaluationQueue },
      scheduleToStartTimeout: '2s',
    }),
  });
  running = worker.run();
});

afterAll(async () => {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await running;
  await connection?.close();
  await env?.close();
});

it('schedules evaluation on the configured queue and names it in the status while no worker polls it', async () => {
  const dataset = join(env.dir, 'holdout.csv');
  await writeFile(dataset, 'x,group,label\n1,a,1\n0,b,0\n1,b,1\n0,a,0\n');
  const request = await env.model('queued', '1.0.0', {
    environment: 'staging',
    evaluation: { dataset: `file://${dataset}`, label: 'label', protected: ['group'], favorable: 1 },
  });
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
  const handle = env.client.workflow.getHandle(releaseId);
  try {
    const starved = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.retrying?.lastFailure.includes('no worker polls task queue') === true,
      90_000,
    );
    expect(starved.stage).toBe('fairness+robustness+explain');
    expect(starved.retrying?.lastFailure).toContain(`no worker polls task queue "${evaluationQueue}"`);
    expect(['fairness', 'robustness', 'explain']).toContain(starved.retrying?.step);
    // Waiting for a worker is not failing: the gates have no verdict yet, and the release has not ended.
    expect(starved.gates.map((g) => g.gate)).toEqual(['acquire', 'scan', 'license']);
    expect(starved.gates.find((g) => g.gate === 'acquire')?.summary).toMatch(/dataset sha256:[0-9a-f]{12}/);

    // What `mrel status` shows when no worker answers: the memo says the same.
    const memo = await eventually(
      async () => (await handle.describe()).memo?.[RELEASE_STATUS_MEMO] as ReleaseStatus | undefined,
      (m) => m?.retrying?.lastFailure.includes(evaluationQueue) === true,
    );
    expect(memo?.stage).toBe('fairness+robustness+explain');
  } finally {
    await handle.terminate('test over: no evaluation worker will come');
  }
});
