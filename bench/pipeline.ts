/**
 * Throughput and latency of the whole release path (start → acquire → approval → GitOps commit), against the
 * GitOps floor measured in the same run: the same files committed and pushed with plain git, one after another.
 *
 *   npx tsx bench/pipeline.ts [--releases 100] [--timeout 1800]
 *
 * Everything is real and local: its own Temporal dev server (in memory), one release worker built by the production
 * factory, a bare GitOps repository and an artifact store in a temporary folder that is removed afterwards. Every
 * release goes to `staging` (policy default: one approval by an ml-lead or release-manager), approved by alice as
 * soon as it waits for approval. Exits non-zero when a release does not end as released, when the GitOps repository
 * does not hold exactly one Release-Id commit per release, or when a wait exceeds the timeout.
 *
 * The timeout (seconds, from the first start to the last result) is generous because every release reaches GitOps at
 * about the same moment: their pushes to the one branch race, and a 2-CPU machine needed about 14 minutes for 100.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { decide, listReleases, startRelease } from '../client/release-client';
import { startDevServer } from '../scripts/dev-server';
import { createReleaseWorker } from '../workers/release-worker';
import type { Settings } from '../workers/settings';
import type { modelReleaseWorkflow } from '../workflows/model-release';
import type { ReleaseRequest, ReleaseStatus } from '../contract/types';

const exec = promisify(execFile);
const ENVIRONMENT = 'staging';
const APPROVER = 'alice';
const VERSION = '1.0.0';
/** How often the releases awaiting approval are looked up (one visibility query for all of them). */
const APPROVAL_POLL_MS = 100;
const PROGRESS_EVERY_MS = 30_000;
const GIT_IDENTITY = [
  '-c',
  'user.name=bench',
  '-c',
  'user.email=bench@modelrelease.local',
  '-c',
  'commit.gpgsign=false',
];

interface Options {
  releases: number;
  timeoutMs: number;
}

interface Model {
  name: string;
  dir: string;
  request: ReleaseRequest;
}

interface Outcome {
  releaseId: string;
  latencyMs: number;
  /** From the start call until alice's approval was accepted (the update returned). */
  toApprovalMs?: number;
  status?: ReleaseStatus;
  error?: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      releases: { type: 'string', default: '100' },
      timeout: { type: 'string', default: '1800' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npx tsx bench/pipeline.ts [--releases 100] [--timeout 1800 (seconds, for the whole pipeline)]');
    process.exit(0);
  }
  const releases = Number(values.releases);
  const timeout = Number(values.timeout);
  if (!Number.isInteger(releases) || releases < 1) throw new Error(`--releases must be a positive integer`);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new Error(`--timeout must be a positive number of seconds`);
  return { releases, timeoutMs: timeout * 1000 };
}

async function main(): Promise<number> {
  const options = parseOptions();
  // Lost push races are logged by the worker as failed activity attempts (WARN); the bench counts them instead.
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
  });
  const dir = await mkdtemp(join(tmpdir(), 'mrel-bench-pipeline-'));
  // The bench's models lie in its temp directory: the worker and the door allow that root, as an operator would.
  process.env.MREL_SOURCE_ROOTS = [process.env.MREL_SOURCE_ROOTS, dir].filter(Boolean).join(':');
  const cleanup: (() => Promise<void>)[] = [];
  try {
    const server = await startDevServer({ logFile: join(dir, 'temporal.log') });
    cleanup.push(() => server.stop());

    const gitopsRepo = join(dir, 'gitops.git');
    await git('init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo);
    const settings: Settings = {
      address: server.address,
      namespace: 'default',
      taskQueue: `bench-pipeline-${Math.random().toString(36).slice(2, 8)}`,
      dataDir: dir,
      storeRoot: join(dir, 'store'),
      gitopsRepo,
      gitopsBranch: 'main',
      gitopsWorkRoot: join(dir, 'gitops-work'),
    };
    const connection = await Connection.connect({ address: server.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection, namespace: settings.namespace });
    const native = await NativeConnection.connect({ address: server.address });
    cleanup.push(() => native.close());
    const worker = await createReleaseWorker(settings, { connection: native });
    const running = worker.run();
    // Registered last so it runs first: the worker must drain before its connection and the server go.
    cleanup.push(() => stopWorker(worker, running));

    const models = await writeModels(join(dir, 'models'), options.releases);
    const fileCount = (await listFiles(models[0]?.dir ?? dir)).length;
    console.log(
      `pipeline bench: ${options.releases} releases to ${ENVIRONMENT} (policy default, ${fileCount} files each), ` +
        `1 release worker, Temporal dev server ${server.address}, git ${(await git('--version')).trim().replace('git version ', '')}`,
    );

    const deadline = Date.now() + options.timeoutMs;
    const began = performance.now();
    const outcomes = await runReleases(client, settings.taskQueue, models, deadline);
    const wallMs = performance.now() - began;

    const failed = outcomes.filter((o) => o.error !== undefined || o.status?.stage !== 'released');
    const latencies = sorted(outcomes.map((o) => o.latencyMs));
    const toApproval = sorted(outcomes.flatMap((o) => (o.toApprovalMs === undefined ? [] : [o.toApprovalMs])));
    const afterApproval = sorted(
      outcomes.flatMap((o) => (o.toApprovalMs === undefined ? [] : [o.latencyMs - o.toApprovalMs])),
    );
    const releaseIds = new Set(outcomes.map((o) => o.releaseId));
    const commits = await releaseCommits(gitopsRepo, releaseIds);
    const attempts = await activityAttempts(client, [...releaseIds]);

    const reference = await referenceCommits(join(dir, 'reference'), models);
    const commitsOk =
      commits.matching === options.releases &&
      commits.total === options.releases &&
      commits.distinct === options.releases;
    const ok = failed.length === 0 && commitsOk;

    console.log(
      `pipeline:  ${options.releases - failed.length}/${options.releases} released in ${seconds(wallMs)} → ` +
        `${(options.releases / (wallMs / 1000)).toFixed(2)} releases/s`,
    );
    console.log(
      `latency (start call → workflow result): p50 ${seconds(percentile(latencies, 50))}, ` +
        `p95 ${seconds(percentile(latencies, 95))}, max ${seconds(latencies.at(-1) ?? 0)}`,
    );
    console.log(
      `  of which start → approval accepted: p50 ${seconds(percentile(toApproval, 50))}, ` +
        `p95 ${seconds(percentile(toApproval, 95))}; approval → result (gitops): ` +
        `p50 ${seconds(percentile(afterApproval, 50))}, p95 ${seconds(percentile(afterApproval, 95))}`,
    );
    console.log(
      `activity attempts: ${[...attempts].map(([type, a]) => `${type} ${a.attempts} for ${a.activities} (max ${a.max})`).join(', ')}`,
    );
    console.log(
      `GitOps repo: ${commits.matching} commits with a Release-Id trailer of these releases ` +
        `(${commits.total} Release-Id commits in all, ${commits.distinct} distinct ids; expected ${options.releases}) ` +
        (commitsOk ? 'ok' : 'MISMATCH'),
    );
    console.log(
      `reference: ${options.releases} sequential git commit+push of the same files in ${seconds(reference)} ` +
        `(${(reference / options.releases).toFixed(1)} ms each) → ${(options.releases / (reference / 1000)).toFixed(2)} commits/s`,
    );
    console.log(`ratio: pipeline / reference = ${(wallMs / reference).toFixed(2)}× the time of plain git`);
    for (const f of failed.slice(0, 10)) {
      console.error(
        `  ${f.releaseId}: ${f.error ?? `ended as ${f.status?.stage} (${f.status?.reason ?? 'no reason'})`}`,
      );
    }
    if (!ok)
      console.error('FAILED: not every release ended released, as exactly one Release-Id commit in the GitOps repo');
    return ok ? 0 : 1;
  } catch (err) {
    console.error(`bench failed: ${message(err)}`);
    if (err instanceof Error && err.cause) console.error('  cause:', err.cause);
    await printLogTail(join(dir, 'temporal.log'));
    return 1;
  } finally {
    for (const step of cleanup.reverse()) {
      await step().catch((err: unknown) => console.error('cleanup:', err));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Starts every release at once, approves each one when it reaches approval, and waits for every result. Latency is
 * per release, from just before its start call to its result. On timeout the releases still running are terminated
 * and every call in flight is awaited, so that nothing talks to the server once it is being stopped.
 */
async function runReleases(client: Client, taskQueue: string, models: Model[], deadline: number): Promise<Outcome[]> {
  const startedAt = new Map<string, number>();
  const approvedAt = new Map<string, number>();
  const startCalls = Promise.allSettled(
    models.map(async (m) => {
      const t0 = performance.now();
      const started = await startRelease(client, m.request, { taskQueue });
      if (!started.started) throw new Error(`${started.releaseId} was already running: the server is not fresh`);
      startedAt.set(started.releaseId, t0);
      return started.releaseId;
    }),
  );
  const startResults = await bounded(startCalls, deadline, () => `starting ${models.length} releases`);
  const startFailure = startResults.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const starts = startResults.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (startFailure) {
    await terminate(client, starts, 'bench aborted: a start failed');
    throw new Error(`${starts.length}/${models.length} releases started`, { cause: startFailure.reason });
  }

  const settled = new Set<string>();
  const results = starts.map(async (releaseId): Promise<Outcome> => {
    const handle = client.workflow.getHandle<typeof modelReleaseWorkflow>(releaseId);
    const t0 = startedAt.get(releaseId) ?? 0;
    const timing = (): Pick<Outcome, 'releaseId' | 'latencyMs' | 'toApprovalMs'> => {
      const approved = approvedAt.get(releaseId);
      return { releaseId, latencyMs: performance.now() - t0, toApprovalMs: approved && approved - t0 };
    };
    try {
      const status = await handle.result();
      return { ...timing(), status };
    } catch (err) {
      const error = err instanceof WorkflowFailedError ? `failed: ${err.cause?.message ?? err.message}` : String(err);
      return { ...timing(), error };
    } finally {
      settled.add(releaseId);
    }
  });

  const approver = new Approver(client, new Set(starts), settled, approvedAt);
  const approvals = approver.run(deadline);
  const progress = setInterval(() => {
    console.error(`  … ${settled.size}/${starts.length} ended, ${approvedAt.size} approved`);
  }, PROGRESS_EVERY_MS);
  try {
    return await bounded(
      Promise.all(results),
      deadline,
      () =>
        `waiting for results (${settled.size}/${starts.length} ended; still running: ${unsettled(starts, settled)})`,
    );
  } catch (err) {
    await terminate(
      client,
      starts.filter((id) => !settled.has(id)),
      'bench timed out',
    );
    await bounded(Promise.allSettled(results), Date.now() + 30_000, () => 'results after termination');
    throw err;
  } finally {
    clearInterval(progress);
    approver.stop();
    await bounded(approvals, Date.now() + 30_000, () => 'the approvals in flight');
  }
}

async function terminate(client: Client, ids: string[], reason: string): Promise<void> {
  await Promise.allSettled(ids.map((id) => client.workflow.getHandle(id).terminate(reason)));
}

/**
 * Approves releases as soon as their ReleaseStage search attribute (the status stage, published by the workflow in
 * the same task that opens approval) says `approval`: one visibility query per poll for all of them, instead of one
 * status query per release that would load the worker under test.
 */
class Approver {
  private stopped = false;
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly client: Client,
    private readonly pending: Set<string>,
    private readonly settled: Set<string>,
    private readonly approvedAt: Map<string, number>,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /** Polls until every release is approved or ended, stop() or the deadline; then awaits the decisions in flight. */
  async run(deadline: number): Promise<void> {
    try {
      while (!this.stopped && this.pending.size > 0 && Date.now() < deadline) {
        for (const id of this.settled) this.pending.delete(id);
        const waiting = await listReleases(this.client, {
          stage: 'approval',
          environment: ENVIRONMENT,
          limit: this.pending.size * 2 + 10,
        }).catch((err: unknown) => {
          console.error(`listing releases awaiting approval: ${message(err)}`);
          return [];
        });
        for (const { releaseId } of waiting) {
          if (this.pending.has(releaseId) && !this.inFlight.has(releaseId)) {
            this.inFlight.set(releaseId, this.approve(releaseId));
          }
        }
        await sleep(APPROVAL_POLL_MS);
      }
    } finally {
      await Promise.all(this.inFlight.values());
    }
  }

  private async approve(releaseId: string): Promise<void> {
    try {
      const outcome = await decide(this.client, releaseId, { approver: APPROVER, decision: 'approve' });
      if (!outcome.accepted) throw new Error(`approval by ${APPROVER} refused: ${outcome.reason}`);
      this.approvedAt.set(releaseId, performance.now());
      this.pending.delete(releaseId);
    } catch (err) {
      // Tried again on the next poll; a release that ended meanwhile leaves `pending` there.
      console.error(`approve ${releaseId}: ${message(err)}`);
    } finally {
      this.inFlight.delete(releaseId);
    }
  }
}

/** Commits on main of the GitOps repository that carry a Release-Id trailer: all, distinct ids, and of `ids`. */
async function releaseCommits(repo: string, ids: Set<string>) {
  const log = await git('--git-dir', repo, 'log', '--format=%(trailers:key=Release-Id,valueonly)%x00', 'main');
  const found = log
    .split('\0')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  return {
    total: found.length,
    distinct: new Set(found).size,
    matching: found.filter((id) => ids.has(id)).length,
  };
}

/** Per activity type: activities run, attempts they took (a retry shows as attempt > 1 on the started event). */
async function activityAttempts(client: Client, ids: string[]) {
  const byType = new Map<string, { activities: number; attempts: number; max: number }>();
  for (const id of ids) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    const types = new Map<string, string>();
    for (const event of history.events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (scheduled) types.set(String(event.eventId), scheduled.activityType?.name ?? '?');
      const started = event.activityTaskStartedEventAttributes;
      if (started) {
        const type = types.get(String(started.scheduledEventId)) ?? '?';
        const entry = byType.get(type) ?? { activities: 0, attempts: 0, max: 0 };
        entry.activities += 1;
        entry.attempts += started.attempt ?? 1;
        entry.max = Math.max(entry.max, started.attempt ?? 1);
        byType.set(type, entry);
      }
    }
  }
  return byType;
}

/**
 * The floor of the GitOps work: the same model files committed (one commit per release, with its Release-Id
 * trailer) and pushed to another bare repository, one after another, from a single long-lived clone.
 */
async function referenceCommits(root: string, models: Model[]): Promise<number> {
  const bare = join(root, 'reference.git');
  const work = join(root, 'work');
  await git('init', '--quiet', '--bare', '--initial-branch=main', bare);
  await git('init', '--quiet', '--initial-branch=main', work);
  await git('-C', work, 'remote', 'add', 'origin', bare);
  const began = performance.now();
  for (const m of models) {
    const target = join(work, 'releases', m.name, VERSION, ENVIRONMENT);
    await cp(m.dir, target, { recursive: true });
    await git('-C', work, 'add', '--', '.');
    const id = `release/${m.name}/${VERSION}/${ENVIRONMENT}`;
    await git(
      '-C',
      work,
      ...GIT_IDENTITY,
      'commit',
      '-q',
      '--no-verify',
      '-m',
      `release ${m.name}\n\nRelease-Id: ${id}`,
    );
    await git('-C', work, 'push', '-q', '--no-verify', 'origin', 'HEAD:refs/heads/main');
  }
  const elapsed = performance.now() - began;
  const count = Number((await git('--git-dir', bare, 'rev-list', '--count', 'main')).trim());
  if (count !== models.length) throw new Error(`reference repo holds ${count} commits, expected ${models.length}`);
  return elapsed;
}

/** N small model directories with a config, a weights file and a model card, each with distinct content. */
async function writeModels(root: string, n: number): Promise<Model[]> {
  const width = String(n).length;
  const models: Model[] = [];
  for (let i = 0; i < n; i++) {
    const name = `bench-model-${String(i).padStart(width, '0')}`;
    const dir = join(root, name);
    await mkdir(join(dir, 'weights'), { recursive: true });
    await writeFile(join(dir, 'config.json'), JSON.stringify({ name, version: VERSION, layers: [8, 4, 2] }, null, 2));
    const weights = Float32Array.from({ length: 64 }, (_, k) => Math.sin(i * 64 + k));
    await writeFile(join(dir, 'weights', 'dense.bin'), Buffer.from(weights.buffer));
    // A TF.js model names its shard, so the scan gate knows every byte's format.
    await writeFile(
      join(dir, 'model.json'),
      JSON.stringify({
        format: 'layers-model',
        modelTopology: { class_name: 'Sequential', config: { name, layers: [] } },
        weightsManifest: [
          { paths: ['weights/dense.bin'], weights: [{ name: 'dense/kernel', shape: [64], dtype: 'float32' }] },
        ],
      }),
    );
    await writeFile(join(dir, 'README.md'), `---\nlicense: apache-2.0\n---\n# ${name}\n\nA benchmark model.\n`);
    models.push({
      name,
      dir,
      request: {
        model: { name, version: VERSION, source: `file://${dir}` },
        environment: ENVIRONMENT,
        policy: 'default',
        requestedBy: 'bench',
        traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
      },
    });
  }
  return models;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

async function stopWorker(worker: Worker, running: Promise<void>): Promise<void> {
  if (worker.getState() === 'RUNNING') worker.shutdown();
  await bounded(running, Date.now() + 30_000, () => 'worker shutdown');
}

/** Resolves with `promise`, or rejects with a message naming what was awaited when the deadline passes first. */
async function bounded<T>(promise: Promise<T>, deadline: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out: ${what()} (raise --timeout if the machine is slow)`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function unsettled(ids: string[], settled: Set<string>): string {
  const left = ids.filter((id) => !settled.has(id));
  return left.slice(0, 5).join(', ') + (left.length > 5 ? `, … ${left.length - 5} more` : '');
}

async function git(...args: string[]): Promise<string> {
  const { stdout } = await exec('git', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function printLogTail(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const tail = text.trimEnd().split('\n').slice(-20).join('\n');
  if (tail !== '') console.error(`last lines of the Temporal dev server log:\n${tail}`);
}

function sorted(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench failed: ${message(err)} (see --help)`);
    process.exit(1);
  },
);
