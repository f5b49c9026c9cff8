import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { commitMessage } from '../../activities/gitops/commit-message';
import { GitPushConflictError } from '../../activities/gitops/errors';
import { renderRelease } from '../../activities/gitops/render';
import type { PublishProgress } from '../../activities/gitops/repo';
import { publishRelease } from '../../activities/gitops/repo';
import { bareRepo, gitIn, releaseInput, test } from './fixtures';

/**
 * Another writer that pushes to the branch exactly when asked, so that a race is reproduced on purpose: called from
 * the publish's progress callback just before its push, it moves the remote between our fetch and our push.
 */
async function rivalWriter(bare: string, root: string): Promise<() => void> {
  const dir = join(root, 'rival');
  await gitIn(root).raw(['init', '-q', '--initial-branch=main', dir]);
  let count = 0;
  return () => {
    count += 1;
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', dir, '-c', 'user.name=Rival', '-c', 'user.email=rival@example.invalid', ...args], {
        stdio: 'pipe',
      });
    git('commit', '-q', '--allow-empty', '--no-gpg-sign', '-m', `rival change ${count}`);
    git('push', '-q', bare, 'HEAD:refs/heads/main');
  };
}

describe('publishRelease against a moving branch', () => {
  test('redoes the commit on top of the new remote head when it loses a race', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const rival = await rivalWriter(bare, tmp);
    rival();
    const input = releaseInput();
    const steps: PublishProgress[] = [];

    const result = await publishRelease({
      repoUrl: bare,
      branch: 'main',
      workRoot: join(tmp, 'work'),
      releaseId: input.releaseId,
      files: renderRelease(input),
      message: commitMessage(input),
      onProgress: (progress) => {
        steps.push(progress);
        if (progress.step === 'push' && progress.attempt === 1) rival();
      },
    });

    expect(result.alreadyPresent).toBe(false);
    expect(steps).toContainEqual({ step: 'backoff', attempt: 1 });
    expect(steps).toContainEqual({ step: 'push', attempt: 2 });
    const log = await gitIn(bare).raw(['log', '--format=%s', 'main']);
    expect(log.trim().split('\n')).toEqual([
      'release sentiment@1.4.0 to production',
      'rival change 2',
      'rival change 1',
    ]);
  });

  test('gives up with a retryable GitPushConflictError after the bounded attempts', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const rival = await rivalWriter(bare, tmp);
    const input = releaseInput();

    const attempt = publishRelease({
      repoUrl: bare,
      branch: 'main',
      workRoot: join(tmp, 'work'),
      releaseId: input.releaseId,
      files: renderRelease(input),
      message: commitMessage(input),
      maxAttempts: 3,
      onProgress: (progress) => {
        if (progress.step === 'push') rival();
      },
    });

    await expect(attempt).rejects.toBeInstanceOf(GitPushConflictError);
    await expect(attempt).rejects.toThrow(/lost 3 races/);
    const log = await gitIn(bare).raw(['log', '--format=%s', 'main']);
    expect(log.trim().split('\n')).toEqual(['rival change 3', 'rival change 2', 'rival change 1']);
  });
});
