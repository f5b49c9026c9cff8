/**
 * The HTTP start endpoint: the start API (client/release-client.ts) over JSON for automation that cannot run
 * TypeScript or the `mrel` CLI (CI pipelines, registries' webhooks).
 *
 *   POST /releases                    body: ReleaseRequest → 201 started, 200 when it already existed
 *   GET  /releases?model=&stage=&environment=&limit=   → 200 ReleaseSummary[]
 *   GET  /releases/<id>                                → 200 ReleaseStatus
 *   POST /releases/<id>/decisions     body: {approver?, decision: approve|reject, comment?, signature…?} → 200
 *                                     DecideOutcome
 *   POST /releases/<id>/rollout-decisions  body: {approver?, decision: rollback|keep, comment?} → 200 (counted or refused)
 *   GET  /healthz                                      → 200 (never needs a token)
 *
 * Who calls (client/http-auth.ts): every other route needs `Authorization: Bearer <token>`, an OIDC token or a static
 * one, and the decision counts as the approver that approvers.yaml maps the caller to; a body `approver` that names
 * someone else is refused (403), and a caller mapped to no approver may only start and read, where MREL_HTTP_UNMAPPED
 * says so. Without `auth` the door is open for local use: it serves loopback only, and the body names the approver
 * (as `mrel approve --as` does). Each caller gets `ratePerMinute` requests a minute, counted by identity, and failed
 * authentications by remote address (429 with Retry-After).
 *
 * A release id contains slashes (`release/<model>/<version>/<environment>`); it may be sent raw or URL-encoded.
 * Errors answer `{error, code, problems}`: 400 INVALID_REQUEST, 401 UNAUTHORIZED (with WWW-Authenticate), 403
 * FORBIDDEN, 404 NOT_FOUND, 405, 409 RELEASE_ENDED, 413, 415, 429 RATE_LIMITED, 503 UNAVAILABLE or
 * WORKER_UNAVAILABLE (with Retry-After), 500 INTERNAL (details only in the server log). A client too slow with its
 * headers or body (see HttpTimeouts) gets 408, headers over MAX_HEADER_BYTES 431, a request that is not HTTP 400, in
 * the same JSON shape, and the connection closes.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isGrpcServiceError, ServiceError, type Client } from '@temporalio/client';
import { zodProblems } from '../contract/problems';
import { z } from 'zod';
import { decideInputSchema, modelNameSchema, modelRefSchema, rolloutDecisionInputSchema } from '../contract/types';
import {
  DEFAULT_RATE_PER_MINUTE,
  DoorRefusal,
  isLoopbackHost,
  RateLimiter,
  type Caller,
  type DoorAuth,
  type UnmappedAction,
} from './http-auth';
import { decide, decideRollout, getRelease, listReleases, ReleaseClientError, startRelease } from './release-client';

/** Request bodies larger than this are refused with 413 before they are parsed. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Request heads (request line and headers) larger than this are answered 431 by Node before any route runs. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Problems listed per error answer (each cut to PROBLEM_CHARS): a hostile body cannot make the answer huge. */
const MAX_PROBLEMS = 50;
const PROBLEM_CHARS = 500;

/** Seconds a caller is asked to wait before retrying a 503. */
const RETRY_AFTER_SECONDS = '10';

/**
 * How long a client may take to send its request, so that slow or stalled connections cannot hold sockets (Node's
 * own defaults let a slow body hold one for minutes). Such a client gets 408 and the connection closes.
 */
export interface HttpTimeouts {
  /** Until the request line and headers are in. Default 10 s. */
  headersMs?: number;
  /** Until the whole request, body included, is in (at least headersMs). Default 30 s. */
  requestMs?: number;
  /** An idle keep-alive connection is closed after this. Default 5 s. */
  keepAliveMs?: number;
}

export const DEFAULT_HTTP_TIMEOUTS: Required<HttpTimeouts> = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 5_000,
};

/** What the HTTP door needs: a connected Temporal client, and where releases go and are validated. */
export interface HttpServerDeps {
  client: Client;
  /** Task queue of the release worker (default: the production queue). */
  taskQueue?: string;
  /** config/ directory that requests are validated against (default: the repository's, or MREL_CONFIG_DIR). */
  configDir?: string;
  /**
   * Who may call (client/http-auth.ts createDoorAuth). Without it the door is open for local use and refuses to
   * listen anywhere but loopback.
   */
  auth?: DoorAuth;
  /** Requests a minute per caller (default DEFAULT_RATE_PER_MINUTE). */
  ratePerMinute?: number;
  /** The rate limiter's clock (default Date.now). */
  now?: () => number;
  /** Where unexpected errors are logged (their details never reach the caller). Default: console.error. */
  logError?: (message: string, err: unknown) => void;
  /** Limits on slow clients (defaults: DEFAULT_HTTP_TIMEOUTS). */
  timeouts?: HttpTimeouts;
}

/** A failure answered with its own HTTP status, raised by the door itself rather than the start API. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: string[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

const STATUS_BY_CODE: Record<ReleaseClientError['code'], number> = {
  INVALID_REQUEST: 400,
  NOT_FOUND: 404,
  RELEASE_ENDED: 409,
  UNAVAILABLE: 503,
  WORKER_UNAVAILABLE: 503,
};

/** gRPC status codes that mean "Temporal cannot answer now, try again": UNAVAILABLE, DEADLINE_EXCEEDED. */
const GRPC_RETRYABLE = new Set([14, 4]);

const decisionBodySchema = decideInputSchema.strict();
const rolloutBodySchema = rolloutDecisionInputSchema
  .extend({ decision: z.enum(['rollback', 'keep'], { message: 'decision must be rollback or keep' }) })
  .strict();
// Behind authentication the approver is the caller's: a body may leave it out.
const authDecisionBodySchema = decisionBodySchema.partial({ approver: true });
const authRolloutBodySchema = rolloutBodySchema.partial({ approver: true });

/** An open door's caller (no auth: loopback only), or an authenticated one. */
type DoorCaller = { open: true } | ({ open: false } & Caller);

/**
 * Builds the HTTP server of the start API (not yet listening: call `listen`). Starting the same release twice
 * answers the existing one (200, `started: false`), so callers may retry a POST safely.
 */
export function createHttpServer(deps: HttpServerDeps): Server {
  const auth = deps.auth;
  const limiter = new RateLimiter(deps.ratePerMinute ?? DEFAULT_RATE_PER_MINUTE, deps.now);
  const logError = deps.logError ?? ((message, err) => console.error(message, err));

  const timeouts = { ...DEFAULT_HTTP_TIMEOUTS, ...deps.timeouts };
  const options = {
    headersTimeout: timeouts.headersMs,
    requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
    keepAliveTimeout: timeouts.keepAliveMs,
    // Node enforces the two timeouts above only when it checks its connections (every 30 s by default).
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(timeouts.headersMs / 4))),
    maxHeaderSize: MAX_HEADER_BYTES,
  };
  /** The response a connection is writing, if any: a client error must not cut into one already under way. */
  const responding = new WeakMap<Duplex, ServerResponse>();
  const server = createServer(options, (req, res) => {
    responding.set(req.socket, res);
    res.once('close', () => {
      if (responding.get(req.socket) === res) responding.delete(req.socket);
    });
    void handle(req, res).catch((err: unknown) => {
      if (err instanceof DoorRefusal) {
        return sendError(res, err.status, err.code, err.message, [], err.headers);
      }
      if (err instanceof HttpError) return sendError(res, err.status, err.code, err.message, err.problems, err.headers);
      if (err instanceof ReleaseClientError) {
        const status = STATUS_BY_CODE[err.code];
        const headers: Record<string, string> = status === 503 ? { 'retry-after': RETRY_AFTER_SECONDS } : {};
        return sendError(res, status, err.code, err.message, err.problems, headers);
      }
      if (temporalUnavailable(err)) {
        logError(`${req.method} ${req.url}: Temporal unavailable`, err);
        return sendError(res, 503, 'UNAVAILABLE', 'Temporal cannot be reached right now; retry later', [], {
          'retry-after': RETRY_AFTER_SECONDS,
        });
      }
      logError(`${req.method} ${req.url}: unexpected error`, err);
      sendError(res, 500, 'INTERNAL', 'internal error (see the server log)');
    });
  });
  // Requests Node refuses before any route runs (not HTTP, headers too large, too slow) get the same JSON shape.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.writable && err.code !== 'ECONNRESET' && !responding.get(socket)?.headersSent) {
      const [status, code, message] = clientErrorAnswer(err, timeouts);
      socket.write(rawErrorResponse(status, code, message));
    }
    socket.destroy();
  });

  // An open door must never be reachable from elsewhere, whoever called listen().
  server.on('listening', () => {
    const address = server.address();
    if (auth || address === null || typeof address !== 'object' || isLoopbackHost(address.address)) return;
    server.close();
    server.emit(
      'error',
      new Error(
        `refusing to serve on ${address.address} without authentication: pass auth (OIDC or static tokens), or listen on 127.0.0.1`,
      ),
    );
  });

  /** Who is calling, counted against their rate: by identity once known, by remote address until then. */
  async function admit(req: IncomingMessage): Promise<DoorCaller> {
    const byAddress = `address:${req.socket.remoteAddress ?? ''}`;
    if (!auth) {
      limit(limiter.take(byAddress));
      return { open: true };
    }
    // An address that keeps failing is turned away before its next guess is even checked.
    limit(limiter.wait(byAddress));
    let caller: Caller;
    try {
      caller = await auth.authenticate(req.headers.authorization);
    } catch (err) {
      if (err instanceof DoorRefusal && err.status === 401) limiter.take(byAddress);
      throw err;
    }
    limit(limiter.take(`caller:${caller.identity}`));
    return { open: false, ...caller };
  }

  function limit(waitSeconds: number): void {
    if (waitSeconds === 0) return;
    throw new DoorRefusal(
      429,
      'RATE_LIMITED',
      `too many requests from this caller (at most ${limiter.perMinute} a minute); retry in ${waitSeconds} s`,
      { 'retry-after': String(waitSeconds) },
    );
  }

  /** Refuses a caller who is no approver unless MREL_HTTP_UNMAPPED lets such callers do `action`. */
  function permit(caller: DoorCaller, action: UnmappedAction): void {
    if (caller.open || caller.approver !== undefined || auth?.unmapped.includes(action)) return;
    throw new DoorRefusal(
      403,
      'FORBIDDEN',
      `${caller.identity} is mapped to no approver in approvers.yaml (approvers.<id>.identities), and callers who are no approver may not ${action === 'start' ? 'start releases' : 'read releases'} here (MREL_HTTP_UNMAPPED)`,
    );
  }

  /** The approver a decision counts for: the caller's own; a body naming anyone else is refused. */
  function approverFor(caller: DoorCaller, named: string | undefined): string {
    // An open door's body schema requires the approver: it is the only word on who decides there.
    if (caller.open) return named ?? '';
    if (caller.approver === undefined) {
      throw new DoorRefusal(
        403,
        'FORBIDDEN',
        `${caller.identity} is mapped to no approver, so it may not decide: list it under approvers.<id>.identities in approvers.yaml`,
      );
    }
    if (named !== undefined && named !== caller.approver) {
      throw new DoorRefusal(
        403,
        'FORBIDDEN',
        `the body names approver "${named}", but ${caller.identity} is approver "${caller.approver}": leave approver out, or send your own`,
      );
    }
    return caller.approver;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/healthz') {
      allow(req, ['GET']);
      return send(res, 200, { status: 'ok' });
    }
    const caller = await admit(req);

    if (path === '/releases') {
      if (allow(req, ['GET', 'POST']) === 'GET') {
        permit(caller, 'read');
        return send(res, 200, await listReleases(deps.client, filter(url)));
      }
      permit(caller, 'start');
      const started = await startRelease(deps.client, await readJson(req), {
        taskQueue: deps.taskQueue,
        configDir: deps.configDir,
      });
      const location = `/releases/${encodeURIComponent(started.releaseId)}`;
      return send(res, started.started ? 201 : 200, started, { location });
    }

    if (path.startsWith('/releases/')) {
      const rest = path.slice('/releases/'.length);
      if (req.method === 'POST' && rest.endsWith('/rollout-decisions')) {
        const releaseId = decodeId(rest.slice(0, -'/rollout-decisions'.length));
        const body = (caller.open ? rolloutBodySchema : authRolloutBodySchema).safeParse(await readJson(req));
        if (!body.success) {
          throw new HttpError(400, 'INVALID_REQUEST', 'the rollout decision is invalid', zodProblems(body.error));
        }
        const { decision, approver, ...input } = body.data;
        const decided = { ...input, approver: approverFor(caller, approver) };
        return send(res, 200, await decideRollout(deps.client, releaseId, decision, decided));
      }
      if (req.method === 'POST') {
        if (!rest.endsWith('/decisions')) throw notFound(path);
        const releaseId = decodeId(rest.slice(0, -'/decisions'.length));
        const body = (caller.open ? decisionBodySchema : authDecisionBodySchema).safeParse(await readJson(req));
        if (!body.success) {
          throw new HttpError(400, 'INVALID_REQUEST', 'the decision is invalid', zodProblems(body.error));
        }
        return send(
          res,
          200,
          await decide(deps.client, releaseId, { ...body.data, approver: approverFor(caller, body.data.approver) }),
        );
      }
      allow(req, ['GET']);
      permit(caller, 'read');
      return send(res, 200, await getRelease(deps.client, decodeId(rest)));
    }

    throw notFound(path);
  }

  return server;
}

function clientErrorAnswer(err: NodeJS.ErrnoException, timeouts: Required<HttpTimeouts>): [number, string, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'HEADERS_TOO_LARGE', `the request headers are larger than ${MAX_HEADER_BYTES} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        408,
        'REQUEST_TIMEOUT',
        `the request did not arrive in time: send the headers within ${timeouts.headersMs} ms and the whole request within ${timeouts.requestMs} ms`,
      ];
    default:
      return [400, 'BAD_REQUEST', 'the request is not valid HTTP/1.1'];
  }
}

/** A whole HTTP response, written straight to a socket that has no ServerResponse (or whose response never began). */
function rawErrorResponse(status: number, code: string, error: string): string {
  const text = JSON.stringify({ error, code, problems: [] });
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(text)}`,
    'cache-control: no-store',
    'connection: close',
    '',
    text,
  ].join('\r\n');
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  error: string,
  problems: string[] = [],
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const listed = problems
    .slice(0, MAX_PROBLEMS)
    .map((p) => (p.length > PROBLEM_CHARS ? `${p.slice(0, PROBLEM_CHARS)}…` : p));
  if (problems.length > MAX_PROBLEMS) listed.push(`… and ${problems.length - MAX_PROBLEMS} more`);
  send(res, status, { error, code, problems: listed }, headers);
}

function notFound(path: string): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no route for ${path} (see GET /releases, POST /releases)`);
}

/** Answers 405 unless the method is one of `methods`; returns the method otherwise. */
function allow(req: IncomingMessage, methods: string[]): string {
  const method = req.method ?? '';
  if (!methods.includes(method)) {
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here (use ${methods.join(' or ')})`, [], {
      allow: methods.join(', '),
    });
  }
  return method;
}

function decodeId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'INVALID_REQUEST', 'the release id in the path is not valid URL encoding');
  }
  if (id.length === 0) throw new HttpError(404, 'NOT_FOUND', 'give a release id: /releases/<id>');
  // Only ids that a release can have go on to Temporal; the caller's text is not echoed back.
  const [kind, model, version, environment, ...rest] = id.split('/');
  const isReleaseId =
    kind === 'release' &&
    rest.length === 0 &&
    modelNameSchema.safeParse(model).success &&
    modelRefSchema.shape.version.safeParse(version).success &&
    modelNameSchema.safeParse(environment).success;
  if (!isReleaseId) {
    throw new HttpError(404, 'NOT_FOUND', 'no such release: ids look like release/<model>/<version>/<environment>');
  }
  return id;
}

/** What each filter of GET /releases must look like, and how to say so. */
const FILTERS = {
  model: {
    valid: (v: string) => modelNameSchema.safeParse(v).success,
    expected: 'a model name (lower-case letters, digits, ".", "_", "-"; at most 63)',
  },
  stage: {
    valid: (v: string) => /^[a-z][a-z+-]{0,62}$/.test(v),
    expected: 'a release stage such as approval, released or scan+license',
  },
  environment: {
    valid: (v: string) => modelNameSchema.safeParse(v).success,
    expected: 'an environment name (lower-case letters, digits, ".", "_", "-"; at most 63)',
  },
};

function filter(url: URL): { model?: string; stage?: string; environment?: string; limit?: number } {
  const out: { model?: string; stage?: string; environment?: string; limit?: number } = {};
  const problems: string[] = [];
  for (const key of ['model', 'stage', 'environment'] as const) {
    const value = url.searchParams.get(key);
    if (!value) continue;
    if (FILTERS[key].valid(value)) out[key] = value;
    else problems.push(`${key} must be ${FILTERS[key].expected}`);
  }
  const limit = url.searchParams.get('limit');
  if (limit !== null) {
    const n = Number(limit);
    if (Number.isInteger(n) && n >= 1 && n <= 1000) out.limit = n;
    else problems.push(`limit must be an integer from 1 to 1000 (got "${limit.slice(0, 20)}")`);
  }
  if (problems.length > 0) throw new HttpError(400, 'INVALID_REQUEST', 'the query is invalid', problems);
  return out;
}

function temporalUnavailable(err: unknown): boolean {
  const grpc = err instanceof ServiceError ? err.cause : err;
  return isGrpcServiceError(grpc) && GRPC_RETRYABLE.has(grpc.code);
}

/** Reads a JSON body of at most MAX_BODY_BYTES. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'];
  // Requiring a JSON media type also keeps browsers from posting cross-site forms here without a CORS preflight.
  if (!type || !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `send a JSON body with Content-Type: application/json`, [
      `content-type is ${type ? `"${type}"` : 'missing'}`,
    ]);
  }
  const text = await readBody(req);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'INVALID_REQUEST', 'the request body is not valid JSON', [
      `body: ${(err as Error).message}`,
    ]);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  const tooLarge = (): HttpError =>
    new HttpError(413, 'PAYLOAD_TOO_LARGE', `the request body is larger than ${MAX_BODY_BYTES} bytes`, [], {
      connection: 'close',
    });
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Keep draining (and dropping) what is in flight so the caller can read the 413; the connection closes after.
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // A client that went away (or that Node cut off for being too slow) gets no answer; nothing to log either.
    const cutOff = (): void =>
      reject(new HttpError(400, 'REQUEST_ABORTED', 'the request body ended before its declared length'));
    req.once('error', cutOff);
    req.once('close', () => {
      if (!req.complete) cutOff();
    });
  });
}
