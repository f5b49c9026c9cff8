import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { createGitOpsActivities, findReleaseCommit } from '../../activities/gitops';
import { renderRelease } from '../../activities/gitops/render';
import { FailureType } from '../../contract/definitions';
import {
  activityEnvironment,
  bareRepo,
  cloneOf,
  commitRelease,
  declineAllPushes,
  deliveredRelease,
  delivery,
  gitIn,
  releaseInput,
  SERVING_IMAGE,
  test,
} from './fixtures';

async function releaseCommits(git: ReturnType<typeof gitIn>, releaseId: string): Promise<string[]> {
  const out = await git.raw(['log', '--format=%H', '--fixed-strings', `--grep=Release-Id: ${releaseId}`, 'main']);
  return out.split('\n').filter((line) => line !== '');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a failure'),
    (err: unknown) => err,
  );
}

describe('commitRelease', () => {
  test('creates the branch in an empty repository with files, bot identity and trailers', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const input = releaseInput();
    const heartbeats: unknown[] = [];

    const result = await commitRelease(activities, input, heartbeats);

    const expected = renderRelease(input);
    expect(result).toMatchObject({ repository: bare, branch: 'main', alreadyPresent: false });
    expect(result.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(result.paths).toEqual([...expected.keys()].sort());
    expect(heartbeats).toContainEqual({ step: 'push', attempt: 1 });

    const { dir, git } = await cloneOf(bare, tmp);
    expect((await git.raw(['rev-parse', 'HEAD'])).trim()).toBe(result.sha);
    for (const [path, content] of expected) expect(await readFile(join(dir, path), 'utf8')).toBe(content);

    const identity = await git.raw(['log', '-1', '--format=%an <%ae>%n%cn <%ce>']);
    expect(identity.trim().split('\n')).toEqual([
      'modelrelease-bot <bot@modelrelease.local>',
      'modelrelease-bot <bot@modelrelease.local>',
    ]);
    const message = await git.raw(['log', '-1', '--format=%B']);
    expect(message.split('\n')[0]).toBe('release sentiment@1.4.0 to production');
    const trailers = await git.raw(['interpret-trailers', '--parse', await messageFile(dir, message)]);
    expect(trailers.trim().split('\n')).toEqual([
      'Release-Id: release/sentiment/1.4.0/production',
      'Approved-by: alice (release-manager)',
      'Approved-by: bob (ml-ethics)',
    ]);
    expect(await findReleaseCommit(bare, 'main', input.releaseId, { workRoot: tmp })).toBe(result.sha);
  });

  test('uses the configured author, branch and serving image', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({
      repoUrl: bare,
      branch: 'releases',
      workRoot: join(tmp, 'work'),
      author: { name: 'Release Robot', email: 'robot@example.invalid' },
      servingImage: 'local/server:9',
    });
    const result = await commitRelease(activities, releaseInput());
    expect(result.branch).toBe('releases');
    const git = gitIn(bare);
    expect((await git.raw(['log', '-1', '--format=%an <%ae>|%cn <%ce>', 'releases'])).trim()).toBe(
      'Release Robot <robot@example.invalid>|Release Robot <robot@example.invalid>',
    );
    const patch = await git.raw(['show', 'releases:apps/sentiment/overlays/production/deployment-patch.yaml']);
    expect(patch).toContain('image: local/server:9');
  });

  test('is idempotent: a second call finds the commit by its Release-Id and makes none', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const input = releaseInput();

    const first = await commitRelease(activities, input);
    const second = await commitRelease(activities, input);

    expect(first.alreadyPresent).toBe(false);
    expect(second).toEqual({ ...first, alreadyPresent: true });
    const git = gitIn(bare);
    expect(await releaseCommits(git, input.releaseId)).toEqual([first.sha]);
    expect((await git.raw(['rev-list', '--count', 'main'])).trim()).toBe('1');
  });

  test('does not mistake a release whose id merely starts alike for this one', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    expect(await findReleaseCommit(bare, 'main', 'release/sentiment/1.4.0/prod', { workRoot: tmp })).toBeUndefined();
    const prod2 = await commitRelease(activities, releaseInput({ environment: 'prod2' }));
    expect(await findReleaseCommit(bare, 'main', 'release/sentiment/1.4.0/prod', { workRoot: tmp })).toBeUndefined();

    const prod = await commitRelease(activities, releaseInput({ environment: 'prod' }));
    expect(prod.alreadyPresent).toBe(false);
    expect(prod.sha).not.toBe(prod2.sha);
    expect(await findReleaseCommit(bare, 'main', 'release/sentiment/1.4.0/prod', { workRoot: tmp })).toBe(prod.sha);
  });

  test('still commits (empty) when the branch already holds identical files, for the audit trail', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const input = releaseInput();
    const { dir, git } = await seedRepo(bare, tmp);
    for (const [path, content] of renderRelease(input)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    await git.raw(['add', '-A']);
    await git.raw(['commit', '-q', '-m', 'hand-written copy of the release']);
    await git.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);

    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const result = await commitRelease(activities, input);

    const remote = gitIn(bare);
    expect((await remote.raw(['rev-parse', 'main'])).trim()).toBe(result.sha);
    expect((await remote.raw(['diff', '--name-only', `${result.sha}^`, result.sha])).trim()).toBe('');
    expect(await releaseCommits(remote, input.releaseId)).toEqual([result.sha]);
  });

  // Every writer that loses a race redoes its work, so eight writers take eight rounds: slow on a loaded machine.
  test('lands every release when many are pushed at once', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const inputs = [
      ...['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'].map((model) => releaseInput({ model })),
      releaseInput({ model: 'golf', environment: 'staging' }),
      releaseInput({ model: 'golf', environment: 'production' }),
    ];

    const results = await Promise.all(inputs.map((input) => commitRelease(activities, input)));

    expect(new Set(results.map((r) => r.sha)).size).toBe(inputs.length);
    const { dir, git } = await cloneOf(bare, tmp);
    expect((await git.raw(['rev-list', '--count', 'main'])).trim()).toBe(String(inputs.length));
    expect((await git.raw(['rev-list', '--merges', 'main'])).trim()).toBe('');
    for (const input of inputs) {
      expect(await releaseCommits(git, input.releaseId)).toHaveLength(1);
      for (const [path, content] of renderRelease(input)) expect(await readFile(join(dir, path), 'utf8')).toBe(content);
    }
  }, 120_000);

  test('fails non-retryably with GitOpsRejected and git’s message when a hook declines the push', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    await declineAllPushes(bare, 'release freeze until Monday');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const err = await rejection(commitRelease(activities, releaseInput()));

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.GitOpsRejected, nonRetryable: true });
    expect((err as Error).message).toContain('release freeze until Monday');
    expect((err as Error).message).toContain('pre-receive hook declined');
  });

  test('fails retryably, without the remote’s location, when the remote does not exist', async ({ tmp }) => {
    const activities = createGitOpsActivities({ repoUrl: join(tmp, 'missing.git'), workRoot: join(tmp, 'work') });

    const err = await rejection(commitRelease(activities, releaseInput()));

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    expect((err as ApplicationFailure).type).toBe('GitRemoteUnavailableError');
    // The worker's host path (or a URL that may carry credentials) never reaches the release's history.
    expect((err as Error).message).not.toContain(tmp);
    expect((err as Error).message).toContain('<gitops remote>');
    await expect(findReleaseCommit(join(tmp, 'missing.git'), 'main', 'x', { workRoot: tmp })).rejects.toThrow(
      /missing\.git/,
    );
  });

  test('refuses a malformed request non-retryably, naming the field', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const input = releaseInput();
    input.request.environment = '../etc';

    const err = await rejection(commitRelease(activities, input));

    expect(err).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect((err as Error).message).toContain('request.environment');
  });

  test('commits a delivered release with the model mounted, and refuses one whose images are not pinned', async ({
    tmp,
  }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    await commitRelease(activities, deliveredRelease());
    const patch = await gitIn(bare).raw(['show', 'main:apps/sentiment/overlays/production/deployment-patch.yaml']);
    expect(patch).toContain(`image: ${SERVING_IMAGE}`);
    expect(patch).toContain('mountPath: /mnt/models');

    const tagged = deliveredRelease(delivery({ servingImage: 'ml/server:latest', modelMount: 'init-container' }));
    tagged.manifest.artifact!.reference = '127.0.0.1:5000/models/sentiment:1.4.0';
    const err = await rejection(commitRelease(activities, tagged));
    expect(err).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    for (const field of ['delivery.servingImage', 'delivery.pullerImage', 'manifest.artifact.reference']) {
      expect((err as Error).message).toContain(field);
    }
  });

  test('pushes nothing when the activity is already cancelled', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const env = activityEnvironment();
    env.cancel();

    await expect(env.run(activities.commitRelease, releaseInput())).rejects.toBeInstanceOf(CancelledFailure);
    expect((await gitIn(bare).raw(['for-each-ref', 'refs/heads'])).trim()).toBe('');
  });

  test('keeps one clone per repository for the next release, and none after a failure', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const workRoot = join(tmp, 'work');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot });
    await commitRelease(activities, releaseInput({ model: 'first' }));
    const kept = await readdir(workRoot);
    expect(kept).toEqual([expect.stringMatching(/^clone-[0-9a-f]{16}-\d+$/)]);
    // The next release reuses it (and sees the first release's commit as its parent).
    const second = await commitRelease(activities, releaseInput({ model: 'second' }));
    expect(await readdir(workRoot)).toEqual(kept);
    const parents = (await gitIn(bare).raw(['log', '--format=%P', '-1', second.sha])).trim();
    expect(parents).not.toBe('');
    await rejection(commitRelease(createGitOpsActivities({ repoUrl: join(tmp, 'nope'), workRoot }), releaseInput()));
    expect(await readdir(workRoot)).toEqual(kept);
  });
});

/** A clone of `bare` with one commit on main, for tests that need history before the first release. */
async function seedRepo(bare: string, root: string): Promise<{ dir: string; git: ReturnType<typeof gitIn> }> {
  const dir = join(root, 'seed');
  await mkdir(dir, { recursive: true });
  const git = gitIn(dir);
  await git.raw(['init', '-q', '--initial-branch=main']);
  await git.raw(['remote', 'add', 'origin', bare]);
  await writeFile(join(dir, 'README.md'), '# GitOps\n');
  await git.raw(['add', 'README.md']);
  await git.raw(['commit', '-q', '-m', 'start the GitOps repository']);
  await git.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);
  return { dir, git };
}

/** Writes the message to a file in the clone, for `git interpret-trailers`, which reads files. */
async function messageFile(dir: string, message: string): Promise<string> {
  const path = join(dir, '.git', 'RELEASE_MESSAGE');
  await writeFile(path, message);
  return path;
}
