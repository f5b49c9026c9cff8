/**
 * Delivery end to end against real parts: a Kubernetes control plane (kube-apiserver, controller-manager, scheduler,
 * etcd, kwok's fake node), Flux's source- and kustomize-controller reading the GitOps repository over HTTP from
 * 127.0.0.1, and release workers as child processes (so that one can be killed with SIGKILL). A release is released
 * only once Flux applied its commit and the rollout is complete; a stalled rollout (the node cordoned, so new pods
 * cannot schedule) is rolled back with a revert commit, or paused for people.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { decideRollout, getRelease, startRelease } from '../../client/release-client';
import { TERMINAL_STAGES, type ReleaseStatus } from '../../contract/types';
import { startGitHttp, type GitHttpServer } from '../../scripts/git-http';
import {
  addCatalogNodes,
  addFluxSync,
  startCluster,
  startFlux,
  type Cluster,
  type Flux,
} from '../../scripts/cluster-harness';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { recordHistory } from '../helpers/histories';
import { approve, createDrillEnv, finalStatus, waitFor, type DrillEnv, type WorkerProcess } from '../drills/harness';

const exec = promisify(execFile);
const SERVING_IMAGE = `127.0.0.1:5000/modelrelease/model-server@sha256:${'5'.repeat(64)}`;

let cluster: Cluster;
let flux: Flux;
let git: GitHttpServer;
let env: DrillEnv;
let worker: WorkerProcess;
let configDir: string;

/** The fixture policy with a delivery section synced by Flux (`onStall` and the rollout timeout per test policy). */
async function writePolicies(configDir: string): Promise<void> {
  const base = parse(await readFile(join(FIXTURE_CONFIG_DIR, 'policies', 'default.yaml'), 'utf8'));
  const delivery = (rollout: Record<string, unknown>) => ({
    ...base,
    delivery: {
      servingImage: SERVING_IMAGE,
      gitops: { kind: 'flux' },
      requestReconcile: true,
      rollout,
    },
  });
  const policies = {
    delivery: delivery({ timeout: '25s', onStall: 'rollback' }),
    'delivery-pause': delivery({
      timeout: '25s',
      onStall: 'pause',
      pause: { roles: ['release-manager'], timeout: '10m', onTimeout: 'keep' },
    }),
    'delivery-slow': delivery({ timeout: '3m', onStall: 'rollback' }),
  };
  for (const [name, policy] of Object.entries(policies))
    await writeFile(join(configDir, 'policies', `${name}.yaml`), stringify(policy));
}

/** Cordons (or uncordons) every fake node: new pods cannot schedule, pods already running keep running. */
async function cordon(on: boolean): Promise<void> {
  await cluster.kubectlOk([on ? 'cordon' : 'uncordon', '-l', 'type=kwok']);
}

beforeAll(async () => {
  env = await createDrillEnv('delivery');
  cluster = await startCluster({ dir: join(env.dir, 'cluster') });
  await mkdir(join(env.dir, 'flux'), { recursive: true, mode: 0o700 });
  flux = await startFlux(cluster, { dir: join(env.dir, 'flux') });
  git = await startGitHttp({ root: env.dir, repos: ['gitops.git'] });
  configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  await writePolicies(configDir);
  for (const namespace of ['staging', 'production']) await cluster.ensureNamespace(namespace);
  await addCatalogNodes(cluster, join(FIXTURE_CONFIG_DIR, 'pricing.yaml'));
  env.workerEnv.MREL_CONFIG_DIR = configDir;
  env.workerEnv.MREL_KUBECONFIG = cluster.kubeconfigPath;
  worker = env.releaseWorker();
  await worker.start();
}, 240_000);

afterAll(async () => {
  await env?.close();
  await git?.stop();
  await flux?.stop();
  await cluster?.stop();
});

/** Flux syncs `apps/<model>/overlays/<environment>` as the Kustomization `<model>-<environment>`. */
async function sync(model: string, environment: string): Promise<void> {
  await addFluxSync(cluster, {
    name: `${model}-${environment}`,
    url: git.url('gitops.git'),
    path: `./apps/${model}/overlays/${environment}`,
  });
}

async function release(model: string, version: string, environment: string, policy: string): Promise<string> {
  const request = await env.request(model, version, { environment, policy });
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.taskQueue, configDir });
  await waitFor(
    `${releaseId} awaits approval`,
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval' || s.stage === 'failed',
    120_000,
    250,
  );
  await approve(env.client, releaseId, environment === 'production' ? ['amara', 'boris'] : ['amara']);
  return releaseId;
}

/** The parts of a Deployment the tests read. */
interface DeploymentView {
  metadata: { annotations?: Record<string, string> };
  spec: { template: { metadata: { annotations?: Record<string, string> }; spec: { containers: { image: string }[] } } };
  status?: { availableReplicas?: number };
}

async function deployment(namespace: string, name: string): Promise<DeploymentView> {
  return JSON.parse(await cluster.kubectlOk(['-n', namespace, 'get', 'deployment', name, '-o', 'json']));
}

/** A `policy.modelrelease.io/…` annotation of the Deployment (or its pod template). */
const annotation = (d: DeploymentView, key: string): string | undefined =>
  d.spec.template.metadata.annotations?.[`policy.modelrelease.io/${key}`] ??
  d.metadata.annotations?.[`policy.modelrelease.io/${key}`];
const releaseAnnotation = (d: DeploymentView): string | undefined => annotation(d, 'release-id');

async function gitLog(): Promise<string> {
  const { stdout } = await exec('git', ['--git-dir', env.gitopsRepo, 'log', '--format=%H%n%B%x00', 'main']);
  return stdout;
}

describe('delivery to a real cluster synced by Flux', () => {
  it('releases only once Flux applied the commit and the rollout is healthy', async () => {
    await sync('alpha', 'production');
    const id = await release('alpha', '1.0.0', 'production', 'delivery');
    const status = await finalStatus(env.client, id, 180_000);
    expect(status.stage, status.reason).toBe('released');
    expect(status.rollout).toMatchObject({ state: 'healthy', workload: 'Deployment production/alpha' });
    expect(status.rollout?.appliedRevision).toContain(status.commit?.sha);
    expect(status.rollout?.replicas?.ready).toBe(status.rollout?.replicas?.desired);
    const d = await deployment('production', 'alpha');
    expect(releaseAnnotation(d)).toBe(id);
    expect(d.spec.template.spec.containers.map((c) => c.image)).toEqual([SERVING_IMAGE]);
    // The model by digest only: no worker's store path (the file:// source stays named as provenance).
    expect(JSON.stringify(d)).not.toContain(join(env.dir, 'store'));
    expect(JSON.stringify(d)).not.toContain('MODEL_STORE');
    await recordHistory(env.client, id, 'delivered-healthy');
  }, 240_000);

  it('rolls back a stalled rollout with a revert commit, and the previous version runs again', async () => {
    await sync('beta', 'production');
    const first = await release('beta', '1.0.0', 'production', 'delivery');
    expect((await finalStatus(env.client, first, 180_000)).stage).toBe('released');
    await cordon(true);
    try {
      const second = await release('beta', '2.0.0', 'production', 'delivery');
      const status = await finalStatus(env.client, second, 240_000);
      expect(status.stage, status.reason).toBe('rolled-back');
      expect(status.reason).toMatch(/rollout stalled/);
      expect(status.reason).toMatch(/the previous version runs again/);
      expect(status.rollout?.revert?.decidedBy).toMatch(/policy delivery/);
      const log = await gitLog();
      const revert = log.split('\0').find((c) => c.includes(`Rollback-Of: ${second}`));
      expect(revert, log).toBeDefined();
      expect(revert?.startsWith(status.rollout?.revert?.sha ?? '-')).toBe(true);
      await waitFor(
        'the previous version back in the Deployment',
        () => deployment('production', 'beta'),
        (d) => releaseAnnotation(d) === first && (d.status?.availableReplicas ?? 0) >= 1,
        60_000,
        500,
      );
      await recordHistory(env.client, second, 'delivered-rolled-back');
    } finally {
      await cordon(false);
    }
  }, 480_000);

  it('pauses a stalled rollout for people; a rollback from a role the policy names decides it', async () => {
    await sync('gamma', 'production');
    const first = await release('gamma', '1.0.0', 'production', 'delivery-pause');
    expect((await finalStatus(env.client, first, 180_000)).stage).toBe('released');
    await cordon(true);
    try {
      const second = await release('gamma', '2.0.0', 'production', 'delivery-pause');
      const paused = await waitFor(
        `${second} pauses`,
        () => getRelease(env.client, second),
        (s) => s.rollout?.state === 'paused' || (TERMINAL_STAGES as readonly string[]).includes(s.stage),
        180_000,
        500,
      );
      expect(paused.rollout?.awaiting).toMatchObject({ roles: ['release-manager'], from: ['amara'] });
      const refused = await decideRollout(env.client, second, 'rollback', { approver: 'boris', comment: 'not mine' });
      expect(refused.accepted).toBe(false);
      expect(refused.reason).toMatch(/boris holds none of the roles/);
      const counted = await decideRollout(env.client, second, 'rollback', { approver: 'amara', comment: 'stuck' });
      expect(counted.accepted).toBe(true);
      const status = await finalStatus(env.client, second, 180_000);
      expect(status.stage, status.reason).toBe('rolled-back');
      expect(status.rollout?.revert?.decidedBy).toBe('amara (release-manager)');
      expect(status.rollout?.decisions).toMatchObject([{ approver: 'amara', decision: 'rollback', comment: 'stuck' }]);
      await waitFor(
        'the previous version back',
        () => deployment('production', 'gamma'),
        (d) => releaseAnnotation(d) === first,
        60_000,
        500,
      );
      await recordHistory(env.client, second, 'delivered-paused-rollback');
    } finally {
      await cordon(false);
    }
  }, 480_000);

  it('keeps watching through a killed worker and a restarted API server', async () => {
    await sync('delta', 'production');
    await cordon(true);
    let uncordoned = false;
    try {
      const id = await release('delta', '1.0.0', 'production', 'delivery-slow');
      await waitFor(
        `${id} watches its rollout`,
        () => getRelease(env.client, id),
        (s) => s.stage === 'monitor' && (s.pending ?? []).some((p) => p.activity === 'watchRollout' && p.progress),
        120_000,
        500,
      );
      await worker.kill();
      await cluster.restartApiServer();
      await cordon(false);
      uncordoned = true;
      await worker.start();
      const status: ReleaseStatus = await finalStatus(env.client, id, 240_000);
      expect(status.stage, status.reason).toBe('released');
      expect(status.rollout?.state).toBe('healthy');
      expect(status.rollout?.watches).toBe(1);
      expect(await env.commitsFor(id)).toBe(1);
    } finally {
      if (!uncordoned) await cordon(false);
    }
  }, 480_000);

  it('promotes one model to staging, then production, each rollout watched in its namespace', async () => {
    await sync('eps', 'staging');
    await sync('eps', 'production');
    const staging = await release('eps', '1.0.0', 'staging', 'delivery');
    expect((await finalStatus(env.client, staging, 180_000)).rollout?.state).toBe('healthy');
    const production = await release('eps', '1.0.0', 'production', 'delivery');
    const status = await finalStatus(env.client, production, 180_000);
    expect(status.stage, status.reason).toBe('released');
    expect(status.rollout?.workload).toBe('Deployment production/eps');
    const [s, p] = await Promise.all([deployment('staging', 'eps'), deployment('production', 'eps')]);
    expect(releaseAnnotation(s)).toBe(staging);
    expect(releaseAnnotation(p)).toBe(production);
    const digest = (d: DeploymentView) => annotation(d, 'manifest-digest');
    expect(digest(s)).toBeDefined();
    expect(digest(p)).toBe(digest(s));
  }, 480_000);
});
