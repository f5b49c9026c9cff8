/**
 * The monitoring window's evidence committed to a real bare repository: beside the release's evidence, once, without
 * touching what the cluster runs, against other writers, after a rollback, and never outside the repository.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import canonicalize from 'canonicalize';
import { describe, expect } from 'vitest';
import type {
  GitOpsActivities,
  GitOpsPublishInput,
  MonitoringEvidenceCommit,
  RevertResult,
} from '../../activities/gitops';
import { createGitOpsActivities, verifyBundle } from '../../activities/gitops';
import { overlayPath, releaseDir } from '../../activities/gitops/layout';
import { FilesystemStore } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import type { MonitoringEvidenceInput, MonitoringResult, PauseDecision } from '../../contract/monitoring';
import {
  activityEnvironment,
  bareRepo,
  cloneOf,
  commitRelease,
  declineAllPushes,
  gitIn,
  releaseInput,
  seededRepo,
  test,
} from './fixtures';

const RELEASE = releaseDir('sentiment', '1.4.0', 'production');
const OVERLAY = overlayPath('sentiment', 'production');

const passed: MonitoringResult = {
  outcome: 'passed',
  metrics: [
    {
      name: 'p95-latency',
      phase: 'Successful',
      count: 3,
      successful: 3,
      failed: 0,
      inconclusive: 0,
      error: 0,
      consecutiveError: 0,
      last: {
        phase: 'Successful',
        value: '0.042',
        result: [0.042],
        startedAt: '2026-12-01T09:59:58.000Z',
        finishedAt: '2026-12-01T09:59:59.000Z',
      },
    },
  ],
  startedAt: '2026-11-30T10:00:00.000Z',
  finishedAt: '2026-12-01T10:00:00.000Z',
};

const breached: MonitoringResult = {
  ...passed,
  outcome: 'breached',
  breach: { metric: 'error-rate', phase: 'Failed', message: 'result[0] 0.12 > 0.05 (failureCondition)' },
};

function monitoringInput(commit: string, overrides: Partial<MonitoringEvidenceInput> = {}): MonitoringEvidenceInput {
  return {
    releaseId: 'release/sentiment/1.4.0/production',
    model: 'sentiment',
    version: '1.4.0',
    environment: 'production',
    commit,
    policy: { name: 'default', digest: 'd'.repeat(64) },
    window: '24h',
    result: passed,
    outcome: 'kept: every metric passed its window',
    ...overrides,
  };
}

function commitEvidence(
  activities: GitOpsActivities,
  input: MonitoringEvidenceInput,
  onHeartbeat: (details: unknown) => void = () => {},
): Promise<MonitoringEvidenceCommit> {
  const env = activityEnvironment();
  env.on('heartbeat', onHeartbeat);
  return env.run(activities.commitMonitoringEvidence, input);
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => expect.unreachable('expected a failure'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** A release committed by the gitops activity with an evidence bundle, so that bundle.json is there to stay put. */
async function releasedWithBundle(tmp: string) {
  const store = new FilesystemStore(join(tmp, 'store'));
  const bare = await bareRepo(tmp);
  const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work'), store });
  const input = releaseInput();
  const scan = await store.putBytes('{"gate":"scan","findings":[]}\n', { path: 'evidence/scan.json' });
  const withEvidence: GitOpsPublishInput = {
    ...input,
    evidence: {
      entries: [{ name: 'gates/scan.json', sha256: scan.sha256 }],
      index: {
        policy: { name: 'default', digest: input.policy.digest },
        decisions: input.approvals,
        refusedDecisions: [],
        gates: input.gates.map((g) => ({ gate: g.gate, verdict: g.verdict, summary: g.summary })),
      },
    },
  };
  const release = await commitRelease(activities, withEvidence);
  return { bare, activities, release: release.sha };
}

async function filesUnder(dir: string): Promise<{ path: string; content: Buffer }[]> {
  const out: { path: string; content: Buffer }[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    out.push({ path: relative(dir, full), content: await readFile(full) });
  }
  return out;
}

async function commitCount(bare: string): Promise<number> {
  return Number((await gitIn(bare).raw(['rev-list', '--count', 'main'])).trim());
}

describe('commitMonitoringEvidence', () => {
  test('commits the window as canonical JSON named by its sha256, with trailers, once, and redeploys nothing', async ({
    tmp,
  }) => {
    const { bare, activities, release } = await releasedWithBundle(tmp);
    const { dir: before } = await cloneOf(bare, tmp, 'before');
    const bundleBefore = verifyBundle(await filesUnder(join(before, RELEASE)));
    expect(bundleBefore.ok).toBe(true);
    const heartbeats: unknown[] = [];
    const input = monitoringInput(release);

    const first = await commitEvidence(activities, input, (d) => heartbeats.push(d));

    expect(first.created).toBe(true);
    expect(first.path).toBe(`${RELEASE}/monitoring/${first.sha256}.json`);
    expect(heartbeats).toContainEqual({ step: 'push', attempt: 1 });
    const { dir, git } = await cloneOf(bare, tmp, 'after');
    expect((await git.raw(['rev-parse', 'HEAD'])).trim()).toBe(first.commit);
    const bytes = await readFile(join(dir, first.path));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(first.sha256);
    const expected = canonicalize({ format: 'modelrelease.io/monitoring-evidence/v1', ...input });
    expect(bytes.toString('utf8')).toBe(expected);
    expect(JSON.parse(bytes.toString('utf8')).result).toEqual(passed);

    // Only the evidence file: the Deployment, its overlay and bundle.json stay as the release committed them.
    expect((await git.raw(['show', '--name-only', '--format=', first.commit])).trim().split('\n')).toEqual([
      first.path,
    ]);
    expect((await git.raw(['diff', '--name-only', release, first.commit, '--', OVERLAY, 'apps'])).trim()).toBe('');
    const bundleAfter = verifyBundle(await filesUnder(join(dir, RELEASE)));
    expect(bundleAfter.problems).toEqual([]);
    expect(bundleAfter.digest).toBe(bundleBefore.digest);

    expect(await git.raw(['log', '-1', '--format=%s'])).toBe('monitoring sentiment@1.4.0 in production: passed\n');
    const trailers = await git.raw(['log', '-1', '--format=%(trailers:only,unfold)']);
    expect(trailers.trim().split('\n')).toEqual([
      'Release-Id: release/sentiment/1.4.0/production#monitoring',
      `Monitoring-Of: ${release}`,
      'Monitoring-Outcome: passed',
    ]);

    const count = await commitCount(bare);
    const again = await commitEvidence(activities, input);
    expect(again).toEqual({ ...first, created: false });
    expect(await commitCount(bare)).toBe(count);

    // The release commit is still what a retried publish finds by its Release-Id.
    const retried = await commitRelease(activities, releaseInput());
    expect(retried).toMatchObject({ sha: release, alreadyPresent: true });
  });

  test('a push from elsewhere between our fetch and push is kept, and ours is redone on top of it', async ({ tmp }) => {
    const { bare, activities, release } = await releasedWithBundle(tmp);
    const { dir: rivalDir } = await cloneOf(bare, tmp, 'rival');
    const rival = () => {
      const git = (...args: string[]) =>
        execFileSync(
          'git',
          ['-C', rivalDir, '-c', 'user.name=Rival', '-c', 'user.email=rival@example.invalid', ...args],
          {
            stdio: 'pipe',
          },
        );
      git('pull', '-q', '--ff-only', 'origin', 'main');
      execFileSync('sh', ['-c', 'mkdir -p apps/fraud && echo "replicas: 3" > apps/fraud/note.yaml'], { cwd: rivalDir });
      git('add', 'apps/fraud/note.yaml');
      git('commit', '-q', '--no-gpg-sign', '-m', 'release fraud@2.0.0');
      git('push', '-q', 'origin', 'HEAD:refs/heads/main');
    };
    const heartbeats: unknown[] = [];

    const result = await commitEvidence(activities, monitoringInput(release), (details) => {
      heartbeats.push(details);
      const { step, attempt } = details as { step: string; attempt: number };
      if (step === 'push' && attempt === 1) rival();
    });

    expect(result.created).toBe(true);
    expect(heartbeats).toContainEqual({ step: 'backoff', attempt: 1 });
    expect(heartbeats).toContainEqual({ step: 'push', attempt: 2 });
    const log = await gitIn(bare).raw(['log', '--format=%s', 'main']);
    expect(log.trim().split('\n').slice(0, 3)).toEqual([
      'monitoring sentiment@1.4.0 in production: passed',
      'release fraud@2.0.0',
      'release sentiment@1.4.0 to production',
    ]);
    const { dir } = await cloneOf(bare, tmp, 'after');
    expect(await readFile(join(dir, 'apps/fraud/note.yaml'), 'utf8')).toBe('replicas: 3\n');
    expect(await readFile(join(dir, result.path), 'utf8')).toContain('"outcome":"passed"');
  });

  test('after a rollback reverted the release folder, the breach still lands there as the record of why', async ({
    tmp,
  }) => {
    const { bare, activities, release } = await releasedWithBundle(tmp);
    const env = activityEnvironment();
    const rollback: RevertResult = await env.run(activities.revertRelease, {
      releaseId: 'release/sentiment/1.4.0/production',
      model: 'sentiment',
      version: '1.4.0',
      environment: 'production',
      commit: release,
      reason: 'monitoring breached: error-rate Failed',
      decidedBy: 'policy (monitor.onBreach: rollback)',
    });
    // The release manager's signed rollback of the pause, as the release recorded it.
    const decision: PauseDecision = {
      approver: 'amara',
      role: 'release-manager',
      decision: 'rollback',
      at: '2026-12-01T09:30:00.000Z',
      comment: 'error rate doubled',
      signed: {
        fingerprint: 'SHA256:amara-key',
        keyType: 'ssh-ed25519',
        signedAt: '2026-12-01T09:29:50.000Z',
        runId: 'run-1',
        manifestDigest: `sha256:${'a'.repeat(64)}`,
        signature: '-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----',
        payloadDigest: `sha256:${'b'.repeat(64)}`,
      },
    };
    const input = monitoringInput(release, {
      result: breached,
      outcome: `rolled back (commit ${rollback.commit})`,
      decisions: [decision],
    });

    const result = await commitEvidence(activities, input);

    expect(result.created).toBe(true);
    expect(result.path).toBe(`${RELEASE}/monitoring/${result.sha256}.json`);
    const { dir, git } = await cloneOf(bare, tmp, 'after');
    const files = (await filesUnder(join(dir, RELEASE))).map((f) => f.path);
    expect(files).toEqual([`monitoring/${result.sha256}.json`]);
    const document = JSON.parse(await readFile(join(dir, result.path), 'utf8'));
    expect(document).toMatchObject({
      outcome: `rolled back (commit ${rollback.commit})`,
      result: breached,
      decisions: [decision],
    });
    expect((await git.raw(['log', '-1', '--format=%(trailers:key=Monitoring-Outcome,valueonly)'])).trim()).toBe(
      'breached',
    );
    expect(await git.raw(['log', '-1', '--format=%s'])).toBe('monitoring sentiment@1.4.0 in production: breached\n');
    expect((await commitEvidence(activities, input)).created).toBe(false);
  });

  test('a model name that climbs folders, or a folder that is a link, is refused and nothing lands', async ({
    tmp,
  }) => {
    const { bare, dir, git, commit } = await seededRepo(tmp);
    const outside = join(tmp, 'outside');
    await mkdir(outside);
    await mkdir(join(dir, 'releases'));
    await symlink(outside, join(dir, 'releases', 'linked'));
    await git.raw(['add', 'releases/linked']);
    await git.raw(['commit', '-q', '-m', 'a link in the release folder']);
    await git.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    const release = await commit('apps/linked/image.yaml', 'image: x\n', 'release\n\nRelease-Id: r/linked');
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const count = await commitCount(bare);

    for (const model of ['..', 'a/../../etc', '.']) {
      const err = await failureOf(commitEvidence(activities, monitoringInput(release, { model })));
      expect(err).toMatchObject({ type: FailureType.UnsafePath, nonRetryable: true });
      expect(err.message).toMatch(/model .* cannot be a folder name in the GitOps layout/);
    }

    const linked = await failureOf(commitEvidence(activities, monitoringInput(release, { model: 'linked' })));
    expect(linked).toMatchObject({ type: FailureType.UnsafePath, nonRetryable: true });
    expect(linked.message).toMatch(/^releases\/linked is a symbolic link in the GitOps repository/);
    expect(await readdir(outside)).toEqual([]);
    expect(await commitCount(bare)).toBe(count);
  });

  test('a commit not on the branch, a malformed input and a refusing remote are not retried', async ({ tmp }) => {
    const { bare, dir, git, commit } = await seededRepo(tmp);
    const release = await commit('apps/sentiment/image.yaml', 'image: x\n', 'release\n\nRelease-Id: r/1');
    await git.raw(['checkout', '-q', '-b', 'elsewhere']);
    await git.raw(['commit', '-q', '--allow-empty', '-m', 'not on main']);
    await git.raw(['push', '-q', 'origin', 'elsewhere']);
    const stray = (await git.raw(['rev-parse', 'HEAD'])).trim();
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });

    const notOnMain = await failureOf(commitEvidence(activities, monitoringInput(stray)));
    expect(notOnMain).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect(notOnMain.message).toContain(`commit ${stray} is not on main`);
    expect(notOnMain.message).not.toContain(bare);
    expect(notOnMain.message).not.toContain(dir);

    const malformed = await failureOf(
      commitEvidence(
        activities,
        monitoringInput('HEAD', { releaseId: 'a\nMonitoring-Of: x', result: { ...passed, outcome: 'ok' as 'passed' } }),
      ),
    );
    expect(malformed).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect(malformed.message).toBe(
      'invalid monitoring evidence input: releaseId: must be a non-empty single line of at most 512 characters; ' +
        'commit: must be the full lower-case sha of the release commit; result.outcome: must be passed or breached',
    );

    await declineAllPushes(bare, 'main is protected');
    const refused = await failureOf(commitEvidence(activities, monitoringInput(release)));
    expect(refused).toMatchObject({ type: FailureType.GitOpsRejected, nonRetryable: true });
    expect(refused.message).toContain('main is protected');
  });
});
