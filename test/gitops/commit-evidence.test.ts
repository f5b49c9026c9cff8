/**
 * The gitops activity with an evidence bundle: blobs read from a real filesystem store, committed with the overlay in
 * one commit to a real bare repository, and verified from a clone.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { parse } from 'yaml';
import type { GitOpsPublishInput } from '../../activities/gitops';
import { createGitOpsActivities, verifyBundle } from '../../activities/gitops';
import { overlayPath, releaseDir } from '../../activities/gitops/layout';
import { FilesystemStore } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import { bareRepo, cloneOf, commitRelease, gitIn, releaseInput, test } from './fixtures';

async function filesUnder(dir: string): Promise<{ path: string; content: Buffer }[]> {
  const out: { path: string; content: Buffer }[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    out.push({ path: relative(dir, full), content: await readFile(full) });
  }
  return out;
}

async function withEvidence(store: FilesystemStore): Promise<GitOpsPublishInput> {
  const input = releaseInput();
  const scan = await store.putBytes('{"gate":"scan","findings":[]}\n', { path: 'evidence/scan.json' });
  const sbom = await store.putBytes('{"bomFormat":"CycloneDX","specVersion":"1.6"}\n', { path: 'sbom.cdx.json' });
  return {
    ...input,
    evidence: {
      entries: [
        { name: 'gates/scan.json', sha256: scan.sha256 },
        { name: 'sbom.cdx.json', sha256: `sha256:${sbom.sha256}` },
      ],
      index: {
        policy: { name: 'default', file: 'policies/default.yaml', digest: input.policy.digest },
        approvers: { file: 'approvers.yaml', digest: 'a'.repeat(64) },
        decisions: input.approvals,
        refusedDecisions: [],
        gates: input.gates.map((g) => ({
          gate: g.gate,
          verdict: g.verdict,
          summary: g.summary,
          ...(g.gate === 'scan' ? { evidenceSha256: scan.sha256 } : {}),
        })),
      },
    },
  };
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => expect.unreachable('expected a failure'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('commitRelease with evidence', () => {
  test('commits the bundle with the overlay in one commit, and a clone verifies it', async ({ tmp }) => {
    const store = new FilesystemStore(join(tmp, 'store'));
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work'), store });
    const input = await withEvidence(store);

    const result = await commitRelease(activities, input);

    const { dir, git } = await cloneOf(bare, tmp);
    const release = releaseDir('sentiment', '1.4.0', 'production');
    const changed = (await git.raw(['show', '--name-only', '--format=', result.sha])).trim().split('\n').sort();
    expect(changed).toEqual(result.paths);
    expect(changed).toContain(`${release}/bundle.json`);
    expect(changed.filter((p) => p.startsWith(`${release}/evidence/`))).toHaveLength(2);
    expect(changed).toContain(`${overlayPath('sentiment', 'production')}/deployment-patch.yaml`);

    const verification = verifyBundle(await filesUnder(join(dir, release)));
    expect(verification.problems).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(verification.document?.index.gates[0]?.evidenceSha256).toMatch(/^[0-9a-f]{64}$/);

    // The deployed object and the summary name the bundle that holds their evidence.
    const patch = parse(
      await readFile(join(dir, overlayPath('sentiment', 'production'), 'deployment-patch.yaml'), 'utf8'),
    );
    expect(patch.metadata.annotations['policy.modelrelease.io/evidence-bundle']).toBe(verification.digest);
    const summary = JSON.parse(await readFile(join(dir, release, 'evidence.json'), 'utf8'));
    expect(summary.evidenceBundle).toBe(verification.digest);
    expect(summary.manifest).not.toHaveProperty('storeRoot');
    expect(await readFile(join(dir, release, 'evidence.json'), 'utf8')).not.toContain(join(tmp, 'store'));
  });

  test('commits byte-identical evidence whatever the order of the entries, and a retry commits nothing', async ({
    tmp,
  }) => {
    const store = new FilesystemStore(join(tmp, 'store'));
    const input = await withEvidence(store);
    const reversed = { ...input, evidence: { ...input.evidence!, entries: [...input.evidence!.entries].reverse() } };
    const trees: string[] = [];
    for (const [i, each] of [input, reversed].entries()) {
      const bare = await bareRepo(tmp, `gitops-${i}.git`);
      const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, `work-${i}`), store });
      await commitRelease(activities, each);
      const retried = await commitRelease(activities, each);
      expect(retried.alreadyPresent).toBe(true);
      trees.push(
        (await gitIn(bare).raw(['rev-parse', `main:${releaseDir('sentiment', '1.4.0', 'production')}`])).trim(),
      );
    }
    expect(trees[1]).toBe(trees[0]);
  });

  test('a release without evidence commits as before: no bundle', async ({ tmp }) => {
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const result = await commitRelease(activities, releaseInput());
    expect(result.paths.filter((p) => p.startsWith('releases/'))).toEqual([
      `${releaseDir('sentiment', '1.4.0', 'production')}/evidence.json`,
    ]);
  });

  test('refuses evidence without a store, and retries a blob the store does not hold', async ({ tmp }) => {
    const store = new FilesystemStore(join(tmp, 'store'));
    const input = await withEvidence(store);
    const bare = await bareRepo(tmp);

    const noStore = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const config = await failureOf(commitRelease(noStore, input));
    expect(config.type).toBe(FailureType.InvalidConfig);
    expect(config.nonRetryable).toBe(true);
    expect(config.message).toMatch(/no artifact store/);

    const emptyStore = createGitOpsActivities({
      repoUrl: bare,
      workRoot: join(tmp, 'work'),
      store: new FilesystemStore(join(tmp, 'other-store')),
    });
    const missing = await failureOf(commitRelease(emptyStore, input));
    expect(missing.nonRetryable).toBe(false);
    expect(missing.message).toMatch(/holds no blob sha256:[0-9a-f]{64}/);
    expect(missing.message).not.toContain(tmp);
    // Nothing reached the remote.
    expect(await gitIn(bare).raw(['for-each-ref', 'refs/heads/'])).toBe('');

    const bad = { ...input, evidence: { ...input.evidence!, entries: [{ name: 'x.json', sha256: 'not-a-digest' }] } };
    const invalid = await failureOf(
      commitRelease(createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work'), store }), bad),
    );
    expect(invalid.type).toBe(FailureType.InvalidRequest);
    expect(invalid.message).toMatch(/evidence\.entries\[0\]\.sha256: must be a lower-case hex sha256/);
  });
});
