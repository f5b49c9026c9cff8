/**
 * `mrel codec-server` as the Temporal UI and CLI meet it: a real process on 127.0.0.1 speaking the remote codec
 * protocol, answering only the token's holders and only the UI's origin, stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../client/cli';
import { AesGcmPayloadCodec, type CodecKey } from '../../client/connection/payload-codec';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';

const UI_ORIGIN = 'http://localhost:8233';
const TOKEN = randomBytes(24).toString('hex');
const key: CodecKey = { id: 'k-2026', key: randomBytes(32) };
const KEYS = `${key.id}:${key.key.toString('base64')}`;
const codec = new AesGcmPayloadCodec([key]);
const VALUE = { model: 'credit-risk', version: '1.0.0', comment: 'ship it' };

let dir: string;
let tokenFile: string;
let server: ChildProcess;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-codec-server-'));
  tokenFile = join(dir, 'codec.token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  server = spawn(
    process.execPath,
    [
      join(PROJECT_ROOT, 'bin', 'mrel.js'),
      'codec-server',
      '--listen',
      '127.0.0.1:0',
      '--origin',
      UI_ORIGIN,
      '--token-file',
      tokenFile,
    ],
    {
      env: { ...process.env, MREL_CODEC_KEYS: KEYS, TEMPORAL_NAMESPACE: 'default' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  base = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    server.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /codec server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    server.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    server.once('exit', (code) => reject(new Error(`codec server exited with ${code}: ${err}`)));
  });
});

afterAll(async () => {
  if (server?.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Payloads as protobuf JSON, the way the UI and the CLI send them. */
function toJson(payloads: Payload[]) {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(
        Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
      ),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    })),
  };
}

function fromJson(json: unknown): Payload[] {
  const body = json as { payloads: { metadata: Record<string, string>; data: string }[] };
  return body.payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data, 'base64'),
  }));
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers },
    body: JSON.stringify(body),
  });
}

const sealed = async () => toJson(await codec.encode([defaultPayloadConverter.toPayload(VALUE)]));
const bearer = { Authorization: `Bearer ${TOKEN}` };

describe('mrel codec-server', () => {
  it('decodes for the bearer token, under any path prefix, and encodes what it decodes', async () => {
    for (const path of ['/decode', '/namespaces/default/decode']) {
      const response = await post(path, await sealed(), bearer);
      expect(response.status, path).toBe(200);
      const [payload] = fromJson(await response.json());
      expect(defaultPayloadConverter.fromPayload(payload!)).toEqual(VALUE);
    }
    const encoded = await post('/encode', toJson([defaultPayloadConverter.toPayload(VALUE)]), bearer);
    const [reencrypted] = fromJson(await encoded.json());
    expect(Buffer.from(reencrypted!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(defaultPayloadConverter.fromPayload((await codec.decode([reencrypted!]))[0]!)).toEqual(VALUE);
  });

  it('refuses a request without the token, or with another, with 401', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer not-the-token-at-all' },
      { Authorization: `Basic ${TOKEN}` },
    ];
    for (const headers of attempts) {
      const response = await post('/decode', await sealed(), headers);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="mrel-codec"');
      expect(JSON.stringify(await response.json())).not.toContain('credit-risk');
    }
  });

  it("answers the UI's origin with CORS, and another origin with 403 and no CORS headers at all", async () => {
    const preflight = await fetch(`${base}/decode`, {
      method: 'OPTIONS',
      headers: {
        Origin: UI_ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-namespace',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);
    const allowed = await post('/decode', await sealed(), { ...bearer, Origin: UI_ORIGIN });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);

    for (const method of ['OPTIONS', 'POST']) {
      const response = await fetch(`${base}/decode`, {
        method,
        headers: { ...bearer, Origin: 'http://evil.example', 'Content-Type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify(await sealed()) } : {}),
      });
      expect(response.status, method).toBe(403);
      expect(response.headers.get('access-control-allow-origin'), method).toBeNull();
      expect(response.headers.get('access-control-allow-credentials'), method).toBeNull();
    }
  });

  it('signs the browser in at /login with an HttpOnly same-site cookie that is not the token itself', async () => {
    const form = (token: string) =>
      fetch(`${base}/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
        redirect: 'manual',
      });
    const wrong = await form('not-the-token-at-all');
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();

    const right = await form(TOKEN);
    expect(right.status).toBe(200);
    const cookie = right.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^mrel-codec-session=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);
    expect(cookie).not.toContain(TOKEN);
    const session = cookie.split(';')[0]!;
    const response = await post('/decode', await sealed(), { Cookie: session, Origin: UI_ORIGIN });
    expect(response.status).toBe(200);
    expect(defaultPayloadConverter.fromPayload(fromJson(await response.json())[0]!)).toEqual(VALUE);
    expect((await post('/decode', await sealed(), { Cookie: 'mrel-codec-session=forged' })).status).toBe(401);
  });

  it('refuses another namespace, a payload under an unknown key (naming it) and a body that is not payloads', async () => {
    expect((await post('/decode', await sealed(), { ...bearer, 'X-Namespace': 'payments' })).status).toBe(403);
    const foreign = toJson(
      await new AesGcmPayloadCodec([{ id: 'k-2019', key: randomBytes(32) }]).encode([
        defaultPayloadConverter.toPayload(VALUE),
      ]),
    );
    const unknown = await post('/decode', foreign, bearer);
    expect(unknown.status).toBe(422);
    expect(((await unknown.json()) as { error: string }).error).toMatch(
      /key id "k-2019", which is not among the configured keys \(k-2026\)/,
    );
    expect((await post('/decode', { payload: [] }, bearer)).status).toBe(400);
  });
});

describe('mrel codec-server refuses to start', () => {
  async function start(args: string[], env: Record<string, string | undefined>) {
    const saved = { ...process.env };
    Object.assign(process.env, env);
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
    const err: string[] = [];
    try {
      const code = await runCli(['codec-server', '--listen', '127.0.0.1:0', ...args], {
        out: () => {},
        err: (l) => err.push(l),
      });
      return { code, err: err.join('\n') };
    } finally {
      process.env = saved;
    }
  }

  it('without keys, without a usable token, or with a bad origin, saying what to set', async () => {
    const noKeys = await start(['--token-file', tokenFile], {
      MREL_CODEC_KEYS: undefined,
      MREL_CODEC_KEY_FILE: undefined,
    });
    expect(noKeys).toEqual({
      code: 5,
      err: expect.stringMatching(/no codec keys: set MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE/),
    });

    const short = join(dir, 'short.token');
    await writeFile(short, 'abc\n');
    const weak = await start(['--token-file', short], { MREL_CODEC_KEYS: KEYS });
    expect(weak.code).toBe(5);
    expect(weak.err).toMatch(/--token-file .*short\.token: the token must be one word of at least 16 characters/);

    const none = await start([], { MREL_CODEC_KEYS: KEYS, MREL_CODEC_TOKEN: undefined });
    expect(none.err).toMatch(/no token: give --token-file <file> or set MREL_CODEC_TOKEN/);

    const origin = await start(['--token-file', tokenFile, '--origin', 'http://localhost:8233/ui'], {
      MREL_CODEC_KEYS: KEYS,
    });
    expect(origin).toEqual({
      code: 2,
      err: expect.stringMatching(/--origin http:\/\/localhost:8233\/ui: must be an origin/),
    });
  });
});
