/**
 * The authenticated HTTP door against a real OIDC issuer (node:http on 127.0.0.1 serving a discovery document and a
 * JWKS of keys made by jose), static tokens, the run's dev server and a real release worker: who a token maps to is
 * who the decision counts for, and every bad token is a 401 that says why without repeating it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDoorAuth, type DoorAuth } from '../../client/http-auth';
import { createHttpServer } from '../../client/http-server';
import type { StartedRelease } from '../../client/release-client';
import type { DecideOutcome, ReleaseStatus } from '../../contract/types';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { approversWithIdentities, sha256Hex } from './http-auth-fixtures';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AUDIENCE = 'modelrelease-door';
const BORIS_TOKEN = 'boris-ci-token-5d1e';
const CI_TOKEN = 'ci-token-77b0';

let env: ReleaseEnv;
let issuerServer: Server;
let issuer: string;
let signingKey: CryptoKey;
let strangerKey: CryptoKey;
let approversDir: string;
let auth: DoorAuth;
const doors: Server[] = [];
const logged: unknown[] = [];

beforeAll(async () => {
  const keys = await generateKeyPair('ES256');
  signingKey = keys.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  const jwks = { keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'door-key-1', alg: 'ES256', use: 'sig' }] };
  issuerServer = createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer, jwks_uri: `${issuer}/jwks` }
        : req.url === '/jwks'
          ? jwks
          : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;

  approversDir = await approversWithIdentities({ amara: [`oidc:${issuer}#amara-sub`], boris: ['token:boris-ci'] });
  auth = createDoorAuth({
    oidc: { issuer, audience: AUDIENCE },
    tokens: [
      { name: 'boris-ci', sha256: sha256Hex(BORIS_TOKEN) },
      { name: 'ci', sha256: sha256Hex(CI_TOKEN) },
    ],
    configDir: approversDir,
    unmapped: ['start', 'read'],
    log: (message) => logged.push(message),
  });
  env = await createReleaseEnv('http-auth');
  await env.startWorker();
});
afterAll(async () => {
  for (const door of doors) await new Promise<void>((resolve) => door.close(() => resolve()));
  if (issuerServer) await new Promise<void>((resolve) => issuerServer.close(() => resolve()));
  await env?.close();
  if (approversDir) await rm(approversDir, { recursive: true, force: true });
  expect(logged).toEqual([]);
});

async function openDoor(options: { ratePerMinute?: number; now?: () => number } = {}): Promise<string> {
  const door = createHttpServer({
    client: env.client,
    taskQueue: env.settings.taskQueue,
    auth,
    ratePerMinute: options.ratePerMinute ?? 100_000,
    now: options.now,
    logError: (_message, err) => logged.push(err),
  });
  doors.push(door);
  await new Promise<void>((resolve) => door.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(door.address() as AddressInfo).port}`;
}

interface Answer<T> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}
interface ErrorBody {
  error: string;
  code: string;
  problems: string[];
}

async function call<T = ErrorBody>(
  base: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<Answer<T>> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: JSON.parse(text) as T };
}

const seconds = () => Math.floor(Date.now() / 1000);

/** A token from the test's issuer for amara, with `change` applied before it is signed. */
function oidcToken(change: (jwt: SignJWT) => SignJWT = (jwt) => jwt, key = signingKey, kid = 'door-key-1') {
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setSubject('amara-sub')
    .setIssuedAt()
    .setExpirationTime('5m');
  return change(jwt).sign(key);
}

const statusPath = (id: string) => `/releases/${encodeURIComponent(id)}`;
const decisionsPath = (id: string) => `${statusPath(id)}/decisions`;

describe('authenticated HTTP door', () => {
  it('counts a decision as the approver the token maps to, and refuses a body that names anyone else', async () => {
    const base = await openDoor();
    const amara = await oidcToken();
    const request = await env.model('door-auth', '1.0.0');
    const started = await call<StartedRelease>(base, 'POST', '/releases', amara, request);
    expect(started.status).toBe(201);
    const { releaseId } = started.body;
    await eventually(
      () => call<ReleaseStatus>(base, 'GET', statusPath(releaseId), amara),
      (r) => r.body.stage === 'approval',
    );

    const approved = await call<DecideOutcome>(base, 'POST', decisionsPath(releaseId), amara, {
      decision: 'approve',
      comment: 'signed in',
    });
    expect(approved.status).toBe(200);
    expect(approved.body.accepted).toBe(true);
    expect(approved.body.status.approvals.map((a) => `${a.approver}:${a.role}`)).toEqual(['amara:release-manager']);

    const impersonating = await call(base, 'POST', decisionsPath(releaseId), BORIS_TOKEN, {
      approver: 'amara',
      decision: 'approve',
    });
    expect(impersonating.status).toBe(403);
    expect(impersonating.body).toMatchObject({ code: 'FORBIDDEN', problems: [] });
    expect(impersonating.body.error).toBe(
      'the body names approver "amara", but token:boris-ci is approver "boris": leave approver out, or send your own',
    );

    const boris = await call<DecideOutcome>(base, 'POST', decisionsPath(releaseId), BORIS_TOKEN, {
      approver: 'boris',
      decision: 'approve',
    });
    expect(boris.body.accepted).toBe(true);
    expect(boris.body.status.approvals.map((a) => a.approver)).toEqual(['amara', 'boris']);
    await env.client.workflow
      .getHandle(releaseId)
      .terminate('test cleanup')
      .catch(() => undefined);
  });

  it('answers every bad token with a 401 that says why in WWW-Authenticate, never repeating the token', async () => {
    const base = await openDoor();
    const now = seconds();
    const badTokens: [string, string, string][] = [
      ['expired', await oidcToken((j) => j.setIssuedAt(now - 900).setExpirationTime(now - 300)), 'has expired'],
      ['wrong audience', await oidcToken((j) => j.setAudience('another-service')), 'for another audience'],
      ['wrong issuer', await oidcToken((j) => j.setIssuer('https://issuer.example.com')), 'from another issuer'],
      ['unknown kid', await oidcToken(undefined, strangerKey, 'door-key-9'), 'a key the issuer does not publish'],
      ['another key, known kid', await oidcToken(undefined, strangerKey), 'signature does not verify'],
      [
        'alg none',
        new UnsecuredJWT({})
          .setIssuer(issuer)
          .setAudience(AUDIENCE)
          .setSubject('amara-sub')
          .setExpirationTime('5m')
          .encode(),
        'not signed with an accepted algorithm',
      ],
      ['no subject', await oidcToken((j) => j.setSubject('')), 'no subject'],
      ['static, wrong', `${CI_TOKEN}x`, 'not known here'],
    ];
    for (const [what, token, why] of badTokens) {
      const answer = await call(base, 'GET', '/releases', token);
      expect(answer.status, what).toBe(401);
      expect(answer.body, what).toEqual({ error: expect.stringContaining(why), code: 'UNAUTHORIZED', problems: [] });
      expect(answer.headers.get('www-authenticate'), what).toMatch(
        new RegExp(`^Bearer realm="modelrelease", error="invalid_token", error_description="[^"]*${why}`),
      );
      expect(answer.text, what).not.toContain(token.slice(-12));
    }
    const missing = await call(base, 'GET', '/releases', undefined);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer realm="modelrelease", error="invalid_request"/);

    const good = await call(base, 'GET', '/releases?model=door-nothing', await oidcToken());
    expect(good).toMatchObject({ status: 200, body: [] });
    expect((await call(base, 'GET', '/healthz', undefined)).status).toBe(200);
  });

  it('lets a caller who is no approver start and read where allowed, but never decide', async () => {
    const base = await openDoor();
    expect((await call(base, 'GET', '/releases?model=door-nothing', CI_TOKEN)).status).toBe(200);
    const decision = await call(base, 'POST', decisionsPath('release/door-nothing/1.0.0/production'), CI_TOKEN, {
      decision: 'approve',
    });
    expect(decision.status).toBe(403);
    expect(decision.body.error).toMatch(/^token:ci is mapped to no approver, so it may not decide/);
  });

  it('limits each caller to its rate (429 with Retry-After), and failed tokens by address', async () => {
    let now = 1_750_000_000_000;
    const base = await openDoor({ ratePerMinute: 2, now: () => now });
    const list = (token: string | undefined) => call(base, 'GET', '/releases?model=door-nothing', token);
    expect([(await list(CI_TOKEN)).status, (await list(CI_TOKEN)).status]).toEqual([200, 200]);
    const limited = await list(CI_TOKEN);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('30');
    expect(limited.body).toMatchObject({ code: 'RATE_LIMITED', error: expect.stringMatching(/at most 2 a minute/) });
    // Another caller has its own bucket.
    expect((await list(BORIS_TOKEN)).status).toBe(200);

    expect([(await list('guess-1')).status, (await list('guess-2')).status]).toEqual([401, 401]);
    const guessing = await list('guess-3');
    expect(guessing.status).toBe(429);
    expect(guessing.text).not.toContain('guess-3');

    now += 30_000;
    expect((await list(CI_TOKEN)).status).toBe(200);
  });
});

describe('the door entry point', () => {
  const start = (extra: Record<string, string>) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MREL_HTTP_')));
    return promisify(execFile)(process.execPath, ['--import', 'tsx', 'client/http-main.ts'], {
      cwd: REPO,
      // Temporal is unreachable here: refusals of the settings come before any connection attempt.
      env: { ...clean, TEMPORAL_ADDRESS: '127.0.0.1:1', PORT: '0', ...extra },
      timeout: 30_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
  };

  it('refuses to serve 0.0.0.0 without authentication, naming the settings that turn it on', async () => {
    const { code, stderr } = await start({ HOST: '0.0.0.0' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^mrel-http: refusing to serve on 0\.0\.0\.0 without authentication/);
    for (const setting of ['MREL_HTTP_OIDC_ISSUER', 'MREL_HTTP_OIDC_AUDIENCE', 'MREL_HTTP_TOKENS_FILE']) {
      expect(stderr).toContain(setting);
    }
    expect(stderr).not.toMatch(/Temporal/);
  });

  it('refuses a tokens file with a bad entry, naming the file and the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mrel-door-tokens-'));
    try {
      const file = join(dir, 'http-tokens.yaml');
      await writeFile(file, 'tokens:\n  - name: ci\n    sha256: not-a-digest-but-the-token\n');
      const { code, stderr } = await start({ HOST: '0.0.0.0', MREL_HTTP_TOKENS_FILE: file });
      expect(code).toBe(1);
      expect(stderr).toContain(`${file}: tokens[0].sha256: sha256 must be 64 hex digits`);
      expect(stderr).not.toContain('not-a-digest-but-the-token');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
