/**
 * Drill: the GitOps remote fails after a release was approved, and comes back. A remote that cannot be reached or
 * cannot store the push (an unpacker error) is retried on its own, each failed round shown in the release's status;
 * a remote that refuses the push (a protected branch) leaves the release waiting in `gitops` with the refusal in
 * view until someone fixes the remote and sends `retry`. Either way the approvals stand, nobody is asked again, and
 * the release ends `released` with exactly one commit.
 */
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import { retrySignal } from '../../contract/definitions';
import type { ReleaseStatus } from '../../contract/types';
import { approve, createDrillEnv, finalStatus, serverView, silentWaits, waitFor, type DrillEnv } from './harness';

const exec = promisify(execFile);
const ROUNDS = 2;
const WAIT_MS = 120_000;

interface Fault {
  /** Breaks the remote (after approval, before the commit). */
  break(env: DrillEnv): Promise<void>;
  repair(env: DrillEnv): Promise<void>;
  /** What the failure the release shows must say. */
  shows: RegExp;
  /** True when the release must wait for a `retry` signal; false when it retries on its own. */
  needsRetrySignal: boolean;
}

const records: string[] = [];

async function drill(name: string, fault: Fault): Promise<void> {
  const env = await createDrillEnv(`remote-${name}`);
  const worker = env.releaseWorker();
  const ids: string[] = [];
  try {
    await worker.start();
    for (let round = 1; round <= ROUNDS; round++) {
      const request = await env.request(`${name}-${round}`);
      const { releaseId } = await startRelease(env.client, request, { taskQueue: env.taskQueue });
      ids.push(releaseId);
      await waitFor(
        `${releaseId} awaits approval`,
        () => serverView(env.client, releaseId),
        (v) => v.stage === 'approval',
        WAIT_MS,
      );
      await fault.break(env);
      const brokenAt = Date.now();
      await approve(env.client, releaseId);

      const seen = await waitFor(
        `${releaseId} shows the remote's failure`,
        () => getRelease(env.client, releaseId),
        (s) => s.retrying?.step === 'gitops' && (!fault.needsRetrySignal || s.retrying.waitingFor !== undefined),
        WAIT_MS,
        250,
      );
      const visibleAfterMs = Date.now() - brokenAt;
      expect(seen.stage).toBe('gitops');
      expect(seen.retrying?.lastFailure).toMatch(fault.shows);
      if (fault.needsRetrySignal) expect(seen.retrying?.nextRetryAt).toBeUndefined();
      else expect(seen.retrying?.nextRetryAt).toBeDefined();
      // Waiting with the failure in view is not a silent wait.
      expect(await silentWaits(env.client, [releaseId])).toEqual([]);
      expect(await env.commitsFor(releaseId)).toBe(0);

      await fault.repair(env);
      const repairedAt = Date.now();
      if (fault.needsRetrySignal) {
        await env.client.workflow.getHandle(releaseId).signal(retrySignal, { requestedBy: 'drill' });
      }
      const final = await finalStatus(env.client, releaseId, WAIT_MS);
      records.push(
        `${name}#${round}: failure visible after ${(visibleAfterMs / 1000).toFixed(1)} s ` +
          `(round ${seen.retrying?.attempt}), released ${((Date.now() - repairedAt) / 1000).toFixed(1)} s after the repair`,
      );
      expectReleasedOnce(final);
      expect(await env.commitsFor(releaseId)).toBe(1);
    }
    expect(worker.unexpectedExit()).toBeUndefined();
    expect(await silentWaits(env.client, ids)).toEqual([]);
    console.log(`drill gitops-remote ${records.filter((r) => r.startsWith(`${name}#`)).join('; ')}`);
  } finally {
    await env.close();
  }
}

function expectReleasedOnce(final: ReleaseStatus): void {
  expect(final.stage, final.reason).toBe('released');
  // The approvals given before the remote failed still count: nobody was asked again.
  expect(final.approvals.map((a) => a.approver).sort()).toEqual(['amara', 'boris']);
  expect(final.refused).toEqual([]);
  expect(final.retrying).toBeUndefined();
  expect(final.commit?.alreadyPresent).toBe(false);
}

async function setHook(env: DrillEnv, script: string | undefined): Promise<void> {
  const hook = join(env.gitopsRepo, 'hooks', 'pre-receive');
  if (script === undefined) {
    await rm(hook, { force: true });
    return;
  }
  await writeFile(hook, `#!/bin/sh\ncat >/dev/null\n${script}\n`);
  await chmod(hook, 0o755);
}

describe.concurrent('the GitOps remote fails after approval and comes back', () => {
  it('missing (moved away), then back: retried on its own', async () => {
    await drill('missing', {
      break: (env) => rename(env.gitopsRepo, `${env.gitopsRepo}.away`),
      repair: (env) => rename(`${env.gitopsRepo}.away`, env.gitopsRepo),
      shows: /does not appear to be a git repository/,
      needsRetrySignal: false,
    });
  }, 300_000);

  it('a protected branch (a pre-receive hook refuses), then lifted: continues on a retry signal', async () => {
    await drill('protected', {
      break: (env) => setHook(env, 'echo "main is protected: pushes need review" >&2\nexit 1'),
      repair: (env) => setHook(env, undefined),
      shows: /main is protected|pre-receive hook declined/,
      needsRetrySignal: true,
    });
  }, 300_000);

  it('an unpacker error (the remote cannot store objects), then repaired: retried on its own', async () => {
    // receive.maxInputSize makes the remote's unpack-objects die as on a full or broken object store.
    await drill('unpacker', {
      break: (env) => exec('git', ['--git-dir', env.gitopsRepo, 'config', 'receive.maxInputSize', '1']).then(() => {}),
      repair: (env) =>
        exec('git', ['--git-dir', env.gitopsRepo, 'config', '--unset', 'receive.maxInputSize']).then(() => {}),
      shows: /unpacker error/,
      needsRetrySignal: false,
    });
  }, 300_000);
});
