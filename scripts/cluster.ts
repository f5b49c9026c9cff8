/**
 * npm run cluster — a local Kubernetes cluster to deliver releases to: etcd, the control plane and a kwok fake Node
 * (scripts/cluster-harness.ts), Flux's source-controller and kustomize-controller, and the GitOps repository that
 * `npm start`'s worker commits to (MREL_GITOPS_REPO, default .data/gitops.git) served read-only over HTTP on
 * 127.0.0.1 for Flux. Flux syncs `apps/<model>/overlays/<environment>` of each `--sync <model>/<environment>` (default:
 * the demo model credit-risk in dev, staging and production) with a Kustomization named `<model>-<environment>` in
 * flux-system, the name the delivery policy expects by default.
 *
 * Everything lives in .data/cluster/ (0700): kubeconfig, process logs, etcd's data, and `env` with the lines to
 * export. Each run starts a fresh cluster (the GitOps repository is what persists); Ctrl-C stops every process.
 *
 *   npm run cluster                                    # then, in another shell: source .data/cluster/env && npm start
 *   npm run cluster -- --sync credit-risk/production   # only that model and environment
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { loadSettings } from '../workers/settings';
import { PROJECT_ROOT } from './temporal-cli';
import { addCatalogNodes, addFluxSync, startCluster, startFlux, type Cluster, type Flux } from './cluster-harness';
import { startGitHttp, type GitHttpServer } from './git-http';
import { clusterToolsCurrent } from './setup-cluster-tools.mjs';

const exec = promisify(execFile);
const DEFAULT_SYNCS = ['credit-risk/dev', 'credit-risk/staging', 'credit-risk/production'];
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseSyncs(argv: string[]): { model: string; environment: string }[] {
  const given: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--sync') given.push(argv[++i] ?? '');
    else if (arg.startsWith('--sync=')) given.push(arg.slice('--sync='.length));
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run cluster [-- --sync <model>/<environment> ...]');
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}: the only option is --sync <model>/<environment> (repeatable)`);
  }
  return (given.length > 0 ? given : DEFAULT_SYNCS).map((s) => {
    const [model = '', environment = '', ...rest] = s.split('/');
    if (!NAME.test(model) || !NAME.test(environment) || rest.length > 0) {
      throw new Error(`--sync ${s}: expected <model>/<environment>, both lowercase names such as credit-risk/staging`);
    }
    return { model, environment };
  });
}

/** A previous `npm run cluster` that is still running owns .data/cluster: refuse rather than pull it from under it. */
function runningInstance(stateFile: string): number | undefined {
  try {
    const { pid } = JSON.parse(readFileSync(stateFile, 'utf8')) as { pid?: number };
    if (typeof pid !== 'number' || pid === process.pid) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const syncs = parseSyncs(process.argv.slice(2));
  if (!clusterToolsCurrent()) {
    throw new Error(
      'Kubernetes, etcd, kwok or Flux are missing from .tools/cluster/: run `node scripts/setup-cluster-tools.mjs` ' +
        '(about fifteen minutes the first time on this machine, then cached per user)',
    );
  }
  const settings = loadSettings();
  const stateDir = join(settings.dataDir, 'cluster');
  const stateFile = join(stateDir, 'state.json');
  const other = runningInstance(stateFile);
  if (other !== undefined) {
    throw new Error(
      `npm run cluster is already running (pid ${other}, state in ${stateDir}); stop it with Ctrl-C first`,
    );
  }
  process.umask(0o077);
  await rm(stateDir, { recursive: true, force: true });
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);

  let cluster: Cluster | undefined;
  let flux: Flux | undefined;
  let gitHttp: GitHttpServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await gitHttp?.stop();
      await flux?.stop();
      await cluster?.stop();
      await rm(stateFile, { force: true });
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.log('\nstopping the cluster …');
      void stop().then(() => process.exit(0));
    });
  }

  try {
    const started = Date.now();
    cluster = await startCluster({ dir: stateDir, log: (line) => console.log(`  ${line}`) });
    flux = await startFlux(cluster, { dir: join(stateDir, 'flux') });
    // The cost gate pins each release to an instance type of the price catalog: give every type a node.
    const pricing = settings.pricingFile ?? join(PROJECT_ROOT, 'config', 'pricing.yaml');
    const nodes = await addCatalogNodes(cluster, pricing);
    console.log(`  ${nodes.length} fake nodes, one per instance type of ${pricing}`);

    let gitopsUrl: string;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(settings.gitopsRepo)) {
      gitopsUrl = settings.gitopsRepo;
    } else {
      const repo = resolve(settings.gitopsRepo);
      if (!existsSync(repo)) {
        await mkdir(dirname(repo), { recursive: true, mode: 0o700 });
        await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', repo]);
      }
      // Only this repository is served, and read-only: the worker pushes to it as a path.
      gitHttp = await startGitHttp({ root: dirname(repo), repos: [basename(repo)] });
      gitopsUrl = gitHttp.url(basename(repo));
    }
    for (const { model, environment } of syncs) {
      await cluster.ensureNamespace(environment);
      await addFluxSync(cluster, {
        name: `${model}-${environment}`,
        url: gitopsUrl,
        branch: settings.gitopsBranch,
        path: `./apps/${model}/overlays/${environment}`,
        // Until the first release of the model commits its overlay, the path does not exist: retry calmly.
        retryInterval: '10s',
      });
    }

    const envLines = [
      `export KUBECONFIG=${cluster.kubeconfigPath}`,
      `export MREL_KUBECONFIG=${cluster.kubeconfigPath}`,
      `export MREL_GITOPS_REPO=${settings.gitopsRepo}`,
      `# GitOps remote as Flux reads it: ${gitopsUrl}`,
    ];
    await writeFile(join(stateDir, 'env'), `${envLines.join('\n')}\n`, { mode: 0o600 });
    await writeFile(
      stateFile,
      `${JSON.stringify({ pid: process.pid, server: cluster.server, kubeconfig: cluster.kubeconfigPath, gitopsUrl, processes: { ...cluster.pids(), ...flux.pids() } }, null, 2)}\n`,
      { mode: 0o600 },
    );
    console.log(`\ncluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cluster.server}`);
    console.log(`kubeconfig: ${cluster.kubeconfigPath}`);
    console.log(`GitOps repository (Flux reads ${gitopsUrl}):`);
    for (const { model, environment } of syncs) {
      console.log(`  Kustomization flux-system/${model}-${environment} ← apps/${model}/overlays/${environment}`);
    }
    console.log(`\nIn another shell (or: source ${join(stateDir, 'env')}):`);
    for (const line of envLines.slice(0, 3)) console.log(`  ${line}`);
    console.log('then npm start, and kubectl get deployments -A to see the rollout. Logs: ' + stateDir);
    console.log('Ctrl-C stops the cluster.');
  } catch (err) {
    await stop();
    throw err;
  }
}

main().catch((err: Error) => {
  console.error(`npm run cluster: ${err.message}`);
  process.exit(1);
});
