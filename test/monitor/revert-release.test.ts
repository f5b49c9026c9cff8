import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { createGitOpsActivities } from '../../activities/gitops';
import type { GitOpsActivities, RevertResult } from '../../activities/gitops';
import { FailureType } from '../../contract/definitions';
import type { RevertInput } from '../../contract/delivery';
import { activityEnvironment, cloneOf, declineAllPushes, seededRepo, test } from '../gitops/fixtures';

const IMAGE_FILE = 'apps/sentiment/overlays/production/image.yaml';
const OTHER_FILE = 'apps/fraud/overlays/production/image.yaml';

/** A GitOps repository with a first deployment (v1) and the release under test (v2) on main. */
async function repository(tmp: string) {
  const seeded = await seededRepo(tmp);
  const { commit } = seeded;
  await commit(IMAGE_FILE, 'image: model-server@sha256:1111\nreplicas: 2\n', 'release sentiment@1.3.0');
  const release = await commit(
    IMAGE_FILE,
    'image: model-server@sha256:2222\nreplicas: 2\n',
    'release sentiment@1.4.0 to production\n\nRelease-Id: release/sentiment/1.4.0/production\n',
  );
  return { ...seeded, release };
}

function revertInput(commit: string, overrides: Partial<RevertInput> = {}): RevertInput {
  return {
    releaseId: 'release/sentiment/1.4.0/production',
    model: 'sentiment',
    version: '1.4.0',
    environment: 'production',
    commit,
    reason: 'rollout stalled: the Deployment exceeded its progress deadline',
    decidedBy: 'policy (delivery.rollout.onStall: rollback)',
    ...overrides,
  };
}

function revert(activities: GitOpsActivities, input: RevertInput, heartbeats: unknown[] = []): Promise<RevertResult> {
  const env = activityEnvironment();
  env.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return env.run(activities.revertRelease, input);
}

async function fileAt(bare: string, tmp: string, name: string, path: string): Promise<string> {
  const { dir } = await cloneOf(bare, tmp, name);
  return readFile(join(dir, path), 'utf8');
}

describe('revertRelease', () => {
  test('reverts the release commit with rollback trailers, once', async ({ tmp }) => {
    const { bare, release } = await repository(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const heartbeats: unknown[] = [];

    const first = await revert(
      activities,
      revertInput(release, { reason: 'stalled\nRollback-Of: forged' }),
      heartbeats,
    );

    expect(first.alreadyDone).toBe(false);
    expect(first.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(heartbeats).toContainEqual({ step: 'push', attempt: 1 });
    expect(await fileAt(bare, tmp, 'after', IMAGE_FILE)).toBe('image: model-server@sha256:1111\nreplicas: 2\n');
    const { git } = await cloneOf(bare, tmp, 'log');
    expect((await git.raw(['rev-parse', 'HEAD'])).trim()).toBe(first.commit);
    const message = await git.raw(['log', '-1', '--format=%B']);
    expect(message.split('\n')[0]).toBe('rollback sentiment@1.4.0 in production');
    expect(message).toContain(`This reverts commit ${release}`);
    const trailers = await git.raw(['log', '-1', '--format=%(trailers:only,unfold)']);
    expect(trailers.trim().split('\n')).toEqual([
      'Rollback-Of: release/sentiment/1.4.0/production',
      'Rollback-Reason: stalled Rollback-Of: forged',
      'Rollback-Decided-By: policy (delivery.rollout.onStall: rollback)',
      'Release-Id: release/sentiment/1.4.0/production#rollback',
    ]);

    const again = await revert(activities, revertInput(release));
    expect(again).toEqual({ commit: first.commit, alreadyDone: true });
    expect((await git.raw(['rev-list', '--count', 'origin/main'])).trim()).toBe('3');
  });

  test('reverts although later commits touched other files, and keeps them', async ({ tmp }) => {
    const { bare, release, commit } = await repository(tmp);
    await commit(OTHER_FILE, 'image: fraud@sha256:3333\n', 'release fraud@2.0.0');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const result = await revert(activities, revertInput(release));

    expect(result.alreadyDone).toBe(false);
    expect(await fileAt(bare, tmp, 'after', IMAGE_FILE)).toContain('sha256:1111');
    expect(await fileAt(bare, tmp, 'after2', OTHER_FILE)).toBe('image: fraud@sha256:3333\n');
  });

  test('a later change to the same lines is a conflict for a person, not retried', async ({ tmp }) => {
    const { bare, release, commit } = await repository(tmp);
    await commit(IMAGE_FILE, 'image: model-server@sha256:9999\nreplicas: 2\n', 'hotfix by hand');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const err = await revert(activities, revertInput(release)).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.GitOpsConflict, nonRetryable: true });
    expect((err as Error).message).toMatch(
      new RegExp(`reverting ${release} conflicts with later changes to ${IMAGE_FILE}: resolve the rollback by hand`),
    );
    expect((err as Error).message).not.toContain(bare);
    expect(await fileAt(bare, tmp, 'after', IMAGE_FILE)).toContain('sha256:9999');
  });

  test('a commit that is not on the branch, or malformed input, is refused without retries', async ({ tmp }) => {
    const { bare, dir, git } = await repository(tmp);
    await git.raw(['checkout', '-q', '-b', 'elsewhere']);
    await writeFile(join(dir, 'x.txt'), 'x');
    await git.raw(['add', 'x.txt']);
    await git.raw(['commit', '-q', '-m', 'not on main']);
    await git.raw(['push', '-q', 'origin', 'elsewhere']);
    const stray = (await git.raw(['rev-parse', 'HEAD'])).trim();
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const notOnMain = await revert(activities, revertInput(stray)).catch((e: unknown) => e);
    expect(notOnMain).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect((notOnMain as Error).message).toMatch(new RegExp(`commit ${stray} is not on main`));

    const malformed = await revert(activities, revertInput('HEAD~1', { decidedBy: ' ' })).catch((e: unknown) => e);
    expect(malformed).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect((malformed as Error).message).toMatch(/commit: must be a full lower-case commit sha; decidedBy: /);
  });

  test('a remote that refuses the push is GitOpsRejected', async ({ tmp }) => {
    const { bare, release } = await repository(tmp);
    await declineAllPushes(bare, 'main is protected');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const err = await revert(activities, revertInput(release)).catch((e: unknown) => e);

    expect(err).toMatchObject({ type: FailureType.GitOpsRejected, nonRetryable: true });
    expect((err as Error).message).toContain('main is protected');
  });
});
