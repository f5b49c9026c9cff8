/**
 * Hostile inputs at the doors, as property tests with a fixed seed and a fixed number of runs:
 *   - the HTTP endpoint (a real server on 127.0.0.1, a real Temporal client on the run's dev server, no worker):
 *     random methods, paths, release ids, content types, headers and bodies (random JSON, deep nesting, bodies past
 *     the size limit, prototype-pollution keys, a valid request with one field spoiled). Every answer is JSON, 2xx or
 *     4xx (503 only as WORKER_UNAVAILABLE), never 500, never a hang; 400s name the fields at fault.
 *   - request files (readRequestFile + validateRequest): random text, JSON, YAML, alias bombs, deep nesting, bytes
 *     that are not UTF-8. The outcome is a valid request or a ReleaseClientError, nothing else, and never a hang.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { MAX_REQUEST_FILE_BYTES, readRequestFile } from '../../client/cli';
import { ReleaseClientError } from '../../client/errors';
import { createDoorAuth } from '../../client/http-auth';
import { createHttpServer, MAX_BODY_BYTES } from '../../client/http-server';
import { validateRequest } from '../../client/release-client';
import { approversWithIdentities, sha256Hex } from '../client/http-auth-fixtures';

const SEED = 20_250_614;
const TOKEN = 'hostile-doors-token';
/** A request that has not been answered after this long is a hang (generous: CI machines are noisy). */
const HANG_MS = 20_000;

let dir: string;
let approversDir: string;
let connection: Connection;
let client: Client;
let server: Server;
let base: string;
const logged: unknown[] = [];
const started = new Set<string>();

/** A request the door accepts (a model directory under the temp dir, which the test run allows as a source root). */
let validRequest: Record<string, unknown>;
let validRequestText: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-hostile-'));
  await mkdir(join(dir, 'model'));
  await writeFile(join(dir, 'model', 'config.json'), '{}');
  validRequest = {
    model: { name: 'hostile-door', version: '1.0.0', source: `file://${join(dir, 'model')}` },
    environment: 'production',
    policy: 'default',
    requestedBy: 'fuzzer',
    traffic: { averageRequestsPerSecond: 1, peakRequestsPerSecond: 2, compute: { msPerRequest: 3 } },
  };
  validRequestText = JSON.stringify(validRequest);
  approversDir = await approversWithIdentities({ amara: ['token:hostile'] });
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({ connection, namespace: 'default' });
  server = createHttpServer({
    client,
    // No worker polls this queue: releases the door accepts are started and then wait.
    taskQueue: `hostile-doors-${process.pid}`,
    // The token is amara's: decisions that name anyone else are refused (403) before they reach the release.
    auth: createDoorAuth({
      tokens: [{ name: 'hostile', sha256: sha256Hex(TOKEN) }],
      configDir: approversDir,
    }),
    ratePerMinute: 1_000_000,
    logError: (message, err) => logged.push({ message, err }),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const id of started) await client.workflow.getHandle(id).terminate('hostile-doors drill cleanup');
  server?.closeAllConnections();
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  await connection?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (approversDir) await rm(approversDir, { recursive: true, force: true });
  expect(logged).toEqual([]);
});

/** Each problem starts with the field (or config file) it is about. */
const FIELD_NAMED =
  /^(\(top level\)|body:|content-type |(model|image|environment|policy|evaluation|traffic|team|costCenter|requestedBy|approver|decision|comment|limit|stage)\b|[\w./-]+\.yaml: )/;

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__'];

/** A JSON text with prototype-pollution keys at the top and inside the request's open parts. */
const pollutingBody = fc
  .tuple(fc.constantFrom(...PROTO_KEYS), fc.constantFrom(...PROTO_KEYS), fc.jsonValue({ maxDepth: 2 }))
  .map(([a, b, value]) => {
    const poison = `{"${a}": {"polluted": true, "${b}": ${JSON.stringify(value)}}}`;
    return `{"${a}": ${poison}, "model": ${poison}, "traffic": ${poison}, "evaluation": {"features": [${poison}]}}`;
  });

/** `[[[…]]]` or `{"a":{"a":…}}` up to 100 000 levels, at the top or inside traffic. */
const deepBody = fc
  .tuple(fc.integer({ min: 1, max: 100_000 }), fc.boolean(), fc.boolean())
  .map(([depth, arrays, inTraffic]) => {
    const nest = arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    return inTraffic ? JSON.stringify({ ...validRequest, traffic: '§' }).replace('"§"', nest) : nest;
  });

/** Strings around and past the body limit (up to ~1.5 MB) in a request field or as a key. */
const hugeBody = fc
  .tuple(fc.integer({ min: 0, max: 1_500_000 }), fc.constantFrom('requestedBy', 'key', 'comment'))
  .map(([length, where]) => {
    const big = 'x'.repeat(length);
    if (where === 'key') return JSON.stringify({ [big]: 1 });
    if (where === 'comment') return JSON.stringify({ approver: 'amara', decision: 'approve', comment: big });
    return JSON.stringify({ ...validRequest, requestedBy: big });
  });

/** The valid request with one field (or sub-field) replaced by something random. */
const FIELD_PATHS = [
  ['model'],
  ['model', 'name'],
  ['model', 'version'],
  ['model', 'source'],
  ['model', 'digests'],
  ['model', 'files'],
  ['image'],
  ['environment'],
  ['policy'],
  ['evaluation'],
  ['traffic'],
  ['traffic', 'compute'],
  ['traffic', 'history'],
  ['team'],
  ['costCenter'],
  ['requestedBy'],
] as const;
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.integer({ min: 0, max: 5_000 }).map((n) => 'y'.repeat(n)),
  fc.dictionary(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }),
    { maxKeys: 20 },
  ),
  fc.array(fc.string({ maxLength: 20 }), { maxLength: 50 }),
);
const spoiledRequest = fc.tuple(fc.constantFrom(...FIELD_PATHS), oddValue).map(([path, value]) => {
  const request = structuredClone(validRequest) as Record<string, Record<string, unknown>>;
  if (path.length === 1) (request as Record<string, unknown>)[path[0]] = value;
  else request[path[0]] = { ...(request[path[0]] ?? {}), [path[1]]: value };
  return request as unknown;
});

const body = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.string({ unit: 'binary', maxLength: 500 }),
  pollutingBody,
  deepBody,
  hugeBody,
  spoiledRequest.map((r) => JSON.stringify(r)),
  fc.constant(''),
);

const releaseId = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }).map(encodeURIComponent),
  fc.constantFrom(
    'release/nobody/9.9.9/production',
    'release%2Fnobody%2F9.9.9%2Fproduction',
    '%E0%A4%A',
    '%',
    '..%2F..%2Fetc%2Fpasswd',
    'release/a/b/c/d/e',
    `release/${'a'.repeat(70)}/1/dev`,
    'release/x/1.0.0/dev%00',
    "release/x'%20OR%201=1/1/dev",
  ),
);

const path = fc.oneof(
  fc.constantFrom('/releases', '/healthz', '/', '/nowhere', '/releases/', '//releases'),
  releaseId.map((id) => `/releases/${id}`),
  releaseId.map((id) => `/releases/${id}/decisions`),
  fc
    .record({
      model: fc.string({ maxLength: 80 }),
      stage: fc.string({ maxLength: 20 }),
      environment: fc.string({ maxLength: 20 }),
      limit: fc.oneof(fc.integer().map(String), fc.string({ maxLength: 10 })),
    })
    .map((q) => `/releases?${new URLSearchParams(q).toString()}`),
);

const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/vnd.api+json',
    'APPLICATION/JSON',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonp',
    '',
  ),
  fc.string({ maxLength: 60 }),
);

const headerValue = fc.string({ maxLength: 200 });
const authorization = fc.oneof(
  { weight: 6, arbitrary: fc.constant(`Bearer ${TOKEN}`) },
  fc.constant(`bearer\t${TOKEN}  `),
  fc.constant(TOKEN),
  fc.constant(undefined),
  headerValue,
  headerValue.map((v) => `Bearer ${v}`),
);
const extraHeaders = fc.dictionary(
  fc.constantFrom('x-a', 'x-forwarded-for', 'accept', 'cookie', 'x-request-id', 'if-none-match', 'range'),
  headerValue,
  { maxKeys: 3 },
);

/** Anything at all: method, path, headers and body drawn independently. */
const anyCall = fc.record({
  method: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('GET', 'POST') },
    fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'FOO'),
  ),
  path,
  contentType,
  authorization,
  extra: extraHeaders,
  body,
});

/** Authorised JSON posts (mostly), so that the bodies reach the request and decision validators. */
const bodyCall = fc.record({
  method: fc.constant('POST'),
  path: fc.oneof(
    { weight: 3, arbitrary: fc.constant('/releases') },
    releaseId.map((id) => `/releases/${id}/decisions`),
  ),
  contentType: fc.oneof({ weight: 5, arbitrary: fc.constant('application/json') }, contentType),
  authorization: fc.constant(`Bearer ${TOKEN}`),
  extra: extraHeaders,
  body: fc.oneof(
    { weight: 6, arbitrary: body },
    { weight: 1, arbitrary: fc.constant(null).map(() => validRequestText) },
  ),
});

type Call = typeof anyCall extends fc.Arbitrary<infer T> ? T : never;

const ALLOWED = new Set([200, 201, 400, 401, 403, 404, 405, 413, 415]);

interface ErrorBody {
  error: string;
  code: string;
  problems: string[];
}

/**
 * Sends one call and checks the answer: JSON, 2xx or 4xx (503 only as WORKER_UNAVAILABLE), an error shape whose
 * problems name their fields. Returns `<status> <code>` for the tally, or undefined when fetch refused to send it.
 */
async function check(c: Call): Promise<string | undefined> {
  const headers: Record<string, string> = { ...c.extra };
  if (c.authorization !== undefined) headers.authorization = c.authorization;
  if (c.contentType) headers['content-type'] = c.contentType;
  let request: Request;
  try {
    request = new Request(`${base}${c.path}`, {
      method: c.method,
      headers,
      body: ['GET', 'HEAD'].includes(c.method) ? undefined : c.body,
      signal: AbortSignal.timeout(HANG_MS),
    });
  } catch (err) {
    // fetch itself refuses some header values, methods and URLs: nothing reaches the server.
    if (err instanceof TypeError) return undefined;
    throw err;
  }
  const res = await fetch(request);
  const text = await res.text();
  expect(ALLOWED.has(res.status) || res.status === 503, `${res.status} ${text.slice(0, 300)}`).toBe(true);
  if (c.method === 'HEAD') return `${res.status} HEAD`;
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const answer = JSON.parse(text) as ErrorBody & { releaseId?: string };
  if (answer.releaseId) started.add(answer.releaseId);
  if (res.status === 503) {
    expect(answer.code).toBe('WORKER_UNAVAILABLE');
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  }
  if (res.status >= 400) {
    expect(answer).toEqual({ error: expect.any(String), code: expect.any(String), problems: expect.any(Array) });
    expect(answer.problems.length).toBeLessThanOrEqual(51);
    for (const problem of answer.problems) expect(problem, answer.error).toMatch(FIELD_NAMED);
    if (/is invalid$/.test(answer.error)) expect(answer.problems.length).toBeGreaterThan(0);
  }
  return `${res.status} ${answer.code ?? ''}`.trim();
}

describe('hostile inputs at the HTTP door', () => {
  it('answers any method, path, header and body with JSON, 2xx or 4xx, never 500', async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(anyCall, async (c) => {
        const kind = await check(c);
        if (kind) seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }),
      { seed: SEED, numRuns: 120, interruptAfterTimeLimit: 240_000, markInterruptAsFailure: true },
    );
    // The fixed seed reaches every layer of the door, not just its first refusal.
    for (const kind of ['401 UNAUTHORIZED', '404 NOT_FOUND', '405 METHOD_NOT_ALLOWED', '400 BAD_REQUEST', '200']) {
      expect([...seen.keys()]).toContain(kind);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 300_000);

  it('answers any body posted as JSON with a start, or a 4xx that names the fields at fault', async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(bodyCall, async (c) => {
        const kind = await check(c);
        if (kind) seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }),
      { seed: SEED, numRuns: 150, interruptAfterTimeLimit: 240_000, markInterruptAsFailure: true },
    );
    expect(seen.get('400 INVALID_REQUEST')).toBeGreaterThan(30);
    expect([...seen.keys()]).toEqual(expect.arrayContaining(['413 PAYLOAD_TOO_LARGE', '415 UNSUPPORTED_MEDIA_TYPE']));
    expect(started.size).toBeGreaterThan(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 300_000);

  it('refuses bodies past the limit with 413 and huge or deep fields with 400, field named', async () => {
    const post = async (text: string) => {
      const res = await fetch(`${base}/releases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: text,
        signal: AbortSignal.timeout(HANG_MS),
      });
      return { status: res.status, body: (await res.json()) as ErrorBody };
    };
    expect((await post(JSON.stringify({ ...validRequest, requestedBy: 'x'.repeat(MAX_BODY_BYTES) }))).status).toBe(413);

    const long = await post(JSON.stringify({ ...validRequest, requestedBy: 'x'.repeat(10_000) }));
    expect(long).toMatchObject({ status: 400, body: { problems: ['requestedBy: must be at most 128 characters'] } });

    const deep = await post(
      JSON.stringify({ ...validRequest, traffic: '§' }).replace('"§"', '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000)),
    );
    expect(deep.status).toBe(400);
    expect(deep.body.problems.join('\n')).toMatch(/^traffic: nests more than \d+ levels deep/m);

    const keys = await post(
      JSON.stringify({
        ...validRequest,
        model: { ...(validRequest.model as object), digests: { ['k'.repeat(5_000)]: 'a'.repeat(64) } },
      }),
    );
    expect(keys.status).toBe(400);
    expect(keys.body.problems).toEqual([
      expect.stringMatching(/^model\.digests: keys must be at most 1024 characters/),
    ]);
    expect(keys.body.problems[0]?.length).toBeLessThan(200);
  });
});

describe('hostile request files', () => {
  /** Writes `content` as a request file and runs it through the door; returns the outcome. */
  async function door(content: string | Uint8Array): Promise<'valid' | ReleaseClientError> {
    const file = join(dir, 'request.yaml');
    await writeFile(file, content);
    try {
      await validateRequest(await readRequestFile(file));
      return 'valid';
    } catch (err) {
      if (err instanceof ReleaseClientError) return err;
      throw new Error(`not a ReleaseClientError: ${String(err)}`, { cause: err });
    }
  }

  /** `depth` levels of YAML anchors, each aliasing the one before `width` times: width^depth values expanded. */
  const aliasBomb = (width: number, depth: number): string => {
    const lines = [`l0: &l0 ["lol"]`];
    for (let i = 1; i <= depth; i++)
      lines.push(
        `l${i}: &l${i} [${Array(width)
          .fill(`*l${i - 1}`)
          .join(', ')}]`,
      );
    return lines.join('\n') + '\n';
  };

  const yamlText = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 1_000 }),
    fc.json({ maxDepth: 5 }),
    fc.jsonValue({ maxDepth: 4 }).map((v) => stringify(v)),
    spoiledRequest.map((r) => stringify(r)),
    spoiledRequest.map((r) => JSON.stringify(r)),
    fc.tuple(fc.integer({ min: 2, max: 10 }), fc.integer({ min: 2, max: 10 })).map(([w, d]) => aliasBomb(w, d)),
    fc.integer({ min: 1, max: 20_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
    fc.integer({ min: 1, max: 600 }).map((n) => Array.from({ length: n }, (_, i) => `${' '.repeat(i)}a:`).join('\n')),
    fc.constantFrom('---\na: 1\n---\nb: 2\n', 'model: !!binary aGVsbG8=\n', '? [a, b]\n: c\n', 'model: "unterminated'),
  );

  it('turns any text into a valid request or a ReleaseClientError, never another exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(yamlText, fc.uint8Array({ maxLength: 2_000 })), async (content) => {
        const outcome = await door(content);
        if (outcome === 'valid') return;
        expect(outcome.code).toBe('INVALID_REQUEST');
        // Either the file itself is named (unreadable, not YAML), or every problem names its field.
        if (!outcome.message.startsWith(join(dir, 'request.yaml'))) {
          expect(outcome.problems.length).toBeGreaterThan(0);
          for (const problem of outcome.problems) expect(problem).toMatch(FIELD_NAMED);
        }
      }),
      { seed: SEED, numRuns: 200, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: true },
    );
  }, 180_000);

  it('refuses a billion-laughs document without expanding it', async () => {
    const outcome = await door(aliasBomb(10, 9));
    expect(outcome).toBeInstanceOf(ReleaseClientError);
    expect((outcome as ReleaseClientError).message).toMatch(/expands YAML aliases too often/);
    expect((outcome as ReleaseClientError).problems).toEqual([expect.stringMatching(/at most 100 times/)]);
  });

  it('refuses files too large, and paths that are not regular files, naming them and quoting nothing', async () => {
    const huge = await door(`requestedBy: "${'z'.repeat(MAX_REQUEST_FILE_BYTES)}"\n`);
    expect((huge as ReleaseClientError).message).toMatch(
      /request\.yaml: is \d+ bytes; a request file may have at most/,
    );
    expect((huge as ReleaseClientError).message).not.toContain('zzzz');
    for (const special of ['/dev/zero', dir]) {
      await expect(readRequestFile(special)).rejects.toThrow(`${special}: is not a regular file`);
    }
    await expect(readRequestFile(join(dir, 'missing.yaml'))).rejects.toThrow(/missing\.yaml: cannot be read/);
    const secret = await door('requestedBy: [hunter2-secret\n');
    expect(
      JSON.stringify([(secret as ReleaseClientError).message, (secret as ReleaseClientError).problems]),
    ).not.toContain('hunter2');
  });
});
