/**
 * Process drills: workers run as child processes (so that they can be killed with SIGKILL, as a node crash or an
 * OOM kill would), a Temporal dev server of their own when a drill must stop it or must own the `evaluation` queue,
 * a bare GitOps repository whose faults the drill controls, and probes that read a release from the server alone
 * (describe), so that they keep working while no worker runs.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { inject } from 'vitest';
import { decide, getRelease } from '../../client/release-client';
import { freePort, startDevServer, type DevServer } from '../../scripts/dev-server';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';
import { ReleaseStageKey } from '../../contract/definitions';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { SMALL_MODEL_FILES, waitFor, writeSmallModel } from '../helpers/release-env';
import { TERMINAL_STAGES, type ReleaseRequest, type ReleaseStatus } from '../../contract/types';

const exec = promisify(execFile);

/** A temp directory for one drill, removed by the returned function. */
export async function drillDir(label: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `mrel-drill-${label}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A client of its own (the test process never runs a worker, so it needs no native runtime). */
export async function connect(address: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace: 'default' });
}

// ---------------------------------------------------------------------------------------------- the dev server

export interface DrillServer {
  address: string;
  /** SIGKILL, as a crashed host would: no chance to flush anything. */
  kill(): Promise<void>;
  /** Starts it again on the same SQLite file and port. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A dev server for one drill: on a SQLite file (so that a restart keeps every release) and a fixed port (so that
 * workers and clients find it again), started and stopped by PID.
 */
export async function startDrillServer(dir: string): Promise<DrillServer> {
  const port = await freePort();
  const options = { dbFile: join(dir, 'temporal.db'), port, logFile: join(dir, 'temporal.log') };
  let server: DevServer | undefined = await startDevServer(options);
  return {
    address: server.address,
    async kill() {
      if (!server) return;
      process.kill(server.pid, 'SIGKILL');
      await server.stop(); // waits for the exit of the killed process
      server = undefined;
    },
    async start() {
      if (server) return;
      server = await startDevServer(options);
    },
    async stop() {
      await server?.stop();
      server = undefined;
    },
  };
}

/**
 * A drill on a dev server of its own (for drills that kill it, or that would crowd the shared one): its temp
 * directory, the server, and a drill environment on it; `close` undoes all three.
 */
export async function isolatedDrill(
  label: string,
): Promise<{ server: DrillServer; env: DrillEnv; close: () => Promise<void> }> {
  const { dir, remove } = await drillDir(`${label}-server`);
  const server = await startDrillServer(dir);
  const env = await createDrillEnv(label, { address: server.address });
  return {
    server,
    env,
    async close() {
      await env.close();
      await server.stop();
      await remove();
    },
  };
}

// ------------------------------------------------------------------------------------------- worker processes

export type WorkerKind = 'release' | 'evaluation';

export interface WorkerProcess {
  readonly kind: WorkerKind;
  readonly logFile: string;
  /** PID of the running process (undefined while none runs). */
  readonly pid: number | undefined;
  /** How many times it was started. */
  readonly starts: number;
  /** Starts the process and resolves once it announced that it polls (its first log line). */
  start(): Promise<void>;
  /** SIGKILL, then waits until the process is gone. */
  kill(): Promise<void>;
  /** Whether the process ended on its own (e.g. a fatal error); undefined while it runs or after kill(). */
  unexpectedExit(): number | string | undefined;
  stop(): Promise<void>;
}

const READY_LINE: Record<WorkerKind, string> = {
  release: 'release worker on ',
  evaluation: 'evaluation worker on ',
};

/**
 * A worker as a child process: `node --import tsx workers/<kind>.ts`, the same entry point as production, with
 * its settings in `env`. Output goes to `logFile` (appended across restarts).
 */
export function workerProcess(kind: WorkerKind, env: Record<string, string>, logFile: string): WorkerProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log: WriteStream | undefined;
  let starts = 0;
  let killed = false;
  let exitedOnItsOwn: number | string | undefined;

  const wp: WorkerProcess = {
    kind,
    logFile,
    get pid() {
      return child?.pid;
    },
    get starts() {
      return starts;
    },
    async start() {
      if (child) throw new Error(`the ${kind} worker already runs (pid ${child.pid})`);
      log ??= createWriteStream(logFile, { flags: 'a' });
      starts++;
      killed = false;
      exitedOnItsOwn = undefined;
      const proc = spawn(process.execPath, ['--import', 'tsx', join('workers', `${kind}.ts`)], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = proc;
      let output = '';
      const ready = new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer): void => {
          log?.write(chunk);
          if (output.length < 4096) output += chunk.toString();
          if (output.includes(READY_LINE[kind])) resolve();
        };
        proc.stdout?.on('data', onData);
        proc.stderr?.on('data', onData);
        proc.once('exit', (code, signal) =>
          reject(new Error(`the ${kind} worker exited (${code ?? signal}) before it was ready; see ${logFile}`)),
        );
      });
      exited = new Promise((resolve) =>
        proc.once('exit', (code, signal) => {
          if (!killed) exitedOnItsOwn = code ?? signal ?? 'unknown';
          if (child === proc) child = undefined;
          resolve();
        }),
      );
      const timeout = sleep(60_000).then(() => {
        throw new Error(`the ${kind} worker did not start within 60 s; see ${logFile}`);
      });
      await Promise.race([ready, timeout]);
    },
    async kill() {
      const proc = child;
      if (!proc?.pid) return;
      killed = true;
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    },
    unexpectedExit() {
      return exitedOnItsOwn;
    },
    async stop() {
      const proc = child;
      if (proc?.pid) {
        killed = true;
        process.kill(proc.pid, 'SIGTERM');
        const forced = setTimeout(() => proc.pid && process.kill(proc.pid, 'SIGKILL'), 10_000);
        await exited;
        clearTimeout(forced);
      }
      await new Promise<void>((resolve) => (log ? log.end(resolve) : resolve()));
      log = undefined;
    },
  };
  return wp;
}

// ------------------------------------------------------------------------------------------ a release setting

export interface DrillEnv {
  dir: string;
  address: string;
  client: Client;
  taskQueue: string;
  gitopsRepo: string;
  /** The environment a worker process of this drill runs with. */
  workerEnv: Record<string, string>;
  /** A release worker process on this drill's queue, store and GitOps repository. */
  releaseWorker(name?: string): WorkerProcess;
  /** An evaluation worker process on the fixed `evaluation` queue: give the drill a server of its own. */
  evaluationWorker(name?: string): WorkerProcess;
  /** Writes a small model and returns a request for it (a file:// source unless `source` is given). */
  request(name: string, version?: string, overrides?: Partial<ReleaseRequest>): Promise<ReleaseRequest>;
  /** Commits on main of the GitOps repository that carry `Release-Id: <releaseId>` as a trailer line. */
  commitsFor(releaseId: string): Promise<number>;
  close(): Promise<void>;
}

export async function createDrillEnv(label: string, options: { address?: string } = {}): Promise<DrillEnv> {
  const { dir, remove } = await drillDir(label);
  const address = options.address ?? inject('temporalAddress');
  const client = await connect(address);
  const taskQueue = `drill-${label}-${Math.random().toString(36).slice(2, 8)}`;
  const gitopsRepo = join(dir, 'gitops.git');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo]);
  const workerEnv: Record<string, string> = {
    TEMPORAL_ADDRESS: address,
    TEMPORAL_NAMESPACE: 'default',
    MREL_TASK_QUEUE: taskQueue,
    MREL_DATA_DIR: dir,
    MREL_STORE: join(dir, 'store'),
    MREL_GITOPS_REPO: gitopsRepo,
    MREL_CONFIG_DIR: FIXTURE_CONFIG_DIR,
    MREL_WORKFLOW_BUNDLE: inject('workflowBundlePath'),
    // Native TensorFlow when built, as in production; a drill may override it.
    TFJS_BACKEND: process.env.MREL_TEST_TFJS_BACKEND ?? process.env.TFJS_BACKEND ?? 'auto',
  };
  const workers: WorkerProcess[] = [];
  const track = (w: WorkerProcess): WorkerProcess => {
    workers.push(w);
    return w;
  };
  return {
    dir,
    address,
    client,
    taskQueue,
    gitopsRepo,
    workerEnv,
    releaseWorker: (name = 'release') => track(workerProcess('release', workerEnv, join(dir, `${name}.log`))),
    evaluationWorker: (name = 'evaluation') => track(workerProcess('evaluation', workerEnv, join(dir, `${name}.log`))),
    async request(name, version = '1.0.0', overrides = {}) {
      const modelDir = join(dir, 'models', name, version);
      await writeSmallModel(modelDir, name);
      return {
        model: { name, version, source: `file://${modelDir}` },
        environment: 'production',
        policy: 'default',
        requestedBy: 'drill',
        team: 'risk',
        traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
        ...overrides,
      };
    },
    commitsFor: (releaseId) => commitsFor(gitopsRepo, releaseId),
    async close() {
      await Promise.all(workers.map((w) => w.stop()));
      await client.connection.close();
      await remove();
    },
  };
}

export { SMALL_MODEL_FILES, waitFor, writeSmallModel };

/**
 * A plain HTTP file server on 127.0.0.1 that stalls every response halfway for `stallMs`, so that a transfer is
 * in flight long enough for a drill to kill the worker in the middle of it.
 */
export async function slowFileServer(
  root: string,
  stallMs: number,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/+/, '');
    if (path.split(sep).includes('..')) {
      res.writeHead(400).end();
      return;
    }
    readFile(join(root, path)).then(
      async (body) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        const half = Math.floor(body.length / 2);
        res.write(body.subarray(0, half));
        await sleep(stallMs);
        res.end(body.subarray(half));
      },
      () => res.writeHead(404).end(),
    );
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------- probes

export async function commitsFor(gitopsRepo: string, releaseId: string): Promise<number> {
  let log: string;
  try {
    ({ stdout: log } = await exec('git', ['--git-dir', gitopsRepo, 'log', '--format=%B%x00', 'main'], {
      maxBuffer: 64 << 20,
    }));
  } catch {
    return 0; // no main yet: nothing was ever committed
  }
  const trailer = `Release-Id: ${releaseId}`;
  return log.split('\0').filter((m) => m.split('\n').some((line) => line.trimEnd() === trailer)).length;
}

export interface PendingActivity {
  type: string;
  /** SCHEDULED, STARTED, CANCEL_REQUESTED, … (the server's view). */
  state: string;
  attempt: number;
  lastFailure?: string;
}

export interface ServerView {
  /** RUNNING, COMPLETED, FAILED, … */
  status: string;
  /** The ReleaseStage search attribute (the stage as the workflow last published it). */
  stage?: string;
  pending: PendingActivity[];
}

const PENDING_STATES = ['UNSPECIFIED', 'SCHEDULED', 'STARTED', 'CANCEL_REQUESTED', 'PAUSED', 'PAUSE_REQUESTED'];

/** The release as the server alone knows it: works while no worker runs (a query would wait for one). */
export async function serverView(client: Client, releaseId: string): Promise<ServerView> {
  const d = await client.workflow.getHandle(releaseId).describe();
  return {
    status: d.status.name,
    stage: d.typedSearchAttributes.get(ReleaseStageKey),
    pending: (d.raw.pendingActivities ?? []).map((a) => ({
      type: a.activityType?.name ?? '?',
      state: PENDING_STATES[a.state ?? 0] ?? String(a.state),
      attempt: a.attempt ?? 0,
      lastFailure: a.lastFailure?.message ?? undefined,
    })),
  };
}

/** The final ReleaseStatus once the workflow ended (from its result or failure details). */
export async function finalStatus(client: Client, releaseId: string, timeoutMs: number): Promise<ReleaseStatus> {
  await waitFor(
    `${releaseId} ends`,
    () => serverView(client, releaseId),
    (v) => v.status !== 'RUNNING',
    timeoutMs,
    250,
  );
  return getRelease(client, releaseId);
}

/**
 * Releases that are still running with nothing a person can see to explain why: anything but a release awaiting
 * approval (with what it awaits) or one whose status names the failure it waits on. Returns one line per offender.
 */
export async function silentWaits(client: Client, releaseIds: string[]): Promise<string[]> {
  const offenders: string[] = [];
  for (const id of releaseIds) {
    let view: ServerView;
    try {
      view = await serverView(client, id);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        offenders.push(`${id}: not found`);
        continue;
      }
      throw err;
    }
    if (view.status !== 'RUNNING') continue;
    const status = await getRelease(client, id);
    if ((TERMINAL_STAGES as readonly string[]).includes(status.stage)) continue;
    if (status.stage === 'approval' && status.awaiting) continue;
    if (visibleFailure(status)) continue;
    offenders.push(
      `${id}: running in stage ${status.stage} with no visible reason (pending ${JSON.stringify(view.pending)})`,
    );
  }
  return offenders;
}

/** The failure a waiting release shows in its status (the step, its attempt and why), if any. */
export function visibleFailure(status: ReleaseStatus): string | undefined {
  const r = status.retrying;
  return r ? `${r.step} attempt ${r.attempt}: ${r.lastFailure}` : undefined;
}

/** The approvals the default policy asks for in production: a release manager and one more. */
export const PRODUCTION_APPROVERS = ['amara', 'boris'];

/** Approves through the `decide` update (a worker must run) and fails loudly when a decision did not count. */
export async function approve(client: Client, releaseId: string, approvers = PRODUCTION_APPROVERS): Promise<void> {
  for (const approver of approvers) {
    const outcome = await decide(client, releaseId, { approver, decision: 'approve', comment: 'drill' });
    if (!outcome.accepted) throw new Error(`${approver}'s approval of ${releaseId} did not count: ${outcome.reason}`);
  }
}

/** p-th percentile (0..100) of a list of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
