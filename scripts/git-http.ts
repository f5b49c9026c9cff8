/**
 * Git's smart HTTP protocol on 127.0.0.1, served by git's own `git http-backend` as a CGI program: what Flux's
 * source-controller fetches the GitOps repository from in tests and in `npm run cluster` (it speaks HTTP(S) and SSH,
 * not file paths). Bare repositories under `root` are served; pushing over HTTP works for a repository whose config
 * says `http.receivepack=true` (git refuses anonymous pushes otherwise).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve, sep } from 'node:path';

/** Where Debian (and most distributions) install git's CGI program. */
export const GIT_HTTP_BACKEND = process.env.GIT_HTTP_BACKEND ?? '/usr/lib/git-core/git-http-backend';

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>/<repoName>`: the URL a client clones, fetches and pushes. */
  url(repoName: string): string;
  port: number;
  stop(): Promise<void>;
}

export interface GitHttpOptions {
  /** The folder holding the bare repositories (`<root>/<name>.git`). */
  root: string;
  /** When given, only these repositories (names relative to `root`) are served; any other path is a 404. */
  repos?: string[];
  /** 0 (default): any free port. */
  port?: number;
}

/** Starts the server; resolves once it listens. */
export async function startGitHttp(options: GitHttpOptions): Promise<GitHttpServer> {
  if (!existsSync(GIT_HTTP_BACKEND)) {
    throw new Error(
      `git http-backend is not at ${GIT_HTTP_BACKEND}: install git (Debian package git) or set GIT_HTTP_BACKEND to its path`,
    );
  }
  const root = resolve(options.root);
  const allowed = options.repos?.map((r) => r.replace(/^\/+|\/+$/g, ''));
  const server = createServer((req, res) => serve(root, allowed, req, res));
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (repoName) => `http://127.0.0.1:${port}/${repoName.replace(/^\/+/, '')}`,
    stop: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

function serve(root: string, allowed: string[] | undefined, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  let pathInfo: string;
  try {
    pathInfo = decodeURIComponent(url.pathname);
  } catch {
    return refuse(res, 400, 'malformed path');
  }
  // git http-backend refuses `..` itself; checking here as well keeps every request inside `root` whatever it does.
  if (pathInfo.split('/').includes('..') || !resolve(join(root, pathInfo)).startsWith(root + sep)) {
    return refuse(res, 404, 'not found');
  }
  if (allowed && !allowed.some((repo) => pathInfo === `/${repo}` || pathInfo.startsWith(`/${repo}/`))) {
    return refuse(res, 404, 'not found');
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    // A system or global config could turn on hooks or credentials meant for the user's own work.
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: pathInfo,
    QUERY_STRING: url.search.replace(/^\?/, ''),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    CONTENT_LENGTH: req.headers['content-length'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  // Protocol v2 and gzip-compressed request bodies are announced in headers the backend reads from the environment.
  if (req.headers['git-protocol']) env.HTTP_GIT_PROTOCOL = String(req.headers['git-protocol']);
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
  const child = spawn(GIT_HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  let head = Buffer.alloc(0);
  let headersSent = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    const endLf = head.indexOf('\n\n');
    const cut = end >= 0 ? { at: end, len: 4 } : endLf >= 0 ? { at: endLf, len: 2 } : undefined;
    if (!cut) return;
    let status = 200;
    for (const line of head.subarray(0, cut.at).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    headersSent = true;
    res.write(head.subarray(cut.at + cut.len));
  });
  child.on('error', (err) => {
    if (!headersSent) refuse(res, 500, `git http-backend did not start: ${err.message}`);
  });
  child.on('close', (code) => {
    if (!headersSent) {
      refuse(res, 500, `git http-backend exited with ${code}: ${stderr.trim().split('\n').pop() ?? ''}`);
      return;
    }
    res.end();
  });
  res.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
}

function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(`${message}\n`);
}
