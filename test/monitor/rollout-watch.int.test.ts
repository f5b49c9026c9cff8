/**
 * The rollout watch against a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) and a
 * real Flux, started by scripts/cluster-harness.ts. Argo CD cannot run here: its path is exercised with the
 * Application CRD applied from a minimal fixture and the Application's status written by the test, as Argo CD would.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGitOpsActivities, type RevertResult } from '../../activities/gitops';
import { createMonitorActivities, loadKubeConfig } from '../../activities/monitor';
import type { RolloutProgress, RolloutResult, RolloutWatchInput } from '../../contract/delivery';
import type { Cluster, Flux } from '../../scripts/cluster-harness';
import { addFluxSync, startCluster, startFlux, waitUntil } from '../../scripts/cluster-harness';
import type { GitHttpServer } from '../../scripts/git-http';
import { startGitHttp } from '../../scripts/git-http';
import { activityEnvironment, bareRepo, gitIn } from '../gitops/fixtures';

const NS = 'ml';
let tmp: string;
let cluster: Cluster;
let monitor: ReturnType<typeof createMonitorActivities>;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelrelease-monitor-'));
  cluster = await startCluster({ dir: join(tmp, 'cluster') });
  await cluster.ensureNamespace(NS);
  // The worker's way: the kubeconfig comes from MREL_KUBECONFIG.
  monitor = createMonitorActivities({ env: { MREL_KUBECONFIG: cluster.kubeconfigPath }, progressEveryMs: 500 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await rm(tmp, { recursive: true, force: true });
});

function deployment(
  name: string,
  image: string,
  options: { replicas?: number; progressDeadlineSeconds?: number } = {},
) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: options.replicas ?? 2,
      progressDeadlineSeconds: options.progressDeadlineSeconds ?? 600,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'server', image }] },
      },
    },
  };
}

function watchInput(overrides: Partial<RolloutWatchInput> = {}): RolloutWatchInput {
  return {
    releaseId: 'release/sentiment/1.4.0/production',
    commit: 'a'.repeat(40),
    workload: { kind: 'Deployment', namespace: NS, name: 'sentiment' },
    gitops: { kind: 'none' },
    requestReconcile: false,
    timeoutMs: 120_000,
    purpose: 'release',
    ...overrides,
  };
}

/** Runs the watch as a worker would, collecting its heartbeats. */
function watch(
  input: RolloutWatchInput,
  env: MockActivityEnvironment = activityEnvironment(),
): { env: MockActivityEnvironment; heartbeats: RolloutProgress[]; done: Promise<RolloutResult> } {
  const heartbeats: RolloutProgress[] = [];
  env.on('heartbeat', (details: RolloutProgress) => heartbeats.push(details));
  return { env, heartbeats, done: env.run(monitor.watchRollout, input) };
}

async function imageOf(name: string, namespace = NS): Promise<string | undefined> {
  const res = await cluster.api('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`);
  const spec = res.body.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined;
  return spec?.template?.spec?.containers?.[0]?.image;
}

async function untilHeartbeat(heartbeats: RolloutProgress[], test: (p: RolloutProgress) => boolean) {
  return waitUntil('a heartbeat of the watch', async () => heartbeats.find(test), { timeoutMs: 60_000 });
}

async function withCordon<T>(body: () => Promise<T>): Promise<T> {
  await cluster.kubectlOk(['cordon', cluster.nodeName]);
  try {
    return await body();
  } finally {
    await cluster.kubectlOk(['uncordon', cluster.nodeName]);
  }
}

describe('watchRollout on a Deployment (no GitOps controller)', () => {
  it('the worker environment names the cluster', () => {
    expect(loadKubeConfig({ MREL_KUBECONFIG: cluster.kubeconfigPath })?.config.getCurrentCluster()?.server).toBe(
      cluster.server,
    );
  });

  it('follows a new Deployment to a complete rollout, by watch', async () => {
    await cluster.apply(deployment('sentiment', 'registry.local/model-server@sha256:' + '1'.repeat(64)));
    const { done, heartbeats } = watch(watchInput());
    const result = await done;
    expect(result).toMatchObject({
      outcome: 'healthy',
      replicas: { desired: 2, updated: 2, ready: 2, available: 2 },
    });
    expect(result.reason).toMatch(/Deployment ml\/sentiment: rolled out/);
    // One list and one watch, maybe a re-established watch: not a poll loop.
    expect(result.apiRequests).toBeLessThanOrEqual(4);
    expect(heartbeats.every((h) => h.phase === 'rollout' && h.startedAt === heartbeats[0]?.startedAt)).toBe(true);
    expect(heartbeats.some((h) => h.resourceVersion !== undefined)).toBe(true);
  });

  it('calls a rollout stalled at once when the Deployment exceeds its progress deadline', async () => {
    const result = await withCordon(async () => {
      // New pods cannot be scheduled on the cordoned Node, so the rollout makes no progress.
      await cluster.apply(deployment('sentiment', 'registry.local/model-server:v2', { progressDeadlineSeconds: 2 }));
      return watch(watchInput()).done;
    });
    expect(result.outcome).toBe('stalled');
    expect(result.reason).toMatch(
      /Deployment ml\/sentiment of the release stalled: the Deployment exceeded its progress deadline/,
    );
    expect(result.replicas?.desired).toBe(2);
  });

  it('calls a rollout stalled when the timeout passes', async () => {
    const result = await withCordon(async () => {
      await cluster.apply(deployment('sentiment', 'registry.local/model-server:v3'));
      return watch(watchInput({ timeoutMs: 2_000, purpose: 'rollback' })).done;
    });
    expect(result.outcome).toBe('stalled');
    expect(result.reason).toMatch(/^the rollback's rollout did not complete within 2s \(rollout phase\): /);
  });

  it('survives an API server restart during the watch', async () => {
    const { done, heartbeats } = await withCordon(async () => {
      await cluster.apply(deployment('sentiment', 'registry.local/model-server:v4'));
      const running = watch(watchInput());
      await untilHeartbeat(running.heartbeats, (h) => h.resourceVersion !== undefined);
      await cluster.restartApiServer();
      return running;
    });
    const result = await done;
    expect(result.outcome).toBe('healthy');
    expect(await imageOf('sentiment')).toBe('registry.local/model-server:v4');
    // The dropped watch was re-established (and retried while the server was down).
    expect(result.apiRequests).toBeGreaterThanOrEqual(3);
    expect(heartbeats.at(-1)?.replicas).toEqual({ desired: 2, updated: 2, ready: 2, available: 2 });
  });

  it('is cancelled promptly, and a retry resumes from the heartbeat with the first start kept', async () => {
    let last: RolloutProgress | undefined;
    await withCordon(async () => {
      await cluster.apply(deployment('sentiment', 'registry.local/model-server:v5'));
      const first = watch(watchInput());
      await untilHeartbeat(first.heartbeats, (h) => h.resourceVersion !== undefined);
      first.env.cancel();
      await expect(first.done).rejects.toBeInstanceOf(CancelledFailure);
      last = first.heartbeats.at(-1);
    });
    expect(last?.resourceVersion).toBeDefined();
    const retry = watch(watchInput(), new MockActivityEnvironment({ heartbeatDetails: last }));
    const result = await retry.done;
    expect(result.outcome).toBe('healthy');
    expect(retry.heartbeats[0]).toMatchObject({
      startedAt: last?.startedAt,
      resourceVersion: last?.resourceVersion,
      message: expect.stringMatching(/^resuming: /),
    });
  });
});

describe('watchRollout with Flux', () => {
  let flux: Flux;
  let git: GitHttpServer;
  let bare: string;
  let seed: string;

  beforeAll(async () => {
    const root = join(tmp, 'git');
    await mkdir(root);
    bare = await bareRepo(root);
    git = await startGitHttp({ root });
    seed = join(tmp, 'seed');
    await mkdir(seed);
    await gitIn(seed).raw(['init', '-q', '--initial-branch=main']);
    await gitIn(seed).raw(['remote', 'add', 'origin', bare]);
    await pushOverlay('registry.local/web@sha256:' + '1'.repeat(64));
    flux = await startFlux(cluster, { dir: join(tmp, 'flux') });
    // An interval far beyond the tests: only the watch's reconcile request makes Flux apply a new commit soon.
    await addFluxSync(cluster, {
      name: 'web',
      url: git.url('gitops.git'),
      path: './apps/web/overlays/prod',
      interval: '1h',
    });
  }, 180_000);

  afterAll(async () => {
    await flux?.stop();
    await git?.stop();
  });

  /** The seed clone at the branch head: the revert activity pushes commits of its own. */
  async function syncSeed(): Promise<void> {
    const g = gitIn(seed);
    if ((await g.raw(['ls-remote', '--heads', 'origin', 'main'])).trim() === '') return;
    await g.raw(['fetch', '-q', 'origin', 'main']);
    await g.raw(['reset', '-q', '--hard', 'FETCH_HEAD']);
  }

  async function pushOverlay(image: string, extra?: string): Promise<string> {
    await syncSeed();
    const files: Record<string, string> = {
      'apps/web/overlays/prod/kustomization.yaml': `resources:\n- deployment.yaml\n${extra ?? ''}`,
      'apps/web/overlays/prod/deployment.yaml': JSON.stringify({
        ...deployment('web', image),
        metadata: { name: 'web', namespace: NS },
      }),
    };
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(seed, path)), { recursive: true });
      await writeFile(join(seed, path), content);
    }
    const g = gitIn(seed);
    await g.raw(['add', '-A']);
    await g.raw(['commit', '-q', '-m', `web ${image}`]);
    await g.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    return (await g.raw(['rev-parse', 'HEAD'])).trim();
  }

  const fluxInput = (commit: string, overrides: Partial<RolloutWatchInput> = {}) =>
    watchInput({
      commit,
      workload: { kind: 'Deployment', namespace: NS, name: 'web' },
      gitops: { kind: 'flux', namespace: 'flux-system', kustomization: 'web' },
      requestReconcile: true,
      ...overrides,
    });

  it('waits until Flux has applied exactly the commit, then for the rollout; a revert rolls back', async () => {
    const v1 = (await gitIn(seed).raw(['rev-parse', 'HEAD'])).trim();
    const first = await watch(fluxInput(v1)).done;
    expect(first).toMatchObject({ outcome: 'healthy', appliedRevision: `main@sha1:${v1}` });

    const v2 = await pushOverlay('registry.local/web@sha256:' + '2'.repeat(64));
    const running = watch(fluxInput(v2));
    const second = await running.done;
    expect(second).toMatchObject({ outcome: 'healthy', appliedRevision: `main@sha1:${v2}` });
    expect(running.heartbeats.some((h) => h.phase === 'sync')).toBe(true);
    expect(running.heartbeats.at(-1)?.phase).toBe('rollout');
    expect(await imageOf('web')).toBe('registry.local/web@sha256:' + '2'.repeat(64));

    const gitops = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work') });
    const reverted: RevertResult = await activityEnvironment().run(gitops.revertRelease, {
      releaseId: 'release/web/2/prod',
      model: 'web',
      version: '2',
      environment: 'prod',
      commit: v2,
      reason: 'rollout stalled',
      decidedBy: 'policy',
    });
    const rollback = await watch(fluxInput(reverted.commit, { purpose: 'rollback' })).done;
    expect(rollback).toMatchObject({ outcome: 'healthy', appliedRevision: `main@sha1:${reverted.commit}` });
    expect(await imageOf('web')).toBe('registry.local/web@sha256:' + '1'.repeat(64));
  });

  it('counts a later commit of the branch that contains the release commit as applied', async () => {
    const v3 = await pushOverlay('registry.local/web@sha256:' + '3'.repeat(64));
    // Another release commits before Flux fetches: Flux applies that head, never v3 alone.
    await writeFile(join(seed, 'README.md'), 'another release\n');
    await gitIn(seed).raw(['add', 'README.md']);
    await gitIn(seed).raw(['commit', '-q', '-m', 'another release']);
    await gitIn(seed).raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    const head = (await gitIn(seed).raw(['rev-parse', 'HEAD'])).trim();
    const withRepository = createMonitorActivities({
      env: { MREL_KUBECONFIG: cluster.kubeconfigPath },
      repository: { repoUrl: bare, workRoot: join(tmp, 'work') },
    });
    const result: RolloutResult = await activityEnvironment().run(withRepository.watchRollout, fluxInput(v3));
    expect(result).toMatchObject({ outcome: 'healthy', appliedRevision: `main@sha1:${head}` });
    expect(await imageOf('web')).toBe('registry.local/web@sha256:' + '3'.repeat(64));
  });

  it('calls a commit that Flux cannot build stalled without waiting for the timeout', async () => {
    const broken = await pushOverlay('registry.local/web:v9', '- missing.yaml\n');
    const result = await watch(fluxInput(broken, { timeoutMs: 600_000 })).done;
    expect(result.outcome).toBe('stalled');
    expect(result.reason).toMatch(
      /the release's commit was not applied: Flux cannot apply main@sha1:[0-9a-f]+: BuildFailed/,
    );
  });
});

describe('watchRollout with Argo CD (Application CRD from a fixture, status written by the test)', () => {
  const APP = { namespace: 'argocd', name: 'sentiment-prod' };
  const appPath = `/apis/argoproj.io/v1alpha1/namespaces/${APP.namespace}/applications/${APP.name}`;

  beforeAll(async () => {
    await cluster.apply({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'applications.argoproj.io' },
      spec: {
        group: 'argoproj.io',
        scope: 'Namespaced',
        names: { kind: 'Application', plural: 'applications', singular: 'application', listKind: 'ApplicationList' },
        versions: [
          {
            name: 'v1alpha1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    });
    await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/applications.argoproj.io']);
    await cluster.ensureNamespace(APP.namespace);
    await cluster.apply({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: APP,
      spec: { project: 'default' },
    });
    await cluster.apply(deployment('argo-web', 'registry.local/web:v1'));
  });

  const argoInput = (commit: string) =>
    watchInput({
      commit,
      workload: { kind: 'Deployment', namespace: NS, name: 'argo-web' },
      gitops: { kind: 'argocd', ...APP, application: APP.name },
      requestReconcile: true,
    });

  async function setStatus(status: Record<string, unknown>): Promise<void> {
    const res = await cluster.api('PATCH', appPath, { status }, 'application/merge-patch+json');
    expect(res.status).toBe(200);
  }

  it('asks for a refresh, waits for Synced at the commit and Healthy, then follows the workload', async () => {
    const commit = 'b'.repeat(40);
    await setStatus({ sync: { status: 'Synced', revision: 'c'.repeat(40) }, health: { status: 'Healthy' } });
    const running = watch(argoInput(commit));
    await waitUntil('the refresh annotation', async () => {
      const res = await cluster.api('GET', appPath);
      const annotations = (res.body.metadata?.annotations ?? {}) as Record<string, string>;
      return annotations['argocd.argoproj.io/refresh'] === 'normal' ? true : undefined;
    });
    await untilHeartbeat(running.heartbeats, (h) => h.phase === 'sync' && /waiting for Argo CD/.test(h.message));
    await setStatus({ sync: { status: 'Synced', revision: commit }, health: { status: 'Progressing' } });
    const result = await running.done;
    expect(result).toMatchObject({ outcome: 'healthy', appliedRevision: commit });
  });

  it('calls a Degraded application at the commit stalled', async () => {
    const commit = 'd'.repeat(40);
    const running = watch(argoInput(commit));
    await untilHeartbeat(running.heartbeats, (h) => h.phase === 'sync' && /waiting for Argo CD/.test(h.message));
    await setStatus({
      sync: { status: 'Synced', revision: commit },
      health: { status: 'Degraded', message: 'Deployment has timed out progressing' },
    });
    const result = await running.done;
    expect(result.outcome).toBe('stalled');
    expect(result.reason).toMatch(/Argo CD reports the application Degraded at d{12}: Deployment has timed out/);
  });
});
