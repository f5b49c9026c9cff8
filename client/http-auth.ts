/**
 * Who is calling the HTTP door, and how often. Two kinds of bearer token, configurable together:
 *   - OIDC tokens (JWT) from one issuer, verified against the keys its discovery document publishes (jose's remote
 *     JWKS: cached, refetched for an unknown key id at most every 30 s), for one audience, 30 s of clock tolerance;
 *     the caller is `oidc:<iss>#<sub>`.
 *   - static tokens, kept as SHA-256 digests in config/http-tokens.yaml and compared in constant time; the caller is
 *     `token:<name>`.
 * The caller's approver is whoever lists that identity in approvers.yaml (`approvers.<id>.identities`), re-read when
 * the file changes: a request body never says who approves.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { DEFAULT_CONFIG_DIR, loadApprovers } from '../config/loader';
import type { HttpToken } from '../config/http-tokens';

/** Requests a minute per caller when MREL_HTTP_RATE is unset. */
export const DEFAULT_RATE_PER_MINUTE = 60;

/** What a caller who is no approver may be allowed to do (MREL_HTTP_UNMAPPED); deciding is never among them. */
export const UNMAPPED_ACTIONS = ['start', 'read'] as const;
export type UnmappedAction = (typeof UNMAPPED_ACTIONS)[number];

/** Seconds of clock skew tolerated on exp, nbf and iat. */
const CLOCK_TOLERANCE_S = 30;
/** Only asymmetric signatures: a shared-secret (HS*) or unsigned token can be made by anyone who knows the secret. */
const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
/** Bearer tokens longer than this are refused unread. */
const MAX_TOKEN_CHARS = 8192;
const ISSUER_TIMEOUT_MS = 5_000;
/** After the issuer could not be reached, callers get 503 for this long before it is asked again. */
const ISSUER_RETRY_MS = 10_000;

/** A request the door refuses before any route runs: 401, 403, 429 or 503, with the headers that go with it. */
export class DoorRefusal extends Error {
  constructor(
    readonly status: 401 | 403 | 429 | 503,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'DoorRefusal';
  }
}

/** 401 with the RFC 6750 challenge; `description` never holds the token. */
function unauthorized(error: 'invalid_request' | 'invalid_token', description: string): DoorRefusal {
  return new DoorRefusal(401, 'UNAUTHORIZED', description, {
    'www-authenticate': `Bearer realm="modelrelease", error="${error}", error_description="${description.replace(/["\\]/g, "'")}"`,
  });
}

/** An authenticated caller: who, and the approver that identity is mapped to (if any). */
export interface Caller {
  identity: string;
  approver?: string;
}

export interface DoorAuthOptions {
  /** OIDC bearer tokens from this issuer for this audience. */
  oidc?: { issuer: string; audience: string };
  /** Static tokens (from config/http-tokens.yaml). */
  tokens?: readonly HttpToken[];
  /** Where approvers.yaml is read from (default: the repository's config/, or MREL_CONFIG_DIR). */
  configDir?: string;
  /** What callers mapped to no approver may do (default: nothing). */
  unmapped?: readonly UnmappedAction[];
  /** Where the issuer's outages are logged (default: console.error). */
  log?: (message: string) => void;
}

/** Authenticates requests to the door; build it with createDoorAuth. */
export interface DoorAuth {
  /** What start-up prints: `OIDC tokens from <issuer> for audience <aud>`, `static tokens (<n>)`. */
  readonly methods: string[];
  readonly unmapped: readonly UnmappedAction[];
  /** The caller behind an Authorization header, or a DoorRefusal (401; 503 while the issuer cannot be reached). */
  authenticate(authorization: string | undefined): Promise<Caller>;
}

export function createDoorAuth(options: DoorAuthOptions): DoorAuth {
  const tokens = (options.tokens ?? []).map((t) => ({
    identity: `token:${t.name}`,
    digest: Buffer.from(t.sha256, 'hex'),
  }));
  const log = options.log ?? ((message: string) => console.error(message));
  const oidc = options.oidc ? oidcVerifier(options.oidc.issuer, options.oidc.audience, log) : undefined;
  if (tokens.length === 0 && !oidc) {
    throw new Error('the HTTP door needs an OIDC issuer or at least one static token to authenticate callers');
  }
  const approverOf = approverDirectory(options.configDir);
  const methods = [
    ...(options.oidc ? [`OIDC tokens from ${options.oidc.issuer} for audience ${options.oidc.audience}`] : []),
    ...(tokens.length > 0 ? [`static tokens (${tokens.length})`] : []),
  ];

  async function identify(token: string): Promise<string> {
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let matched: string | undefined;
    // Every entry is compared, so the time taken says nothing of which (or whether one) matched.
    for (const entry of tokens) {
      if (timingSafeEqual(digest, entry.digest) && matched === undefined) matched = entry.identity;
    }
    if (matched !== undefined) return matched;
    if (oidc && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) return oidc(token);
    throw unauthorized('invalid_token', 'the token is not known here');
  }

  return {
    methods,
    unmapped: options.unmapped ?? [],
    async authenticate(authorization) {
      if (authorization === undefined || authorization.trim() === '') {
        throw unauthorized('invalid_request', 'send Authorization: Bearer <token>');
      }
      const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
      if (!match?.[1]) throw unauthorized('invalid_request', 'the Authorization header must be Bearer <token>');
      if (match[1].length > MAX_TOKEN_CHARS) throw unauthorized('invalid_token', 'the token is too long');
      const identity = await identify(match[1]);
      return { identity, approver: (await approverOf())(identity) };
    },
  };
}

/** Verifies OIDC tokens: returns `oidc:<iss>#<sub>`, or throws a DoorRefusal. */
function oidcVerifier(
  issuer: string,
  audience: string,
  log: (message: string) => void,
): (token: string) => Promise<string> {
  let keys: JWTVerifyGetKey | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;
  const unavailable = () =>
    new DoorRefusal(503, 'UNAVAILABLE', `the OIDC issuer ${issuer} cannot be reached to check the token; retry later`, {
      'retry-after': String(ISSUER_RETRY_MS / 1000),
    });

  async function jwks(): Promise<JWTVerifyGetKey> {
    if (keys) return keys;
    if (Date.now() - failedAt < ISSUER_RETRY_MS) throw unavailable();
    try {
      keys = createRemoteJWKSet(await discoverJwksUri(issuer), { timeoutDuration: ISSUER_TIMEOUT_MS });
      return keys;
    } catch (err) {
      failedAt = Date.now();
      log(`mrel-http: OIDC discovery for ${issuer} failed: ${(err as Error).message}`);
      throw unavailable();
    }
  }

  return async (token) => {
    const getKey = await jwks();
    try {
      const { payload } = await jwtVerify(token, getKey, {
        issuer,
        audience,
        algorithms: ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp'],
      });
      // jose accepts an empty subject; an identity needs one.
      if (!payload.sub)
        throw new joseErrors.JWTClaimValidationFailed('"sub" claim is empty', payload, 'sub', 'missing');
      return `oidc:${payload.iss}#${payload.sub}`;
    } catch (err) {
      throw tokenRefusal(err, unavailable, log);
    }
  };
}

/** What went wrong with a token, in words a caller can act on (401), or 503 when the issuer's keys were not to be had. */
function tokenRefusal(err: unknown, unavailable: () => DoorRefusal, log: (message: string) => void): DoorRefusal {
  if (err instanceof joseErrors.JWTExpired) return unauthorized('invalid_token', 'the token has expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const what: Record<string, string> = {
      aud: 'the token is for another audience',
      iss: 'the token is from another issuer',
      nbf: 'the token is not valid yet',
      sub: 'the token has no subject (sub)',
      exp: 'the token has no expiry (exp)',
    };
    return unauthorized('invalid_token', what[err.claim] ?? `the token's ${err.claim} claim is invalid`);
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return unauthorized('invalid_token', 'the token is signed by a key the issuer does not publish');
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return unauthorized('invalid_token', "the token's signature does not verify");
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return unauthorized('invalid_token', 'the token is not signed with an accepted algorithm (RS, PS, ES or EdDSA)');
  }
  if (
    err instanceof joseErrors.JWSInvalid ||
    err instanceof joseErrors.JWTInvalid ||
    err instanceof joseErrors.JWKInvalid
  ) {
    return unauthorized('invalid_token', 'the token is not a valid signed JWT');
  }
  // The key set could not be fetched or read (timeout, refused, not JSON): nothing is known of the token yet.
  log(`mrel-http: the OIDC issuer's keys could not be fetched: ${(err as Error).message}`);
  return unavailable();
}

/** Reads the issuer's discovery document and returns its jwks_uri (checked to be the issuer it claims to be). */
async function discoverJwksUri(issuer: string): Promise<URL> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(ISSUER_TIMEOUT_MS) });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (doc.issuer !== issuer)
    throw new Error(`${url} names another issuer; MREL_HTTP_OIDC_ISSUER must be exactly its "issuer"`);
  if (typeof doc.jwks_uri !== 'string') throw new Error(`${url} has no jwks_uri`);
  const problem = issuerUrlProblem(doc.jwks_uri);
  if (problem) throw new Error(`${url}: jwks_uri ${problem}`);
  return new URL(doc.jwks_uri);
}

/** Why a URL cannot be an issuer's (or its key set's), or undefined: https, or http on loopback only. */
export function issuerUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.search || url.hash) return 'must have no query or fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return undefined;
  return 'must be https:// (http:// only on 127.0.0.1 or ::1)';
}

/** identity → approver id from approvers.yaml, re-read when the file changes. */
function approverDirectory(configDir = DEFAULT_CONFIG_DIR): () => Promise<(identity: string) => string | undefined> {
  let cached: { stamp: string; lookup: (identity: string) => string | undefined } | undefined;
  return async () => {
    const stamp = await stat(join(configDir, 'approvers.yaml')).then(
      (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
      () => '',
    );
    if (cached && cached.stamp === stamp && stamp !== '') return cached.lookup;
    const approvers = await loadApprovers(configDir);
    const byIdentity = new Map<string, string>();
    for (const [id, approver] of Object.entries(approvers.approvers)) {
      for (const identity of approver.identities ?? []) byIdentity.set(identity, id);
    }
    cached = { stamp, lookup: (identity) => byIdentity.get(identity) };
    return cached.lookup;
  };
}

/** Whether a host name or address is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}

/**
 * Token buckets per caller: `perMinute` requests a minute, in bursts of up to `perMinute`. Keeps at most `maxKeys`
 * buckets (the least recently used go first), so that many addresses cannot fill the memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {
    if (!Number.isInteger(perMinute) || perMinute < 1) throw new Error('the rate limit must be a whole number ≥ 1');
  }

  /** Seconds until `key` may send again, or 0 when it may now. */
  wait(key: string): number {
    const level = this.level(key);
    return level >= 1 ? 0 : Math.ceil(((1 - level) * 60) / this.perMinute);
  }

  /** Takes one request from `key`'s bucket: 0 when it may go, otherwise the seconds to wait (nothing taken). */
  take(key: string): number {
    const wait = this.wait(key);
    if (wait > 0) return wait;
    const level = this.level(key);
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: level - 1, at: this.now() });
    for (const oldest of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break;
      this.buckets.delete(oldest);
    }
    return 0;
  }

  private level(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return this.perMinute;
    const refilled = ((this.now() - bucket.at) / 60_000) * this.perMinute;
    return Math.min(this.perMinute, bucket.tokens + Math.max(0, refilled));
  }
}

/** The door's settings as the environment gives them (MREL_HTTP_*); errors name the variable and say what to do. */
export interface DoorAuthSettings {
  oidc?: { issuer: string; audience: string };
  /** The tokens file to read, and whether it was named explicitly (then it must exist). */
  tokensFile: { path: string; explicit: boolean };
  ratePerMinute: number;
  unmapped: UnmappedAction[];
}

export function doorAuthSettings(env: NodeJS.ProcessEnv, configDir: string): DoorAuthSettings {
  if (env.MREL_HTTP_TOKEN !== undefined) {
    throw new Error(
      'environment variable MREL_HTTP_TOKEN is no longer read: put its digest (printf %s "$MREL_HTTP_TOKEN" | sha256sum) in config/http-tokens.yaml as tokens: [{name: <name>, sha256: <hex>}], map token:<name> under approvers.<id>.identities in approvers.yaml if it decides, and unset MREL_HTTP_TOKEN',
    );
  }
  const issuer = env.MREL_HTTP_OIDC_ISSUER?.trim() || undefined;
  const audience = env.MREL_HTTP_OIDC_AUDIENCE?.trim() || undefined;
  if ((issuer === undefined) !== (audience === undefined)) {
    throw new Error(
      'environment variables MREL_HTTP_OIDC_ISSUER and MREL_HTTP_OIDC_AUDIENCE go together: set both (the issuer URL and the audience its tokens are for) or neither',
    );
  }
  if (issuer !== undefined) {
    const problem = issuerUrlProblem(issuer);
    if (problem) throw new Error(`environment variable MREL_HTTP_OIDC_ISSUER ${problem}`);
  }
  const file = env.MREL_HTTP_TOKENS_FILE?.trim();
  const rate = env.MREL_HTTP_RATE?.trim();
  let ratePerMinute = DEFAULT_RATE_PER_MINUTE;
  if (rate) {
    ratePerMinute = Number(rate);
    if (!Number.isInteger(ratePerMinute) || ratePerMinute < 1 || ratePerMinute > 1_000_000) {
      throw new Error(
        `environment variable MREL_HTTP_RATE must be a whole number of requests a minute per caller, 1 to 1000000 (got "${rate.slice(0, 20)}")`,
      );
    }
  }
  const unmappedRaw = env.MREL_HTTP_UNMAPPED?.trim() || 'none';
  const unmapped = unmappedRaw === 'none' ? [] : unmappedRaw.split(',').map((s) => s.trim());
  const unknown = unmapped.filter((a) => !(UNMAPPED_ACTIONS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    throw new Error(
      `environment variable MREL_HTTP_UNMAPPED must be none or a comma-separated list of ${UNMAPPED_ACTIONS.join(', ')} (what callers who are no approver may do)`,
    );
  }
  return {
    oidc: issuer !== undefined && audience !== undefined ? { issuer, audience } : undefined,
    tokensFile: file ? { path: file, explicit: true } : { path: join(configDir, 'http-tokens.yaml'), explicit: false },
    ratePerMinute,
    unmapped: unmapped as UnmappedAction[],
  };
}

/** Refuses to serve without authentication anywhere but loopback, naming the settings that turn it on. */
export function requireAuthOffLoopback(host: string, auth: DoorAuth | undefined): void {
  if (auth || isLoopbackHost(host)) return;
  throw new Error(
    `refusing to serve on ${host} without authentication: set MREL_HTTP_OIDC_ISSUER and MREL_HTTP_OIDC_AUDIENCE (OIDC bearer tokens), or MREL_HTTP_TOKENS_FILE (or create config/http-tokens.yaml) for static tokens; or set HOST=127.0.0.1 for local use`,
  );
}
