/**
 * The model server as a real process on 127.0.0.1 serving the credit model: the v2 protocol's health, metadata and
 * infer (tabular and 2-D forms, equal to a plain tfjs predict), field-named 400s, 413, feedback, and the metrics that
 * count what was sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../scripts/credit-data';
import {
  creditModel,
  directPredict,
  metricsOf,
  post,
  serverEnv,
  startServer,
  stopAll,
  tabularRequest,
  total,
  type CreditModel,
  type ServerProcess,
} from './fixtures';

let model: CreditModel;
let server: ServerProcess;
const MAX_BODY = 64 * 1024;

beforeAll(async () => {
  model = await creditModel();
  server = await startServer(serverEnv(model, { MAX_BODY_BYTES: String(MAX_BODY) }));
});

afterAll(async () => {
  await server?.stop();
  await stopAll();
});

const infer = () => `${server.url}/v2/models/credit/infer`;

describe('health and metadata', () => {
  it('is live and ready, and describes the model with its feature columns', async () => {
    expect(await (await fetch(`${server.url}/v2/health/live`)).json()).toEqual({ live: true });
    const ready = await fetch(`${server.url}/v2/health/ready`);
    expect(ready.status).toBe(200);
    expect((await fetch(`${server.url}/v2/models/credit/ready`)).status).toBe(200);
    const metadata = (await (await fetch(`${server.url}/v2/models/credit`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      name: 'credit',
      versions: ['1.0.0'],
      platform: 'tensorflowjs',
      outputs: [
        { name: 'predictions', datatype: 'INT64', shape: [-1] },
        { name: 'scores', datatype: 'FP32', shape: [-1, 2] },
      ],
      parameters: { manifest_digest: `sha256:${model.ref.manifestDigest}`, matrix_input: { shape: [-1, 9] } },
    });
    expect(metadata.inputs).toEqual(
      model.features.map((f) => ({ name: f.name, datatype: f.type === 'categorical' ? 'BYTES' : 'FP32', shape: [-1] })),
    );
  });

  it('answers 404 for another model and 405 for a wrong method', async () => {
    const other = await fetch(`${server.url}/v2/models/other`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: string }).error).toMatch(/serves "credit"/);
    expect((await fetch(infer())).status).toBe(405);
  });
});

describe('infer', () => {
  it('predicts tabular rows as a plain tfjs predict does, and returns the id it was given', async () => {
    const rows = model.rows.slice(0, 32);
    const reference = await directPredict(model, rows);
    const res = await post(infer(), tabularRequest(rows, 'req-tabular-1'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ model_name: 'credit', model_version: '1.0.0', id: 'req-tabular-1' });
    const [predictions, scores] = res.body.outputs as { name: string; shape: number[]; data: number[] }[];
    expect(predictions).toMatchObject({ name: 'predictions', datatype: 'INT64', shape: [32] });
    expect(scores).toMatchObject({ name: 'scores', datatype: 'FP32', shape: [32, 2] });
    scores!.data.forEach((p, i) => expect(p).toBeCloseTo(reference[i]!, 5));
    expect(predictions!.data).toEqual(rows.map((_, r) => (reference[2 * r + 1]! >= 0.5 ? 1 : 0)));
    // Both classes occur among these rows, so the comparison says something about the decision.
    expect(new Set(predictions!.data).size).toBe(2);
  });

  it('predicts a preprocessed [n, 9] matrix the same way, and generates an id when none is given', async () => {
    const rows = model.rows.slice(32, 64);
    const x = Array.from(encode(rows, model.features));
    const reference = await directPredict(model, rows);
    const res = await post(infer(), {
      inputs: [{ name: 'input', shape: [32, 9], datatype: 'FP32', data: x }],
      outputs: [{ name: 'scores' }],
    });
    expect(res.status).toBe(200);
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    const [scores] = res.body.outputs as { name: string; data: number[] }[];
    expect(scores!.name).toBe('scores');
    scores!.data.forEach((p, i) => expect(p).toBeCloseTo(reference[i]!, 5));
  });

  it.each([
    ['a body that is not JSON', 'not json {', /^body: not valid JSON/],
    ['an id that is not a string', { id: 7, inputs: [] }, /^id: /],
    ['no inputs', { inputs: [] }, /^inputs: give a non-empty array/],
    ['a bad datatype', 'datatype', /^inputs\[0\]\.datatype: must be one of/],
    ['a shape that does not fit the data', 'shape', /^inputs\[2\]\.data: 31 values for shape \[32\]/],
    ['rows that differ between columns', 'rows', /^inputs\[3\]\.shape: 31 rows, but inputs\[0\] has 32/],
    ['an unknown category', 'category', /^inputs\[4\]\.data\[5\]: not a known category \(known: north, south, east\)/],
    ['a text in a number column', 'text', /^inputs\[1\]\.data\[2\]: must be a finite number for datatype FP32/],
    ['a missing feature column', 'missing', /^inputs: feature column "tenure" missing/],
    ['an input that is neither a column nor the matrix', 'unknown', /^inputs\[7\]: neither a feature column/],
  ])('answers 400 naming the field for %s, without echoing data', async (_what, kind, message) => {
    const body = badRequest(kind);
    const res = await post(infer(), body);
    expect(res.status).toBe(400);
    const error = res.body.error as string;
    expect(error).toMatch(message);
    expect(error).not.toContain('SECRET-');
  });

  it('answers 413 for a body over the limit', async () => {
    const rows = Array.from({ length: 40 }, () => model.rows).flat();
    const body = JSON.stringify(tabularRequest(rows));
    expect(body.length).toBeGreaterThan(MAX_BODY);
    const res = await post(infer(), body);
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/^body: larger than the server's limit of 65536 bytes/);
    // The server still answers afterwards.
    expect((await post(infer(), tabularRequest(model.rows.slice(0, 2)))).status).toBe(200);
  });
});

/** Bad bodies built from a valid request; every planted value that could leak is marked SECRET-. */
function badRequest(kind: unknown): unknown {
  if (typeof kind !== 'string' || !/^[a-z]+$/.test(kind)) return kind;
  const request = tabularRequest(model.rows.slice(0, 32)) as {
    inputs: { name: string; shape: number[]; datatype: string; data: unknown[] }[];
  };
  const inputs = request.inputs;
  switch (kind) {
    case 'datatype':
      inputs[0]!.datatype = 'SECRET-FLOAT';
      break;
    case 'shape':
      inputs[2]!.data.pop();
      break;
    case 'rows':
      inputs[3]!.shape = [31];
      inputs[3]!.data.pop();
      break;
    case 'category':
      inputs[4]!.data[5] = 'SECRET-REGION';
      break;
    case 'text':
      inputs[1]!.data[2] = 'SECRET-TEXT';
      break;
    case 'missing':
      inputs.splice(2, 1);
      break;
    case 'unknown':
      inputs.push({ name: 'SECRET-extra', shape: [32], datatype: 'BYTES', data: inputs[6]!.data });
      break;
  }
  return request;
}

describe('feedback', () => {
  it('accepts one label per row of a known request, and refuses another count naming labels', async () => {
    await post(infer(), tabularRequest(model.rows.slice(0, 3), 'req-feedback-1'));
    const url = `${server.url}/v2/models/credit/feedback`;
    const accepted = await post(url, { id: 'req-feedback-1', labels: [1, 0, 1] });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toEqual({ id: 'req-feedback-1', labels: 3, known: true });
    const wrong = await post(url, { id: 'req-feedback-1', labels: [1, 0] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatch(/^labels: 2 labels, but the request with this id had 3 rows/);
    // A request this server never saw (another replica's) is accepted and logged.
    expect((await post(url, { id: 'elsewhere', labels: [0] })).body).toEqual({
      id: 'elsewhere',
      labels: 1,
      known: false,
    });
    expect((await post(url, { labels: [0] })).body.error).toMatch(/^id: /);
    expect((await post(url, { id: 'x', labels: [1, 'SECRET-LABEL'] })).body.error).toMatch(
      /^labels\[1\]: not one of the model's classes \(0, 1\)$/,
    );
  });
});

describe('metrics', () => {
  it('count requests, errors, predictions by class and by group as sent', async () => {
    const before = await metricsOf(server.url);
    const batches = [model.rows.slice(0, 10), model.rows.slice(10, 35), model.rows.slice(35, 36)];
    const predicted: number[] = [];
    for (const rows of batches) {
      const res = await post(infer(), tabularRequest(rows));
      predicted.push(...(res.body.outputs as { data: number[] }[])[0]!.data);
    }
    await post(infer(), { inputs: [] });
    await post(infer(), { inputs: [] });
    const after = await metricsOf(server.url);
    const delta = (name: string, match: Record<string, string>) =>
      total(after, name, match) - total(before, name, match);
    const fixed = { model: 'credit', version: '1.0.0' };
    expect(delta('modelserver_requests_total', { ...fixed, endpoint: 'infer', code: '200' })).toBe(3);
    expect(delta('modelserver_requests_total', { ...fixed, endpoint: 'infer', code: '400' })).toBe(2);
    expect(delta('modelserver_request_errors_total', { ...fixed, endpoint: 'infer', reason: 'bad_request' })).toBe(2);
    expect(delta('modelserver_request_duration_seconds_count', { ...fixed, endpoint: 'infer', code: '200' })).toBe(3);
    const rows = batches.flat();
    for (const cls of [0, 1]) {
      const n = predicted.filter((p) => p === cls).length;
      expect(delta('modelserver_predictions_total', { ...fixed, class: String(cls) })).toBe(n);
      for (const group of ['a', 'b']) {
        const inGroup = rows.filter((r, i) => r.group === group && predicted[i] === cls).length;
        expect(
          delta('modelserver_group_predictions_total', { ...fixed, attribute: 'group', group, class: String(cls) }),
        ).toBe(inGroup);
      }
    }
    expect(delta('modelserver_group_predictions_total', { ...fixed, attribute: 'sex' })).toBe(rows.length);
    expect(total(after, 'modelserver_inflight')).toBe(0);
    expect(total(after, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });
});
