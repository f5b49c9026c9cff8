/**
 * A release environment for one test: its own task queue, artifact store and bare GitOps repository, on the shared
 * dev server of the run. Workers are real (the same factory as production), started and stopped by the test, and
 * read the tests' own config (test/fixtures/config), like the door does in this project (MREL_CONFIG_DIR).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { IllegalStateError } from '@temporalio/common';
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { FIXTURE_CONFIG_DIR } from './config-dirs';
import { createReleaseWorker } from '../../workers/release-worker';
import type { Settings } from '../../workers/settings';
import type { ReleaseRequest } from '../../contract/types';

const exec = promisify(execFile);
let runtimeInstalled = false;

export interface ReleaseEnv {
  dir: string;
  settings: Settings;
  client: Client;
  /** Starts a worker; returns a stop function that waits for it to shut down. */
  startWorker(): Promise<{ worker: Worker; stop: () => Promise<void> }>;
  /** Writes a small model directory and returns a request for it. */
  model(name: string, version: string, overrides?: Partial<ReleaseRequest>): Promise<ReleaseRequest>;
  git(...args: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * The Temporal Runtime for a test file's workers, logging warnings and worse. A test file that installed its own
 * Runtime first (the metrics test, with telemetry on) keeps it.
 */
export function installQuietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch (err) {
    if (!(err instanceof IllegalStateError)) throw err;
  }
}

export async function createReleaseEnv(label: string): Promise<ReleaseEnv> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    installQuietRuntime();
  }
  const dir = await mkdtemp(join(tmpdir(), `mrel-${label}-`));
  const address = inject('temporalAddress');
  const gitopsRepo = join(dir, 'gitops.git');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo]);
  const settings: Settings = {
    address,
    namespace: 'default',
    taskQueue: `test-${label}-${Math.random().toString(36).slice(2, 8)}`,
    dataDir: dir,
    storeRoot: join(dir, 'store'),
    gitopsRepo,
    gitopsBranch: 'main',
    gitopsWorkRoot: join(dir, 'gitops-work'),
    configDir: FIXTURE_CONFIG_DIR,
  };
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  const native = await NativeConnection.connect({ address });
  const running: (() => Promise<void>)[] = [];

  return {
    dir,
    settings,
    client,
    async startWorker() {
      const worker = await createReleaseWorker(settings, {
        connection: native,
        workflowBundle: { codePath: inject('workflowBundlePath') },
      });
      const done = worker.run();
      const stop = async (): Promise<void> => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await done;
      };
      running.push(stop);
      return { worker, stop };
    },
    async model(name, version, overrides = {}) {
      const modelDir = join(dir, 'models', name, version);
      await writeSmallModel(modelDir, name, version);
      return {
        model: { name, version, source: `file://${modelDir}` },
        environment: 'production',
        policy: 'default',
        requestedBy: 'ci',
        team: 'risk',
        traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
        ...overrides,
      };
    },
    async git(...args) {
      const { stdout } = await exec('git', ['--git-dir', gitopsRepo, ...args]);
      return stdout;
    },
    async close() {
      await Promise.all(running.map((stop) => stop()));
      await native.close();
      await connection.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `ok` holds, with errors (no worker, a server restarting) counted as "not yet". */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what}: not reached within ${timeoutMs} ms; last seen ${JSON.stringify(last)}`, {
    cause: lastError,
  });
}

/** Polls until the predicate holds (for states a test waits on, such as "awaiting approval"). */
export function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  return waitFor('condition', probe, ok, timeoutMs, 200);
}

/**
 * A TensorFlow.js layers model (model.json + one shard), a config and an Apache-2.0 model card: every gate can read
 * it, and it passes them all.
 */
export async function writeSmallModel(modelDir: string, name: string, version = '1.0.0'): Promise<void> {
  await mkdir(join(modelDir, 'weights'), { recursive: true });
  await writeFile(join(modelDir, 'config.json'), JSON.stringify({ name, version, layers: [4, 2] }));
  // A TensorFlow.js layers model whose shard is the weights file, so the scan gate knows every byte's format.
  await writeFile(
    join(modelDir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { name, layers: [] } },
      weightsManifest: [
        { paths: ['weights/dense.bin'], weights: [{ name: 'dense/kernel', shape: [4], dtype: 'float32' }] },
      ],
    }),
  );
  await writeFile(join(modelDir, 'weights', 'dense.bin'), Buffer.from(Float32Array.from([0.5, -1, 2, 0.25]).buffer));
  await writeFile(join(modelDir, 'README.md'), `---\nlicense: apache-2.0\n---\n# ${name}\n`);
}

/** The files of writeSmallModel, for an http:// directory source that cannot be listed. */
export const SMALL_MODEL_FILES = ['README.md', 'config.json', 'model.json', 'weights/dense.bin'];
