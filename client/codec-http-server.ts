/**
 * The codec server: Temporal's remote codec protocol over the payload codec, so that the Temporal UI and the
 * Temporal CLI (`--codec-endpoint`) show encrypted payloads decrypted, to those who hold the token.
 *
 *   POST …/decode, POST …/encode   body {payloads: [{metadata: {k: base64}, data: base64}]} (protobuf JSON)
 *                                   → 200 the same shape; only the last path segment counts, so it may be mounted
 *                                   under any prefix. An `X-Namespace` header other than the served one: 403.
 *   GET  /login, POST /login        a form that takes the token and sets an HttpOnly session cookie, for the UI.
 *
 * Authentication, one of:
 *   - `Authorization: Bearer <token>`: the Temporal CLI (`--codec-auth 'Bearer …'`), scripts;
 *   - the session cookie from /login: the UI sends it when its codec settings have "Include cross-origin
 *     credentials" on. The UI sends no custom header; its "Pass the user access token" sends its own OIDC access
 *     token (https endpoints only), which is not this token.
 * Tokens are compared as SHA-256 digests in constant time. Browsers are held to the one UI origin: a request from
 * another origin gets 403 and no CORS headers; requests without an Origin (CLI, scripts) need the token all the same.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';

/** Bodies larger than this are refused with 413: Temporal itself refuses payloads past 2 MiB each. */
export const MAX_CODEC_BODY_BYTES = 8 * 1024 * 1024;
export const SESSION_COOKIE = 'mrel-codec-session';
const SESSION_MAX_AGE_SECONDS = 12 * 60 * 60;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The bearer token; also what /login takes. */
  token: string;
  /** Browser origins allowed to call (the Temporal UI's), e.g. http://localhost:8233. */
  origins: readonly string[];
  /** The namespace whose payloads this server opens; a request naming another (X-Namespace) is refused. */
  namespace: string;
  /** Where a refused or failed request is logged (never a payload or a token). */
  log?: (line: string) => void;
}

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
const payloadsBodySchema = z.object({
  payloads: z
    .array(
      z.object({
        metadata: z.record(z.string(), base64).optional(),
        data: base64.optional(),
      }),
    )
    .max(10_000),
});

type JsonPayload = { metadata?: Record<string, string>; data?: string };

export function createCodecServer(options: CodecServerOptions): Server {
  const tokenDigest = sha256(options.token);
  // Derived from the token, so sessions survive a restart and end when the token is rotated; not the token itself.
  const session = createHmac('sha256', options.token).update('mrel codec session v1').digest('base64url');
  const sessionDigest = sha256(session);
  const origins = new Set(options.origins);
  const log = options.log ?? (() => {});

  const authenticated = (req: IncomingMessage): boolean => {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return match?.[1] !== undefined && timingSafeEqual(sha256(match[1]), tokenDigest);
    }
    const cookie = cookieValue(req.headers.cookie, SESSION_COOKIE);
    return cookie !== undefined && timingSafeEqual(sha256(cookie), sessionDigest);
  };

  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`codec server: ${req.method} ${pathOf(req)}: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, { error: 'internal error; see the codec server log' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    const path = pathOf(req);
    // The sign-in page is the codec server's own: its form posts from the server's origin, not the UI's.
    if (path === '/login') return login(req, res);
    if (origin !== undefined && !origins.has(origin)) {
      // No CORS headers: the browser keeps the answer from the page that asked.
      log(`codec server: refused a request from origin ${clip(origin)}`);
      return send(res, 403, { error: `origin ${clip(origin)} is not allowed; start the codec server with --origin` });
    }
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    res.setHeader('Vary', 'Origin');

    const operation = /\/(encode|decode)\/?$/.exec(path)?.[1] as 'encode' | 'decode' | undefined;
    if (req.method === 'OPTIONS') {
      if (operation === undefined) return send(res, 404, { error: 'not found' });
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Namespace');
      res.setHeader('Access-Control-Max-Age', '600');
      // A UI served from a public address may call a codec server on this machine: Chrome asks first.
      if (req.headers['access-control-request-private-network'] === 'true') {
        res.setHeader('Access-Control-Allow-Private-Network', 'true');
      }
      res.writeHead(204).end();
      return;
    }
    if (operation === undefined) return send(res, 404, { error: 'not found: POST /encode or /decode' });
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      return send(res, 405, { error: `${operation} takes POST` });
    }
    if (!authenticated(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="mrel-codec"');
      log(`codec server: refused an unauthenticated ${operation}`);
      return send(res, 401, {
        error: 'authentication required: Authorization: Bearer <token>, or sign in at /login for the UI',
      });
    }
    const namespace = req.headers['x-namespace'];
    if (typeof namespace === 'string' && namespace !== '' && namespace !== options.namespace) {
      return send(res, 403, { error: `namespace ${clip(namespace)} is not served here (only ${options.namespace})` });
    }
    const body = await readBody(req, res);
    if (body === undefined) return;
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return send(res, 400, { error: 'the body is not JSON; send {"payloads": [...]}' });
    }
    const parsed = payloadsBodySchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`);
      return send(res, 400, { error: 'the body is not {"payloads": [...]} in protobuf JSON', problems });
    }
    const payloads = parsed.data.payloads.map(fromJson);
    let out: Payload[];
    try {
      out = await (operation === 'decode' ? options.codec.decode(payloads) : options.codec.encode(payloads));
    } catch (err) {
      log(`codec server: ${operation} failed: ${(err as Error).message}`);
      return send(res, 422, { error: (err as Error).message });
    }
    send(res, 200, { payloads: out.map(toJson) });
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The sign-in page is for the browser's own tab, never for a cross-origin script.
    if (req.headers.origin !== undefined && req.headers.origin !== selfOrigin(req)) {
      return send(res, 403, { error: 'sign in from the codec server page itself' });
    }
    res.setHeader('Content-Security-Policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    if (req.method === 'GET') return page(res, 200, LOGIN_FORM);
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'GET, POST');
      return page(res, 405, '<p>GET or POST /login</p>');
    }
    const body = await readBody(req, res, 16 * 1024);
    if (body === undefined) return;
    const token = new URLSearchParams(body.toString('utf8')).get('token')?.trim() ?? '';
    if (!timingSafeEqual(sha256(token), tokenDigest)) {
      log('codec server: a sign-in with a wrong token');
      return page(res, 401, `<p>That is not the codec server's token.</p>${LOGIN_FORM}`);
    }
    res.setHeader(
      'Set-Cookie',
      `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MAX_AGE_SECONDS}`,
    );
    page(
      res,
      200,
      '<p>Signed in. In the Temporal UI, open the codec server settings, set this server as the endpoint and turn ' +
        'on "Include cross-origin credentials".</p>',
    );
  }

  async function readBody(req: IncomingMessage, res: ServerResponse, limit = MAX_CODEC_BODY_BYTES) {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      send(res, 413, { error: `the body is over ${limit} bytes` });
      req.resume();
      return undefined;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        send(res, 413, { error: `the body is over ${limit} bytes` });
        req.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }
}

const LOGIN_FORM =
  '<form method="post" action="/login"><label>Codec server token <input type="password" name="token" ' +
  'autocomplete="current-password" required></label> <button type="submit">Sign in</button></form>';

function fromJson(p: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v, 'base64');
  return { metadata, data: Buffer.from(p.data ?? '', 'base64') };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) if (v) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(text);
}

function page(res: ServerResponse, status: number, html: string): void {
  res
    .writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
    .end(`<!doctype html><title>modelrelease codec server</title><h1>modelrelease codec server</h1>${html}`);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function pathOf(req: IncomingMessage): string {
  return new URL(req.url ?? '/', 'http://codec.invalid').pathname;
}

function selfOrigin(req: IncomingMessage): string {
  return `http://${req.headers.host ?? ''}`;
}

function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
