/**
 * The HTTP door against clients that misbehave at the socket level (raw `net` connections on 127.0.0.1), the 503s a
 * caller can retry, and the entry point's refusal of the unhashed MREL_HTTP_TOKEN. No release worker is needed for any
 * of it.
 */
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ReleaseClientError } from '../../client/errors';
import { createDoorAuth } from '../../client/http-auth';
import { createHttpServer, MAX_HEADER_BYTES } from '../../client/http-server';
import { sha256Hex } from './http-auth-fixtures';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'doors-token-91c2';

let connection: Connection;
let server: Server;
let port: number;
const logged: unknown[] = [];

beforeAll(async () => {
  connection = await Connection.connect({ address: inject('temporalAddress') });
  // A real client that finds no release worker behind the queue: the start API's WORKER_UNAVAILABLE.
  const noWorker = (): never => {
    throw new ReleaseClientError(
      'WORKER_UNAVAILABLE',
      'no release worker polls task queue doors-queue; start one (npm run worker) and retry',
    );
  };
  const client = new Client({
    connection,
    namespace: 'default',
    interceptors: { workflow: [{ query: noWorker, describe: noWorker }] },
  });
  server = createHttpServer({
    client,
    // A caller who is no approver, allowed to start and read: what these tests do.
    auth: createDoorAuth({ tokens: [{ name: 'doors', sha256: sha256Hex(TOKEN) }], unmapped: ['start', 'read'] }),
    timeouts: { headersMs: 1_000, requestMs: 1_500, keepAliveMs: 1_000 },
    logError: (_message, err) => logged.push(err),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server?.closeAllConnections();
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  await connection?.close();
  expect(logged).toEqual([]);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A raw connection that records what the server answers and whether it closed. */
async function rawConnection(): Promise<{ socket: Socket; answer: () => string; closed: () => boolean }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let answer = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  return { socket, answer: () => answer, closed: () => closed };
}

/** Sends `drip` one byte every 200 ms until the server closes the connection or 10 s have passed. */
async function dripUntilClosed(conn: Awaited<ReturnType<typeof rawConnection>>, drip: string): Promise<void> {
  for (let i = 0; i < 50 && !conn.closed(); i++) {
    conn.socket.write(drip[i % drip.length] as string);
    await sleep(200);
  }
}

describe('HTTP door: slow and oversized clients', () => {
  it('closes a connection whose headers arrive one byte every 200 ms, answering 408', async () => {
    const conn = await rawConnection();
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    await dripUntilClosed(conn, 'abcdef');
    expect(conn.closed()).toBe(true);
    expect(conn.answer()).toMatch(/^HTTP\/1\.1 408 /);
    expect(conn.answer()).toMatch(
      /\r\n\r\n\{"error":"the request did not arrive in time: .*","code":"REQUEST_TIMEOUT","problems":\[\]\}$/,
    );
  });

  it('closes a connection whose declared 1000-byte body trickles in, answering 408', async () => {
    const conn = await rawConnection();
    conn.socket.write(
      [
        'POST /releases HTTP/1.1',
        'Host: 127.0.0.1',
        `Authorization: Bearer ${TOKEN}`,
        'Content-Type: application/json',
        'Content-Length: 1000',
        '',
        '{"model": ',
      ].join('\r\n'),
    );
    await dripUntilClosed(conn, ' ');
    expect(conn.closed()).toBe(true);
    expect(conn.answer()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it(`answers 431 to request headers over ${MAX_HEADER_BYTES} bytes`, async () => {
    const conn = await rawConnection();
    conn.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(MAX_HEADER_BYTES * 2)}\r\n\r\n`);
    for (let i = 0; i < 50 && !conn.closed(); i++) await sleep(200);
    expect(conn.answer()).toMatch(/^HTTP\/1\.1 431 /);
    expect(conn.answer()).toContain('"code":"HEADERS_TOO_LARGE"');
  });

  it('answers what is not HTTP with a JSON 400', async () => {
    const conn = await rawConnection();
    conn.socket.write('FOO / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    for (let i = 0; i < 50 && !conn.closed(); i++) await sleep(200);
    expect(conn.answer()).toMatch(/^HTTP\/1\.1 400 [\s\S]*"code":"BAD_REQUEST"/);
  });

  it('still serves a client that sends its request at once, on a kept-alive connection', async () => {
    const conn = await rawConnection();
    for (let i = 0; i < 2; i++) {
      const before = conn.answer().length;
      conn.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      for (let j = 0; j < 50 && !conn.answer().slice(before).includes('"ok"'); j++) await sleep(100);
      expect(conn.answer().slice(before)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*\{"status":"ok"\}$/);
    }
    conn.socket.destroy();
  });
});

describe('HTTP door: answers a caller can act on', () => {
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return {
      status: res.status,
      headers: res.headers,
      body: (await res.json()) as { code: string; error: string; problems: string[] },
    };
  };

  it('answers WORKER_UNAVAILABLE with 503, its message and Retry-After', async () => {
    const answer = await get(`/releases/${encodeURIComponent('release/doors/1.0.0/production')}`);
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(answer.body).toEqual({
      code: 'WORKER_UNAVAILABLE',
      error: 'no release worker polls task queue doors-queue; start one (npm run worker) and retry',
      problems: [],
    });
  });

  it('answers 404 to an id no release can have, without echoing it, and never asks Temporal', async () => {
    const odd = `release/${'x'.repeat(300)}/../../etc/passwd`;
    const answer = await get(`/releases/${encodeURIComponent(odd)}`);
    expect(answer.status).toBe(404);
    expect(answer.body.error).toMatch(/ids look like release\/<model>\/<version>\/<environment>/);
    expect(JSON.stringify(answer.body)).not.toContain('xxxxxxxx');
  });

  it('refuses list filters that no release can match with 400, naming each field', async () => {
    const answer = await get(`/releases?model=${encodeURIComponent("x' OR 1=1")}&stage=%00&limit=0`);
    expect(answer.status).toBe(400);
    expect(answer.body.problems).toEqual([
      expect.stringMatching(/^model must be a model name/),
      expect.stringMatching(/^stage must be a release stage/),
      expect.stringMatching(/^limit must be an integer from 1 to 1000/),
    ]);
  });
});

describe('HTTP door: the token', () => {
  const start = (env: Record<string, string>) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'client/http-main.ts'], {
      cwd: REPO,
      // Temporal is unreachable at this address: a refusal has to come before any connection attempt.
      env: { ...process.env, ...env, TEMPORAL_ADDRESS: '127.0.0.1:1', PORT: '0' },
      timeout: 30_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );

  it('MREL_HTTP_TOKEN of earlier versions, set at all, refuses to start and says how to hash it into the tokens file', async () => {
    for (const token of ['', '   ', 'two words', 'a-real-secret-3f9c']) {
      const { code, stderr } = await start({ MREL_HTTP_TOKEN: token });
      expect(code).toBe(1);
      expect(stderr).toMatch(/^mrel-http: environment variable MREL_HTTP_TOKEN is no longer read: put its digest/);
      expect(stderr).toContain('config/http-tokens.yaml');
      expect(stderr).not.toMatch(/Temporal/);
      expect(stderr).not.toContain('a-real-secret');
    }
  });

  it('an open door (no auth) refuses to listen anywhere but loopback', async () => {
    const open = createHttpServer({ client: {} as Client });
    const failed = new Promise<Error>((resolve) => open.once('error', resolve));
    open.listen(0, '0.0.0.0');
    expect((await failed).message).toMatch(/^refusing to serve on 0\.0\.0\.0 without authentication/);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(open.listening).toBe(false);
  });
});
