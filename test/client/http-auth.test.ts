/**
 * The door's authentication without Temporal: the tokens file, the settings from the environment, loopback, the rate
 * limiter on a clock the test moves, and static tokens mapped through approvers.yaml.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDoorAuth,
  doorAuthSettings,
  DoorRefusal,
  isLoopbackHost,
  RateLimiter,
  requireAuthOffLoopback,
} from '../../client/http-auth';
import { parseHttpTokens } from '../../config/http-tokens';
import { approversWithIdentities, sha256Hex } from './http-auth-fixtures';

const FILE = 'config/http-tokens.yaml';

describe('config/http-tokens.yaml', () => {
  it('loads names and digests (hex in either case)', () => {
    const digest = sha256Hex('s3cret');
    expect(parseHttpTokens({ tokens: [{ name: 'ci', sha256: digest.toUpperCase() }] }, FILE)).toEqual([
      { name: 'ci', sha256: digest },
    ]);
  });

  it('names each field at fault and never quotes a value (it may be the token itself)', () => {
    const problems = (data: unknown) => {
      try {
        parseHttpTokens(data, FILE);
      } catch (err) {
        return (err as Error & { problems: string[] }).problems;
      }
      throw new Error('accepted');
    };
    expect(problems({ tokens: [{ name: 'ci', sha256: 'ghp_pastedTheTokenItself' }] })).toEqual([
      'tokens[0].sha256: sha256 must be 64 hex digits, the digest of the token (printf %s "$TOKEN" | sha256sum), never the token itself',
    ]);
    expect(problems({ tokens: [{ name: 'ci', sha256: `${sha256Hex('x')}  -` }] })).toEqual([
      expect.stringMatching(/^tokens\[0\]\.sha256: .* without the " {2}-" that sha256sum prints/),
    ]);
    expect(problems({ tokens: [{ sha256: sha256Hex('x'), extra: 1 }] })).toEqual([
      expect.stringMatching(/^tokens\[0\]\.name: name is required/),
      expect.stringMatching(/^tokens\[0\]: .*extra/),
    ]);
    expect(
      problems({
        tokens: [
          { name: 'ci', sha256: sha256Hex('a') },
          { name: 'ci', sha256: sha256Hex('b') },
          { name: 'ops', sha256: sha256Hex('a') },
        ],
      }),
    ).toEqual([
      'tokens[1].name is the same as tokens[0].name; names are unique',
      'tokens[2].sha256 is the same as tokens[0].sha256; give each name its own token',
    ]);
  });
});

describe('settings', () => {
  const settings = (env: Record<string, string>) => doorAuthSettings(env, '/etc/mrel');

  it('reads the MREL_HTTP_* variables, with the tokens file defaulting to the config directory', () => {
    expect(settings({})).toEqual({
      tokensFile: { path: '/etc/mrel/http-tokens.yaml', explicit: false },
      ratePerMinute: 60,
      unmapped: [],
      oidc: undefined,
    });
    expect(
      settings({
        MREL_HTTP_OIDC_ISSUER: 'https://issuer.example.com',
        MREL_HTTP_OIDC_AUDIENCE: 'modelrelease',
        MREL_HTTP_TOKENS_FILE: '/run/secrets/tokens.yaml',
        MREL_HTTP_RATE: '120',
        MREL_HTTP_UNMAPPED: 'start,read',
      }),
    ).toEqual({
      oidc: { issuer: 'https://issuer.example.com', audience: 'modelrelease' },
      tokensFile: { path: '/run/secrets/tokens.yaml', explicit: true },
      ratePerMinute: 120,
      unmapped: ['start', 'read'],
    });
  });

  it('refuses settings that would leave a hole, naming the variable', () => {
    expect(() => settings({ MREL_HTTP_OIDC_ISSUER: 'https://issuer.example.com' })).toThrow(
      /MREL_HTTP_OIDC_ISSUER and MREL_HTTP_OIDC_AUDIENCE go together/,
    );
    expect(() =>
      settings({ MREL_HTTP_OIDC_ISSUER: 'http://issuer.example.com', MREL_HTTP_OIDC_AUDIENCE: 'a' }),
    ).toThrow(/MREL_HTTP_OIDC_ISSUER must be https:\/\//);
    expect(() => settings({ MREL_HTTP_RATE: '0' })).toThrow(/MREL_HTTP_RATE must be a whole number/);
    expect(() => settings({ MREL_HTTP_UNMAPPED: 'start,decide' })).toThrow(/MREL_HTTP_UNMAPPED must be none or/);
    expect(() => settings({ MREL_HTTP_TOKEN: 'old-secret' })).toThrow(/MREL_HTTP_TOKEN is no longer read/);
  });

  it('lets an open door serve loopback only', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '127.0.0.1.example.com']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
    expect(() => requireAuthOffLoopback('0.0.0.0', undefined)).toThrow(
      /MREL_HTTP_OIDC_ISSUER and MREL_HTTP_OIDC_AUDIENCE .* MREL_HTTP_TOKENS_FILE/,
    );
    expect(() => requireAuthOffLoopback('127.0.0.1', undefined)).not.toThrow();
  });
});

describe('RateLimiter', () => {
  it('lets a caller send its rate in a burst, then asks it to wait until the bucket refills', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter(2, () => now);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 30]);
    expect(limiter.take('b')).toBe(0);
    now += 29_000;
    expect(limiter.wait('a')).toBe(1);
    now += 1_000;
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(30);
  });

  it('keeps at most maxKeys buckets, forgetting the least recently used', () => {
    const limiter = new RateLimiter(1, () => 0, 2);
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    // "a" was forgotten, so it starts with a full bucket again; "c" was not.
    expect(limiter.wait('a')).toBe(0);
    expect(limiter.wait('c')).toBe(60);
  });
});

describe('static tokens', () => {
  let approversDir: string;
  beforeAll(async () => {
    approversDir = await approversWithIdentities({ amara: ['token:amara-ci'] });
  });
  afterAll(async () => {
    if (approversDir) await rm(approversDir, { recursive: true, force: true });
  });

  it('maps a known token to its identity and approver, and refuses anything else with a 401 that names no token', async () => {
    const auth = createDoorAuth({
      tokens: [
        { name: 'amara-ci', sha256: sha256Hex('amara-secret') },
        { name: 'ci', sha256: sha256Hex('ci-secret') },
      ],
      configDir: approversDir,
    });
    expect(await auth.authenticate('Bearer amara-secret')).toEqual({ identity: 'token:amara-ci', approver: 'amara' });
    expect(await auth.authenticate('bearer\tci-secret ')).toEqual({ identity: 'token:ci', approver: undefined });
    for (const header of [undefined, '', 'Basic YW1hcmE6eA==', 'Bearer', 'Bearer amara-secretX', 'amara-secret']) {
      const refusal = await auth.authenticate(header).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal, String(header)).toBeInstanceOf(DoorRefusal);
      expect((refusal as DoorRefusal).status).toBe(401);
      expect((refusal as DoorRefusal).headers['www-authenticate']).toMatch(/^Bearer realm="modelrelease", error="/);
      expect(JSON.stringify(refusal)).not.toContain('secret');
    }
  });

  it('follows approvers.yaml as it changes: an identity added there is that approver from the next request', async () => {
    const auth = createDoorAuth({
      tokens: [{ name: 'boris-ci', sha256: sha256Hex('boris-secret') }],
      configDir: approversDir,
    });
    expect((await auth.authenticate('Bearer boris-secret')).approver).toBeUndefined();
    const file = join(approversDir, 'approvers.yaml');
    await writeFile(
      file,
      (await readFile(file, 'utf8')).replace(/(  boris:\n)/, "$1    identities: ['token:boris-ci']\n"),
    );
    expect((await auth.authenticate('Bearer boris-secret')).approver).toBe('boris');
  });

  it('cannot be built with nothing to authenticate by', () => {
    expect(() => createDoorAuth({ tokens: [] })).toThrow(/needs an OIDC issuer or at least one static token/);
  });
});

describe('OIDC issuer out of reach', () => {
  it('answers 503 with Retry-After (the token may well be good), logs why, and does not ask again at once', async () => {
    // A port that was just free: nothing answers there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const logged: string[] = [];
    const auth = createDoorAuth({
      oidc: { issuer: `http://127.0.0.1:${port}`, audience: 'modelrelease' },
      log: (message) => logged.push(message),
    });
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    for (let i = 0; i < 2; i++) {
      const refusal = (await auth.authenticate(`Bearer ${token}`).catch((err: unknown) => err)) as DoorRefusal;
      expect(refusal).toBeInstanceOf(DoorRefusal);
      expect(refusal.status).toBe(503);
      expect(refusal.headers['retry-after']).toMatch(/^\d+$/);
      expect(refusal.message).toMatch(/the OIDC issuer http:\/\/127\.0\.0\.1:\d+ cannot be reached/);
    }
    expect(logged).toEqual([expect.stringMatching(/^mrel-http: OIDC discovery for http:\/\/127\.0\.0\.1:\d+ failed/)]);
  });
});
