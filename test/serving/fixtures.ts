/**
 * Real parts for the model server's tests: the credit model trained by scripts/credit-data.ts (cached across runs,
 * see test/evaluate/fixtures.ts), its manifest as the real acquire stage stores it, the server as a real process on
 * 127.0.0.1 (port 0, read from its stdout), and a small parser of the Prometheus text format.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { FilesystemStore } from '../../activities/store';
import type { ManifestRef } from '../../contract/types';
import { encode, type CreditRow, type FeatureMeta } from '../../scripts/credit-data';
import { storeModel, trainModelFixture, useBackend } from '../evaluate/fixtures';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface CreditModel {
  root: string;
  /** The model directory (model.json + shard), as a pod would have it mounted. */
  dir: string;
  rows: CreditRow[];
  features: FeatureMeta[];
  ref: ManifestRef;
  /** The stored ArtifactManifest JSON, written beside the model: what MODEL_MANIFEST_FILE points at. */
  manifestFile: string;
}

/** The biased credit model (it takes the group as a feature: group is both a feature and a protected column). */
export async function creditModel(): Promise<CreditModel> {
  await useBackend();
  const root = await mkdtemp(join(tmpdir(), 'serving-test-'));
  const model = await trainModelFixture(root, 'biased', 2000, 200);
  const ref = await storeModel(model.dir, join(root, 'store'), 'credit');
  const manifestFile = join(root, 'manifest.json');
  await writeFile(manifestFile, await new FilesystemStore(join(root, 'store')).read(ref.blob, 1 << 20));
  const json = JSON.parse(await readFile(join(model.dir, 'model.json'), 'utf8')) as {
    userDefinedMetadata: { features: FeatureMeta[] };
  };
  return { root, dir: model.dir, rows: model.rows, features: json.userDefinedMetadata.features, ref, manifestFile };
}

/** Class probabilities of rows by a plain tfjs predict on the model directory, the reference for the server. */
export async function directPredict(model: CreditModel, rows: CreditRow[]): Promise<Float32Array> {
  const json = JSON.parse(await readFile(join(model.dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const shard = await readFile(join(model.dir, 'group1-shard1of1.bin'));
    const data = shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.byteLength) as ArrayBuffer;
    return [manifest.flatMap((g) => g.weights), data];
  });
  const layers = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const x = encode(rows, model.features);
  const width = x.length / rows.length;
  const y = tf.tidy(() => layers.predict(tf.tensor2d(x, [rows.length, width])) as tf.Tensor);
  const out = (await y.data()) as Float32Array;
  y.dispose();
  layers.dispose();
  return out;
}

/** The tabular v2 request for rows: one tensor per column, group columns as BYTES. */
export function tabularRequest(rows: CreditRow[], id?: string): Record<string, unknown> {
  const column = (name: keyof CreditRow, datatype: string) => ({
    name,
    shape: [rows.length],
    datatype,
    data: rows.map((r) => r[name]),
  });
  return {
    ...(id === undefined ? {} : { id }),
    inputs: [
      column('income', 'FP32'),
      column('debt_ratio', 'FP32'),
      column('tenure', 'FP32'),
      column('zip_score', 'FP32'),
      column('region', 'BYTES'),
      column('group', 'BYTES'),
      column('sex', 'BYTES'),
    ],
  };
}

export interface ServerProcess {
  url: string;
  port: number;
  process: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Environment of a server for the model (manifest digest, name, version); `extra` adds or overrides. */
export function serverEnv(model: CreditModel, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MODEL_DIR: model.dir,
    MODEL_NAME: 'credit',
    MODEL_VERSION: '1.0.0',
    MODEL_MANIFEST_DIGEST: `sha256:${model.ref.manifestDigest}`,
    GROUP_COLUMNS: 'sex,group',
    ...extra,
  };
}

const started = new Set<ChildProcess>();

/** Kills every server this process started that is still running (a test that timed out never reaches its finally). */
export async function stopAll(): Promise<void> {
  const running = [...started].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(running.map((c) => new Promise((resolve) => c.once('exit', resolve).kill('SIGKILL'))));
  started.clear();
}

/**
 * Starts `serving/main.ts` as its own process (node with the tsx loader, so that signals reach the server itself) on
 * 127.0.0.1 port 0. Resolves once it prints `ready` (with the port it printed on `listening`), or rejects with its
 * output when it exits first.
 */
export function startServer(env: Record<string, string>, args: string[] = []): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'serving/main.ts', '--host', '127.0.0.1', '--port', '0', ...args],
    {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), TF_CPP_MIN_LOG_LEVEL: '2', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  started.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (): void => {
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1];
      if (port === undefined || !/modelserver: ready/.test(out)) return;
      child.stdout.off('data', onData);
      resolve({
        url: `http://127.0.0.1:${port}`,
        port: Number(port),
        process: child,
        stdout: () => out,
        stderr: () => err,
        exited,
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    };
    child.stdout.on('data', onData);
    void exited.then((code) => reject(new ServerExit(code, out, err)));
  });
}

export class ServerExit extends Error {
  constructor(
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`the model server exited (${code}) before it was ready:\n${stderr}`);
  }
}

/** Runs the server expecting it to refuse to start; returns its exit. */
export async function refusedStart(env: Record<string, string>): Promise<ServerExit> {
  try {
    const server = await startServer(env);
    await server.stop();
  } catch (err) {
    if (err instanceof ServerExit) return err;
    throw err;
  }
  throw new Error('the model server started; it should have refused');
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Samples of the Prometheus text exposition format (no escapes in label values here). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `match`. */
export function total(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

export async function metricsOf(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  return parseMetrics(await res.text());
}

export async function post(
  url: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}
