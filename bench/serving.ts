/**
 * The model server against a plain tfjs-node `model.predict` loop on the same model and batch size, in the same run:
 * rows/s and p99 latency of each, and the ratio (target: the server at least 0.8× the loop's rows/s at batch 32).
 *
 *   npx tsx bench/serving.ts [--batch 32] [--seconds 10] [--concurrency 16] [--form tabular|matrix] [--no-log]
 *
 * The model is the credit model of scripts/credit-data.ts, trained here. The server runs as its own process (as in
 * its image) with the inference log on; the load generator runs in this process over HTTP keep-alive connections,
 * each sending the next batch as soon as the last is answered. Both compete for the same CPUs, as a sidecar would.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { Pool } from 'undici';
import { initBackend, parseBackendPreference } from '../activities/evaluate/backend';
import { walkModelDirectory } from '../activities/formats/walk';
import { manifestDigest } from '../activities/store/manifest';
import {
  BIASED_FEATURES,
  encode,
  generateCredit,
  saveModel,
  trainCreditModel,
  type CreditRow,
} from '../scripts/credit-data';

const REPO = fileURLToPath(new URL('..', import.meta.url));

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    form: { type: 'string', default: 'tabular' },
    'no-log': { type: 'boolean', default: false },
  },
});
const BATCH = Number(args.batch);
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const FORM = args.form === 'matrix' ? 'matrix' : 'tabular';

interface Result {
  rowsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  calls: number;
}

function summarize(latenciesMs: number[], rows: number, seconds: number): Result {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { rowsPerSecond: rows / seconds, p50Ms: at(0.5), p99Ms: at(0.99), calls: sorted.length };
}

/** The reference: predict → read the probabilities back, batch after batch, for the same time. */
function predictLoop(model: tf.LayersModel, batches: Float32Array[], width: number): Result {
  const latencies: number[] = [];
  let rows = 0;
  // Warm-up: the first calls compile kernels and allocate.
  for (let i = 0; i < 50; i++)
    tf.tidy(() => (model.predict(tf.tensor2d(batches[0]!, [BATCH, width])) as tf.Tensor).dataSync());
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let i = 0;
  while (performance.now() < end) {
    const t = performance.now();
    const x = batches[i++ % batches.length]!;
    tf.tidy(() => (model.predict(tf.tensor2d(x, [BATCH, width])) as tf.Tensor).dataSync());
    latencies.push(performance.now() - t);
    rows += BATCH;
  }
  return summarize(latencies, rows, (performance.now() - start) / 1000);
}

function tabularBody(rows: CreditRow[]): string {
  const col = (name: keyof CreditRow, datatype: string) => ({
    name,
    shape: [rows.length],
    datatype,
    data: rows.map((r) => r[name]),
  });
  return JSON.stringify({
    inputs: [
      col('income', 'FP32'),
      col('debt_ratio', 'FP32'),
      col('tenure', 'FP32'),
      col('zip_score', 'FP32'),
      col('region', 'BYTES'),
      col('group', 'BYTES'),
      col('sex', 'BYTES'),
    ],
  });
}

async function loadGenerator(url: string, bodies: string[]): Promise<Result & { errors: number }> {
  const origin = new URL(url);
  const pool = new Pool(origin.origin, { connections: CONCURRENCY, pipelining: 1 });
  const latencies: number[] = [];
  let rows = 0;
  let errors = 0;
  const send = async (body: string): Promise<number> => {
    const res = await pool.request({
      path: origin.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    await res.body.text();
    return res.statusCode;
  };
  for (let i = 0; i < 200; i++) await send(bodies[i % bodies.length]!);
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const status = await send(bodies[next++ % bodies.length]!);
        if (status !== 200) errors++;
        else {
          latencies.push(performance.now() - t);
          rows += BATCH;
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  return { ...summarize(latencies, rows, seconds), errors };
}

async function main(): Promise<void> {
  const backend = await initBackend(parseBackendPreference(process.env.TFJS_BACKEND));
  const root = await mkdtemp(join(tmpdir(), 'bench-serving-'));
  try {
    const trained = await trainCreditModel(generateCredit(2000, { biased: true, seed: 11 }), BIASED_FEATURES);
    const dir = join(root, 'model');
    await saveModel(trained.model, dir, trained.metadata);
    const files = await Promise.all(
      (await walkModelDirectory(dir)).files.map(async (f) => ({
        path: f.path,
        size: f.size,
        sha256: createHash('sha256')
          .update(await readFile(f.realPath))
          .digest('hex'),
      })),
    );
    const rows = generateCredit(BATCH * 64, { biased: true, seed: 99 });
    const width = encode(rows.slice(0, 1), trained.features).length;
    const batches = Array.from({ length: 64 }, (_, b) =>
      encode(rows.slice(b * BATCH, (b + 1) * BATCH), trained.features),
    );

    const reference = predictLoop(trained.model, batches, width);
    trained.model.dispose();

    const bodies =
      FORM === 'tabular'
        ? Array.from({ length: 64 }, (_, b) => tabularBody(rows.slice(b * BATCH, (b + 1) * BATCH)))
        : batches.map((x) =>
            JSON.stringify({
              inputs: [{ name: 'input', shape: [BATCH, width], datatype: 'FP32', data: Array.from(x) }],
            }),
          );
    const server = spawn(
      process.execPath,
      ['--import', 'tsx', 'serving/main.ts', '--host', '127.0.0.1', '--port', '0'],
      {
        cwd: REPO,
        env: {
          ...process.env,
          TF_CPP_MIN_LOG_LEVEL: '2',
          MODEL_DIR: dir,
          MODEL_NAME: 'credit',
          MODEL_VERSION: 'bench',
          MODEL_MANIFEST_DIGEST: `sha256:${manifestDigest(files)}`,
          GROUP_COLUMNS: 'sex,group',
          MAX_INFLIGHT: String(CONCURRENCY * 2),
          ...(args['no-log'] ? {} : { INFERENCE_LOG_DIR: join(root, 'log') }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      server.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)[\s\S]*ready/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      server.once('exit', (code) => reject(new Error(`the model server exited (${code}) before it was ready`)));
    });
    let served;
    try {
      served = await loadGenerator(`http://127.0.0.1:${port}/v2/models/credit/infer`, bodies);
    } finally {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
    }
    const ratio = served.rowsPerSecond / reference.rowsPerSecond;
    const fmt = (r: Result) =>
      `${Math.round(r.rowsPerSecond).toLocaleString('en')} rows/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (${r.calls} calls)`;
    console.log(
      `backend ${backend.name}, batch ${BATCH}, ${SECONDS} s each, ${CONCURRENCY} connections, ${FORM} form, inference log ${args['no-log'] ? 'off' : 'on'}`,
    );
    console.log(`plain model.predict loop : ${fmt(reference)}`);
    console.log(`model server over HTTP   : ${fmt(served)}${served.errors > 0 ? `, ${served.errors} non-200` : ''}`);
    console.log(`ratio (server / loop)    : ${ratio.toFixed(2)}× (target ≥ 0.80×) ${ratio >= 0.8 ? 'met' : 'NOT met'}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
