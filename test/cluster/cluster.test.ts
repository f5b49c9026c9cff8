/**
 * The local cluster the delivery tests run against (scripts/cluster-harness.ts): a real control plane with kwok's
 * fake Node, Flux syncing a GitOps repository served over HTTP by git http-backend, and an API server restart. No
 * Temporal here, so this is a unit-project file; its programs come from scripts/setup-cluster-tools.mjs (npm test's
 * pretest). Waits are bounded and generous; nothing asserts how long anything took.
 *
 * Git runs through the async child_process API only: the HTTP server lives in this process, so a synchronous git
 * call against it would block the server it waits for.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addFluxSync,
  fluxSyncStatus,
  requestFluxReconcile,
  startCluster,
  startFlux,
  waitUntil,
  type ApiObject,
  type Cluster,
  type Flux,
} from '../../scripts/cluster-harness';
import { startGitHttp, type GitHttpServer } from '../../scripts/git-http';
import { clusterToolsCurrent } from '../../scripts/setup-cluster-tools.mjs';

const exec = promisify(execFile);
const NS = 'cluster-test';

let work: string;
let cluster: Cluster;
let flux: Flux;
let gitHttp: GitHttpServer;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], {
    cwd,
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
  });
  return stdout.trim();
}

function deploymentYaml(name: string, image: string, replicas: number): string {
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    `  replicas: ${replicas}`,
    '  selector: { matchLabels: { app: ' + name + ' } }',
    '  template:',
    '    metadata: { labels: { app: ' + name + ' } }',
    '    spec:',
    `      containers: [{ name: server, image: "${image}" }]`,
    '',
  ].join('\n');
}

async function getDeployment(namespace: string, name: string): Promise<ApiObject | undefined> {
  const res = await cluster.api('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`);
  return res.status === 200 ? res.body : undefined;
}

function isAvailable(d: ApiObject | undefined, replicas: number): boolean {
  const status = d?.status as { availableReplicas?: number; updatedReplicas?: number } | undefined;
  const available = d?.status?.conditions?.find((c) => c.type === 'Available');
  return available?.status === 'True' && status?.availableReplicas === replicas && status?.updatedReplicas === replicas;
}

function imageOf(d: ApiObject | undefined): string | undefined {
  const spec = d?.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined;
  return spec?.template?.spec?.containers?.[0]?.image;
}

beforeAll(async () => {
  if (!clusterToolsCurrent()) {
    throw new Error(
      'Kubernetes, etcd, kwok or Flux are missing from .tools/cluster/: run `node scripts/setup-cluster-tools.mjs` ' +
        '(npm test runs it as pretest; a cold build takes about fifteen minutes, a cached one under a second)',
    );
  }
  work = await mkdtemp(join(tmpdir(), 'cluster-test-'));
  cluster = await startCluster({ dir: join(work, 'cluster') });
  flux = await startFlux(cluster, { dir: join(work, 'flux') });
  await mkdir(join(work, 'git'));
  await exec('git', ['init', '-q', '--bare', '--initial-branch=main', join(work, 'git', 'gitops.git')]);
  await exec('git', ['-C', join(work, 'git', 'gitops.git'), 'config', 'http.receivepack', 'true']);
  gitHttp = await startGitHttp({ root: join(work, 'git') });
}, 300_000);

afterAll(async () => {
  await gitHttp?.stop();
  await flux?.stop();
  await cluster?.stop();
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

describe('the local cluster', () => {
  it('answers kubectl with the kubeconfig it writes, and has one Ready fake Node', async () => {
    expect((await stat(cluster.kubeconfigPath)).mode & 0o777).toBe(0o600);
    const nodes = JSON.parse(await cluster.kubectlOk(['get', 'nodes', '-o', 'json'])) as { items: ApiObject[] };
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual([cluster.nodeName]);
    const ready = nodes.items[0]?.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready?.status).toBe('True');
    // Anonymous requests are refused: only the kubeconfig's token gets in.
    const anonymous = await new Promise<number | undefined>((ok, fail) => {
      const req = httpsRequest(`${cluster.server}/api/v1/namespaces`, { ca: cluster.caCert }, (res) => {
        res.resume();
        ok(res.statusCode);
      });
      req.on('error', fail);
      req.end();
    });
    expect(anonymous).toBe(401);
  });

  it('brings a Deployment to Available on the kwok Node', async () => {
    await cluster.ensureNamespace(NS);
    await cluster.ensureNamespace(NS); // a second call is harmless
    await cluster.kubectlOk(['apply', '-n', NS, '-f', '-'], { input: deploymentYaml('direct', 'example/app:1', 2) });
    const d = await waitUntil('Deployment direct Available', async () => {
      const dep = await getDeployment(NS, 'direct');
      return isAvailable(dep, 2) ? dep : undefined;
    });
    expect(d.status?.conditions?.find((c) => c.type === 'Available')?.status).toBe('True');
    const pods = JSON.parse(await cluster.kubectlOk(['get', 'pods', '-n', NS, '-o', 'json'])) as {
      items: { spec: { nodeName?: string }; status: { phase?: string } }[];
    };
    expect(pods.items).toHaveLength(2);
    for (const pod of pods.items) {
      expect(pod.spec.nodeName).toBe(cluster.nodeName);
      expect(pod.status.phase).toBe('Running');
    }
  }, 120_000);

  it('applies a pushed commit through Flux and rolls it back with git revert', async () => {
    const clone = join(work, 'clone');
    const url = gitHttp.url('gitops.git');
    await exec('git', ['clone', '-q', url, clone]);
    await git(clone, 'symbolic-ref', 'HEAD', 'refs/heads/main');
    const overlay = join(clone, 'apps', 'demo', 'overlays', 'test');
    await mkdir(overlay, { recursive: true });
    await writeFile(join(overlay, 'kustomization.yaml'), 'resources: [deployment.yaml]\n');
    await writeFile(join(overlay, 'deployment.yaml'), deploymentYaml('demo', 'example/demo:1', 1));
    await git(clone, 'add', '-A');
    await git(clone, 'commit', '-q', '-m', 'demo 1');
    await git(clone, 'push', '-q', 'origin', 'main');
    const first = await git(clone, 'rev-parse', 'HEAD');

    await cluster.ensureNamespace('flux-apps');
    await addFluxSync(cluster, { name: 'demo', url, path: './apps/demo/overlays/test', targetNamespace: 'flux-apps' });
    const appliedRevision = async (commit: string): Promise<string> => {
      await requestFluxReconcile(cluster, 'demo');
      return waitUntil(
        `Kustomization demo applying ${commit}`,
        async () => {
          const s = await fluxSyncStatus(cluster, 'demo');
          return s.kustomization.ready && s.kustomization.lastAppliedRevision?.includes(commit)
            ? s.kustomization.lastAppliedRevision
            : undefined;
        },
        { timeoutMs: 120_000 },
      );
    };
    expect(await appliedRevision(first)).toBe(`main@sha1:${first}`);
    expect(imageOf(await getDeployment('flux-apps', 'demo'))).toBe('example/demo:1');

    await writeFile(join(overlay, 'deployment.yaml'), deploymentYaml('demo', 'example/demo:2', 1));
    await git(clone, 'commit', '-q', '-am', 'demo 2');
    await git(clone, 'push', '-q', 'origin', 'main');
    const second = await git(clone, 'rev-parse', 'HEAD');
    expect(await appliedRevision(second)).toContain(second);
    expect(imageOf(await getDeployment('flux-apps', 'demo'))).toBe('example/demo:2');
    await waitUntil('demo 2 Available', async () =>
      isAvailable(await getDeployment('flux-apps', 'demo'), 1) ? true : undefined,
    );

    await git(clone, 'revert', '--no-edit', 'HEAD');
    await git(clone, 'push', '-q', 'origin', 'main');
    const revert = await git(clone, 'rev-parse', 'HEAD');
    expect(await appliedRevision(revert)).toContain(revert);
    expect(imageOf(await getDeployment('flux-apps', 'demo'))).toBe('example/demo:1');
  }, 400_000);

  it('keeps the Deployment across an API server restart, and the controllers keep working', async () => {
    const before = await getDeployment(NS, 'direct');
    expect(before).toBeDefined();
    await cluster.restartApiServer();
    const after = await getDeployment(NS, 'direct');
    expect(after?.metadata?.uid).toBe(before?.metadata?.uid);
    expect(isAvailable(after, 2)).toBe(true);
    await cluster.kubectlOk(['scale', 'deployment/direct', '-n', NS, '--replicas=3']);
    await waitUntil(
      'Deployment direct Available with 3 replicas after the restart',
      async () => (isAvailable(await getDeployment(NS, 'direct'), 3) ? true : undefined),
      { timeoutMs: 120_000 },
    );
  }, 300_000);
});
