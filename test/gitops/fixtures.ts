/**
 * Shared setup of the gitops tests: a scratch folder per test, real bare repositories in it, and release inputs.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { simpleGit } from 'simple-git';
import type { SimpleGit } from 'simple-git';
import { test as base } from 'vitest';
import type { GitOpsActivities } from '../../activities/gitops';
import { MODELPACK, type EnvironmentDelivery } from '../../contract/delivery';
import type { ArtifactManifest, GitOpsCommit, GitOpsReleaseInput, ManifestRef } from '../../contract/types';

export const test = base.extend<{ tmp: string }>({
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'modelrelease-gitops-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

/** A git that never depends on the host's identity or signing config. */
export function gitIn(dir: string): SimpleGit {
  return simpleGit({
    baseDir: dir,
    config: ['user.name=Test Person', 'user.email=test@example.invalid', 'commit.gpgsign=false'],
  });
}

export async function bareRepo(root: string, name = 'gitops.git'): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await gitIn(dir).raw(['init', '-q', '--bare', '--initial-branch=main']);
  return dir;
}

/**
 * A bare repository and a clone of it in `seed` whose `commit` writes one file, commits it and pushes it to main,
 * returning the new commit's sha.
 */
export async function seededRepo(root: string) {
  const bare = await bareRepo(root);
  const dir = join(root, 'seed');
  await mkdir(dir);
  const git = gitIn(dir);
  await git.raw(['init', '-q', '--initial-branch=main']);
  await git.raw(['remote', 'add', 'origin', bare]);
  const commit = async (path: string, content: string, message: string): Promise<string> => {
    const file = join(dir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
    await git.raw(['add', '--', path]);
    await git.raw(['commit', '-q', '-m', message]);
    await git.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    return (await git.raw(['rev-parse', 'HEAD'])).trim();
  };
  return { bare, dir, git, commit };
}

/** Installs a pre-receive hook that prints `message` and declines every push. */
export async function declineAllPushes(bare: string, message: string): Promise<void> {
  const hook = join(bare, 'hooks', 'pre-receive');
  await writeFile(hook, `#!/bin/sh\necho ${JSON.stringify(message)} >&2\nexit 1\n`);
  await chmod(hook, 0o755);
}

export async function cloneOf(bare: string, root: string, name = 'clone'): Promise<{ dir: string; git: SimpleGit }> {
  const dir = join(root, name);
  await gitIn(root).raw(['clone', '-q', '--branch', 'main', bare, dir]);
  return { dir, git: gitIn(dir) };
}

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** An activity context as a worker gives one, without the worker's log of every expected failure. */
export function activityEnvironment(): MockActivityEnvironment {
  return new MockActivityEnvironment(undefined, { logger: silent });
}

/** Runs commitRelease inside an activity context, as a worker would, recording its heartbeats. */
export async function commitRelease(
  activities: GitOpsActivities,
  input: GitOpsReleaseInput,
  heartbeats: unknown[] = [],
): Promise<GitOpsCommit> {
  const env = activityEnvironment();
  env.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return env.run(activities.commitRelease, input);
}

const hex = (c: string) => c.repeat(64);

/** A release whose input carries the whole manifest (as releases acquired before manifests were stored by digest). */
export type FullManifestInput = GitOpsReleaseInput & { manifest: ArtifactManifest };

export function releaseInput(
  options: { model?: string; version?: string; environment?: string; image?: string } = {},
): FullManifestInput {
  const model = options.model ?? 'sentiment';
  const version = options.version ?? '1.4.0';
  const environment = options.environment ?? 'production';
  return {
    releaseId: `release/${model}/${version}/${environment}`,
    runId: '0197a2c4-0000-7000-8000-000000000001',
    request: {
      model: { name: model, version, source: `hf://acme/${model}@main` },
      ...(options.image === undefined ? {} : { image: { ref: options.image } }),
      environment,
      policy: 'default',
      team: 'nlp',
      costCenter: 'cc-1234',
      requestedBy: 'ci@acme',
    },
    manifest: {
      model,
      version,
      source: `hf://acme/${model}@main`,
      resolvedRevision: '3f2a9c0d1e',
      files: [
        { path: 'model.json', size: 120, sha256: hex('b') },
        { path: 'group1-shard1of1.bin', size: 4096, sha256: hex('a') },
      ],
      totalSize: 4216,
      storeRoot: '/var/lib/modelrelease/store',
      manifestDigest: hex('c'),
    },
    gates: [
      {
        gate: 'scan',
        verdict: 'pass',
        summary: 'no findings',
        metrics: { files: 2 },
        findings: [],
        startedAt: '2025-01-01T10:00:00.000Z',
        finishedAt: '2025-01-01T10:01:00.000Z',
      },
      {
        gate: 'fairness',
        verdict: 'warn',
        summary: 'demographic parity ratio 0.85',
        metrics: { dpr: 0.85 },
        findings: [],
        startedAt: '2025-01-01T10:01:00.000Z',
        finishedAt: '2025-01-01T10:05:00.000Z',
      },
    ],
    approvals: [
      {
        approver: 'alice',
        role: 'release-manager',
        roles: ['release-manager'],
        decision: 'approve',
        at: '2025-01-01T11:00:00.000Z',
      },
      {
        approver: 'bob',
        role: 'ml-ethics',
        roles: ['ml-ethics'],
        decision: 'approve',
        comment: 'parity acceptable for this use',
        at: '2025-01-01T12:30:00.000Z',
      },
    ],
    policy: { name: 'default', digest: hex('d') },
  };
}

/** A serving image and a puller pinned by digest, as a policy must give them. */
export const SERVING_IMAGE = `127.0.0.1:5000/modelrelease/model-server@sha256:${hex('5')}`;
export const PULLER_IMAGE = `127.0.0.1:5000/oras-project/oras@sha256:${hex('7')}`;

/** An environment's delivery with the policy defaults, as resolveDelivery gives it. */
export function delivery(overrides: Partial<EnvironmentDelivery> = {}): EnvironmentDelivery {
  return {
    serving: 'deployment',
    modelMount: 'image-volume',
    servingImage: SERVING_IMAGE,
    gitops: { kind: 'flux', namespace: 'flux-system', kustomization: 'sentiment-production' },
    requestReconcile: true,
    rollout: {
      timeout: '10m',
      onStall: 'rollback',
      pause: { roles: ['release-manager'], timeout: '4h', onTimeout: 'rollback' },
    },
    ...overrides,
  };
}

/** A release whose model was pushed to a registry as a ModelPack artifact, delivered as `d` says. */
export function deliveredRelease(
  d: EnvironmentDelivery = delivery(),
  options: Parameters<typeof releaseInput>[0] = {},
): GitOpsReleaseInput & { manifest: ManifestRef } {
  const input = releaseInput(options);
  const { model, version, source, resolvedRevision, manifestDigest, totalSize } = input.manifest;
  const manifest: ManifestRef = {
    model,
    version,
    source,
    resolvedRevision,
    manifestDigest,
    blob: hex('b'),
    fileCount: input.manifest.files.length,
    totalSize,
    artifact: {
      reference: `127.0.0.1:5000/models/${model}@sha256:${hex('9')}`,
      digest: `sha256:${hex('9')}`,
      artifactType: MODELPACK.artifactType,
    },
  };
  return { ...input, manifest, delivery: d };
}
