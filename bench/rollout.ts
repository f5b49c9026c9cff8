/**
 * How soon the monitor's rollout watch (`followRollout`, gitops kind `none`: straight to the workload) calls a
 * Deployment's rolling update complete, against `kubectl rollout status` on the same rollout in the same run (target:
 * ours within 1.1x of kubectl's time), and how many API requests the watch makes per rollout against a poll loop's
 * (GET the Deployment every second until complete, as a naive implementation would).
 *
 *   npx tsx bench/rollout.ts [--runs 10] [--replicas 3] [--min-ready-seconds 1]
 *
 * A real, local control plane (scripts/cluster-harness.ts: etcd, kube-apiserver, controller-manager, scheduler and
 * kwok, which makes pods Ready without containers) in a temporary folder that is removed afterwards. Each run patches
 * the Deployment's pod template (a new env value: a real rolling update, one surge pod at a time; each new pod counts
as available `--min-ready-seconds` after kwok marks it Ready, as a model server's would after loading) and, as soon as the
 * API server has accepted the change, starts all three contenders in the same tick; which of ours and kubectl starts
 * first alternates run by run. Each time runs from the accepted change to that contender's verdict: our watch's
 * `healthy` result (the kubeconfig loaded and the client built inside the timed span, as the activity does), the
 * poll loop's first complete GET, kubectl's "successfully rolled out" line (its process started inside the span, as
 * an operator's would be). kubectl runs with `-v=6` so that its requests can be counted from its log; one warm-up
 * rollout first fills its discovery cache, as an operator's kubectl has. Ratios are medians of the per-run ratios.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeClient, RESOURCES, loadKubeConfig } from '../activities/monitor/kube';
import { followRollout } from '../activities/monitor/rollout';
import { deploymentRolloutState } from '../activities/monitor/rollout-status';
import type { RolloutResult } from '../contract/delivery';
import { type Cluster, startCluster } from '../scripts/cluster-harness';

const NAMESPACE = 'bench';
const NAME = 'rollout-bench';
const TARGET = 1.1;
const POLL_EVERY_MS = 1_000;
/** Per contender and run: a rollout here takes about a second; anything near this is broken. */
const ROLLOUT_TIMEOUT_S = 60;

interface Timed {
  ms: number;
  requests: number;
}

interface Run {
  ours: Timed;
  kubectl: Timed;
  poll: Timed;
  kubectlFirst: boolean;
}

interface Options {
  runs: number;
  replicas: number;
  minReadySeconds: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '10' },
      replicas: { type: 'string', default: '3' },
      'min-ready-seconds': { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npx tsx bench/rollout.ts [--runs 10] [--replicas 3] [--min-ready-seconds 1]');
    process.exit(0);
  }
  const runs = Number(values.runs);
  const replicas = Number(values.replicas);
  const minReadySeconds = Number(values['min-ready-seconds']);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 50)
    throw new Error('--replicas must be an integer from 1 to 50');
  if (!Number.isInteger(minReadySeconds) || minReadySeconds < 0 || minReadySeconds > 10)
    throw new Error('--min-ready-seconds must be an integer from 0 to 10');
  return { runs, replicas, minReadySeconds };
}

function deployment({ replicas, minReadySeconds }: Options) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: NAME, namespace: NAMESPACE },
    spec: {
      replicas,
      minReadySeconds,
      revisionHistoryLimit: 2,
      progressDeadlineSeconds: 600,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      selector: { matchLabels: { app: NAME } },
      template: {
        metadata: { labels: { app: NAME } },
        spec: {
          containers: [
            {
              name: 'server',
              image: 'registry.local/model-server@sha256:' + '1'.repeat(64),
              env: [{ name: 'MODEL_REVISION', value: '0' }],
            },
          ],
        },
      },
    },
  };
}

/** A new pod template (a new env value): the controller starts a rolling update. Resolves once it is accepted. */
async function change(cluster: Cluster, revision: number): Promise<void> {
  const res = await cluster.api(
    'PATCH',
    `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/${NAME}`,
    {
      spec: {
        template: {
          spec: { containers: [{ name: 'server', env: [{ name: 'MODEL_REVISION', value: String(revision) }] }] },
        },
      },
    },
    'application/strategic-merge-patch+json',
  );
  if (res.status >= 300) throw new Error(`patching Deployment ${NAMESPACE}/${NAME}: HTTP ${res.status}`);
}

/** The monitor's watch as the activity runs it: the kubeconfig loaded and the client built after the change. */
async function ours(kubeconfigPath: string, t0: number): Promise<Timed> {
  const loaded = loadKubeConfig({ MREL_KUBECONFIG: kubeconfigPath });
  if (!loaded) throw new Error('the cluster kubeconfig did not load');
  const result: RolloutResult = await followRollout(
    {
      releaseId: 'bench/rollout',
      commit: '0'.repeat(40),
      workload: { kind: 'Deployment', namespace: NAMESPACE, name: NAME },
      gitops: { kind: 'none' },
      requestReconcile: false,
      timeoutMs: ROLLOUT_TIMEOUT_S * 1000,
      purpose: 'release',
    },
    { kube: new KubeClient(loaded.config) },
  );
  const ms = performance.now() - t0;
  if (result.outcome !== 'healthy') throw new Error(`our watch ended ${result.outcome}: ${result.reason}`);
  return { ms, requests: result.apiRequests ?? NaN };
}

/** The naive way: GET the Deployment every second until its status says the rollout is complete. */
async function pollLoop(kubeconfigPath: string, t0: number): Promise<Timed> {
  const loaded = loadKubeConfig({ MREL_KUBECONFIG: kubeconfigPath });
  if (!loaded) throw new Error('the cluster kubeconfig did not load');
  const kube = new KubeClient(loaded.config);
  const ref = { type: RESOURCES.deployment, namespace: NAMESPACE, name: NAME };
  for (let i = 0; i < ROLLOUT_TIMEOUT_S * (1000 / POLL_EVERY_MS); i++) {
    const asked = performance.now();
    const state = deploymentRolloutState(await kube.get(ref));
    if (state.state === 'complete') return { ms: performance.now() - t0, requests: kube.requests };
    if (state.state === 'stalled') throw new Error(`the poll loop saw the rollout stall: ${state.message}`);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, POLL_EVERY_MS - (performance.now() - asked))));
  }
  throw new Error(`the poll loop did not see the rollout complete within ${ROLLOUT_TIMEOUT_S} s`);
}

/**
 * `kubectl rollout status` against the cluster: the time of its "successfully rolled out" line, and the requests its
 * `-v=6` log shows (one line per response; a watch's line comes when its response headers arrive).
 */
function kubectlRolloutStatus(kubeconfigPath: string, cacheDir: string, t0: number): Promise<Timed> {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  const child = spawn(
    'kubectl',
    [
      `--kubeconfig=${kubeconfigPath}`,
      `--cache-dir=${cacheDir}`,
      '-v=6',
      'rollout',
      'status',
      `deployment/${NAME}`,
      `--namespace=${NAMESPACE}`,
      `--timeout=${ROLLOUT_TIMEOUT_S}s`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let log = '';
    let doneAt: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (doneAt === undefined && out.includes('successfully rolled out')) doneAt = performance.now();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    child.once('error', (err) => reject(new Error(`kubectl could not be started (is it on PATH?): ${err.message}`)));
    child.once('close', (code) => {
      if (code !== 0 || doneAt === undefined) {
        const last = log.trim().split('\n').slice(-3).join('\n');
        reject(new Error(`kubectl rollout status exited ${code} without a complete rollout:\n${last}`));
        return;
      }
      const requests = log.split('\n').filter((line) => /\b(GET|POST|PUT|PATCH|DELETE) https?:\/\//.test(line));
      resolve({ ms: doneAt - t0, requests: requests.length });
    });
  });
}

async function rollout(cluster: Cluster, cacheDir: string, revision: number, kubectlFirst: boolean): Promise<Run> {
  await change(cluster, revision);
  const t0 = performance.now();
  let k: Promise<Timed>;
  let o: Promise<Timed>;
  if (kubectlFirst) {
    k = kubectlRolloutStatus(cluster.kubeconfigPath, cacheDir, t0);
    o = ours(cluster.kubeconfigPath, t0);
  } else {
    o = ours(cluster.kubeconfigPath, t0);
    k = kubectlRolloutStatus(cluster.kubeconfigPath, cacheDir, t0);
  }
  const p = pollLoop(cluster.kubeconfigPath, t0);
  const [oursTimed, kubectlTimed, pollTimed] = await Promise.all([o, k, p]);
  return { ours: oursTimed, kubectl: kubectlTimed, poll: pollTimed, kubectlFirst };
}

/** Until the old ReplicaSet's pods are gone, so that the next run starts from a settled Deployment. */
async function settle(cluster: Cluster, replicas: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await cluster.api('GET', `/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=app%3D${NAME}`);
    const items = (res.body as { items?: unknown[] }).items ?? [];
    if (items.length === replicas) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the Deployment did not settle at ${replicas} pods within 10 s`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

const ms = (value: number) => `${value.toFixed(0)} ms`;

async function main(): Promise<number> {
  const options = parseOptions();
  const { runs, replicas } = options;
  const dir = await mkdtemp(join(tmpdir(), 'mrel-bench-rollout-'));
  let cluster: Cluster | undefined;
  try {
    const started = performance.now();
    cluster = await startCluster({ dir: join(dir, 'cluster') });
    await cluster.ensureNamespace(NAMESPACE);
    await cluster.apply(deployment(options));
    const cacheDir = join(dir, 'kube-cache');
    console.log(
      `rollout bench: Deployment ${NAMESPACE}/${NAME}, ${replicas} replicas (maxSurge 1, maxUnavailable 0, ` +
        `minReadySeconds ${options.minReadySeconds}), ` +
        `${runs} runs; cluster up in ${ms(performance.now() - started)}`,
    );
    // The Deployment's first rollout, and kubectl's discovery cache filled, before anything is measured.
    const warm = await rollout(cluster, cacheDir, 1, true);
    await settle(cluster, replicas);
    console.log(
      `warm-up (not counted): ours ${ms(warm.ours.ms)}, kubectl ${ms(warm.kubectl.ms)} ` +
        `(${warm.kubectl.requests} requests, discovery included), poll loop ${ms(warm.poll.ms)}`,
    );

    const results: Run[] = [];
    for (let run = 0; run < runs; run++) {
      const r = await rollout(cluster, cacheDir, run + 2, run % 2 === 1);
      await settle(cluster, replicas);
      results.push(r);
      console.log(
        `run ${run + 1} (${r.kubectlFirst ? 'kubectl' : 'ours'} started first): ` +
          `ours ${ms(r.ours.ms)} (${r.ours.requests} requests), ` +
          `kubectl rollout status ${ms(r.kubectl.ms)} (${r.kubectl.requests} requests), ` +
          `poll loop ${ms(r.poll.ms)} (${r.poll.requests} GETs); ours / kubectl ${(r.ours.ms / r.kubectl.ms).toFixed(2)}`,
      );
    }

    const of = (pick: (r: Run) => number) => median(results.map(pick));
    const ratio = of((r) => r.ours.ms / r.kubectl.ms);
    console.log(`runs: ${runs} (medians; each time from the accepted change to the contender's "complete" verdict)`);
    console.log(`  ours (followRollout, watch):       ${ms(of((r) => r.ours.ms))}`);
    console.log(`  kubectl rollout status:            ${ms(of((r) => r.kubectl.ms))}  reference`);
    console.log(`  poll loop (GET every ${POLL_EVERY_MS / 1000} s):         ${ms(of((r) => r.poll.ms))}`);
    console.log(
      `ratio ours / kubectl rollout status: ${ratio.toFixed(2)} (target <= ${TARGET}) ` +
        `${ratio <= TARGET ? 'OK' : 'ABOVE TARGET'}; ours - kubectl: ${ms(of((r) => r.ours.ms - r.kubectl.ms))}`,
    );
    console.log(
      `requests per rollout (median): ours ${of((r) => r.ours.requests)}, ` +
        `poll loop ${of((r) => r.poll.requests)}, kubectl rollout status ${of((r) => r.kubectl.requests)}`,
    );
    return ratio <= TARGET ? 0 : 1;
  } catch (err) {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await cluster?.stop().catch((err: unknown) => console.error('stopping the cluster:', err));
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
