/**
 * The model server's start, overload and stop, each on its own process: a tampered model is refused at start naming
 * the file; a full queue sheds with 429 and Retry-After; SIGTERM drains and flushes the inference and feedback logs
 * (files 0600 in a 0700 directory) with exactly what was sent.
 */
import { request as httpRequest, type ClientRequest } from 'node:http';
import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  creditModel,
  metricsOf,
  post,
  refusedStart,
  serverEnv,
  startServer,
  stopAll,
  tabularRequest,
  total,
  type CreditModel,
} from './fixtures';

let model: CreditModel;

beforeAll(async () => {
  model = await creditModel();
});

afterEach(stopAll);

describe('start', () => {
  it('refuses a tampered weight file, naming it, when the manifest is mounted', async () => {
    const dir = join(model.root, 'tampered');
    await cp(model.dir, dir, { recursive: true });
    const shard = join(dir, 'group1-shard1of1.bin');
    const bytes = await readFile(shard);
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(shard, bytes);
    const exit = await refusedStart(
      serverEnv(model, {
        MODEL_DIR: dir,
        MODEL_MANIFEST_FILE: model.manifestFile,
        MODEL_MANIFEST_BLOB: `sha256:${model.ref.blob}`,
      }),
    );
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/group1-shard1of1\.bin: sha256 [0-9a-f]{12}… is not the manifest's [0-9a-f]{12}…/);
    expect(exit.stdout).not.toMatch(/ready/);

    // With only the digest, the refusal lists the files it found.
    const byDigest = await refusedStart(serverEnv(model, { MODEL_DIR: dir }));
    expect(byDigest.code).toBe(1);
    expect(byDigest.stderr).toMatch(/not MODEL_MANIFEST_DIGEST sha256:/);
    expect(byDigest.stderr).toContain('group1-shard1of1.bin sha256:');
  });

  it('refuses a manifest that is not the stored one, and a start without any digest', async () => {
    const exit = await refusedStart(
      serverEnv(model, { MODEL_MANIFEST_FILE: model.manifestFile, MODEL_MANIFEST_BLOB: `sha256:${'0'.repeat(64)}` }),
    );
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/manifest\.json: its sha256 is not MODEL_MANIFEST_BLOB/);
    const { MODEL_MANIFEST_DIGEST: _digest, ...withoutDigest } = serverEnv(model);
    const bare = await refusedStart(withoutDigest);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/MODEL_MANIFEST_DIGEST is not set/);
  });

  it('starts from the mounted manifest, taking its name and version', async () => {
    const { MODEL_NAME: _n, MODEL_VERSION: _v, ...env } = serverEnv(model, { MODEL_MANIFEST_FILE: model.manifestFile });
    const server = await startServer(env);
    try {
      const metadata = (await (await fetch(`${server.url}/v2/models/credit`)).json()) as Record<string, unknown>;
      expect(metadata).toMatchObject({ name: 'credit', versions: ['1.0.0'] });
    } finally {
      await server.stop();
    }
  });
});

/** A request whose body is only half sent: the server holds it in flight (or queued) until it is finished. */
function halfSent(url: string, body: string): { req: ClientRequest; response: Promise<number> } {
  const req = httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  const response = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
  req.write(body.slice(0, 10));
  req.flushHeaders();
  return { req, response };
}

describe('overload', () => {
  it('sheds with 429 and Retry-After once one request is in flight and one waits', async () => {
    const server = await startServer(serverEnv(model, { MAX_INFLIGHT: '1', MAX_QUEUE: '1' }));
    try {
      const url = `${server.url}/v2/models/credit/infer`;
      const body = JSON.stringify(tabularRequest(model.rows.slice(0, 4)));
      const first = halfSent(url, body);
      const second = halfSent(url, body);
      // Bounded wait until the server holds both (no timing assumption: it polls the server's own gauges).
      for (let i = 0; i < 200; i++) {
        const m = await metricsOf(server.url);
        if (total(m, 'modelserver_inflight') === 1 && total(m, 'modelserver_queued') === 1) break;
        await sleep(25);
      }
      const shed = await post(url, body);
      expect(shed.status).toBe(429);
      expect(shed.headers.get('retry-after')).toBe('1');
      expect(shed.body.error).toMatch(/^too many requests: 1 in flight and 1 waiting/);
      for (const held of [first, second]) held.req.end(body.slice(10));
      expect(await first.response).toBe(200);
      expect(await second.response).toBe(200);
      const m = await metricsOf(server.url);
      expect(total(m, 'modelserver_rejected_total', { reason: 'queue_full' })).toBe(1);
      expect(total(m, 'modelserver_requests_total', { endpoint: 'infer', code: '429' })).toBe(1);
    } finally {
      await server.stop();
    }
  });

  it('answers a burst of concurrent requests with 200 or 429 only, and counts every 429', async () => {
    const server = await startServer(serverEnv(model, { MAX_INFLIGHT: '1', MAX_QUEUE: '1' }));
    try {
      const url = `${server.url}/v2/models/credit/infer`;
      const body = tabularRequest(model.rows.slice(0, 200));
      const statuses: number[] = [];
      for (let round = 0; round < 10 && !statuses.includes(429); round++) {
        const results = await Promise.all(Array.from({ length: 24 }, () => post(url, body)));
        statuses.push(...results.map((r) => r.status));
      }
      expect(new Set(statuses)).toEqual(new Set([200, 429]));
      const m = await metricsOf(server.url);
      const shed = statuses.filter((s) => s === 429).length;
      expect(total(m, 'modelserver_rejected_total', { reason: 'queue_full' })).toBe(shed);
      expect(total(m, 'modelserver_requests_total', { endpoint: 'infer', code: '200' })).toBe(statuses.length - shed);
    } finally {
      await server.stop();
    }
  });
});

describe('stop', () => {
  it('on SIGTERM finishes the request in flight before it exits', async () => {
    const server = await startServer(serverEnv(model));
    const url = `${server.url}/v2/models/credit/infer`;
    const body = JSON.stringify(tabularRequest(model.rows.slice(0, 4), 'req-drain'));
    const held = halfSent(url, body);
    for (let i = 0; i < 200 && total(await metricsOf(server.url), 'modelserver_inflight') !== 1; i++) await sleep(25);
    server.process.kill('SIGTERM');
    for (let i = 0; i < 200 && !/draining/.test(server.stdout()); i++) await sleep(25);
    expect(server.process.exitCode).toBeNull();
    held.req.end(body.slice(10));
    expect(await held.response).toBe(200);
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toMatch(/SIGTERM: draining[\s\S]*stopped/);
  });

  it('flushes the inference and feedback logs on SIGTERM with what was sent, private to the service user', async () => {
    const logDir = join(model.root, 'inference-log');
    // Flush thresholds far beyond the test: only the shutdown can write these records.
    const server = await startServer(
      serverEnv(model, { INFERENCE_LOG_DIR: logDir, LOG_FLUSH_RECORDS: '100000', LOG_FLUSH_MS: '3600000' }),
    );
    const url = `${server.url}/v2/models/credit`;
    const sent = [model.rows.slice(0, 5), model.rows.slice(5, 6), model.rows.slice(6, 40)];
    const answers: { id: string; predictions: number[] }[] = [];
    for (const [i, rows] of sent.entries()) {
      const res = await post(`${url}/infer`, tabularRequest(rows, i === 1 ? undefined : `req-log-${i}`));
      answers.push({ id: res.body.id as string, predictions: (res.body.outputs as { data: number[] }[])[0]!.data });
    }
    expect((await post(`${url}/feedback`, { id: 'req-log-0', labels: [1, 1, 0, 0, 1] })).status).toBe(202);
    expect(await readdir(logDir)).toEqual([]);
    expect(await server.stop('SIGTERM')).toBe(0);

    const files = (await readdir(logDir)).sort();
    expect(files).toHaveLength(2);
    expect((await stat(logDir)).mode & 0o777).toBe(0o700);
    for (const f of files) expect((await stat(join(logDir, f))).mode & 0o777).toBe(0o600);
    const inference = files.find((f) => f.startsWith('inference-'))!;
    expect(inference).toMatch(new RegExp(`^inference-\\d+-${server.process.pid}-1\\.jsonl$`));
    const lines = (await readFile(join(logDir, inference), 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    lines.forEach((line, i) => {
      const rows = sent[i]!;
      expect(line).toMatchObject({
        id: answers[i]!.id,
        model: 'credit',
        version: '1.0.0',
        manifestDigest: `sha256:${model.ref.manifestDigest}`,
        rows: rows.length,
        inputs: {
          income: rows.map((r) => r.income),
          zip_score: rows.map((r) => r.zip_score),
          region: rows.map((r) => r.region),
          group: rows.map((r) => r.group),
        },
        groups: { sex: rows.map((r) => r.sex), group: rows.map((r) => r.group) },
        predictions: answers[i]!.predictions,
      });
      expect(Date.parse(line.time)).not.toBeNaN();
      expect(line.scores).toHaveLength(rows.length);
    });
    const feedback = files.find((f) => f.startsWith('feedback-'))!;
    const label = JSON.parse(await readFile(join(logDir, feedback), 'utf8'));
    expect(label).toMatchObject({ id: 'req-log-0', labels: [1, 1, 0, 0, 1] });
    expect(server.stdout()).toMatch(/SIGTERM: draining[\s\S]*stopped/);
  });
});
