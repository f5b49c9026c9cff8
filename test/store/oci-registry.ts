/**
 * Real registries for the registry-store tests: Debian's `docker-registry` on a free 127.0.0.1 port with temp storage,
 * anonymous, with htpasswd (Basic) auth, or with token auth against a small token service started here that checks a
 * user name and password and issues RS256 JWTs signed by a key whose self-signed certificate the registry trusts
 * (`rootcertbundle`). Everything is a child or a server of this process, stopped by PID or closed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import { openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/docker-test-env';

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  registry: string;
  dir: string;
  /** Token requests the token service answered (token auth only). */
  tokenRequests: { scopes: string[]; user?: string }[];
  stop(): Promise<void>;
}

export interface TestRegistryOptions {
  auth?: { kind: 'htpasswd' | 'token'; username: string; password: string };
}

const SERVICE = 'mrel-test-registry';
const ISSUER = 'mrel-test-token-service';

export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'mrel-oci-'));
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log: { level: warn }',
    'storage:',
    `  filesystem: { rootdirectory: ${join(dir, 'storage')} }`,
    '  delete: { enabled: true }',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  const tokenRequests: TestRegistry['tokenRequests'] = [];
  let tokenServer: Server | undefined;
  const auth = options.auth;
  if (auth?.kind === 'htpasswd') {
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `${auth.username}:${bcrypt(auth.password)}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: mrel-test', `    path: ${htpasswd}`);
  } else if (auth?.kind === 'token') {
    const key = join(dir, 'token.key');
    const cert = join(dir, 'token.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=mrel-test-token-service',
      ],
      { stdio: 'ignore' },
    );
    tokenServer = await startTokenServer(readFileSync(key, 'utf8'), readFileSync(cert, 'utf8'), auth, tokenRequests);
    const tokenPort = (tokenServer.address() as AddressInfo).port;
    lines.push(
      'auth:',
      '  token:',
      `    realm: http://127.0.0.1:${tokenPort}/token`,
      `    service: ${SERVICE}`,
      `    issuer: ${ISSUER}`,
      `    rootcertbundle: ${cert}`,
    );
  }
  const config = join(dir, 'registry.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  const logFile = join(dir, 'registry.log');
  const child = spawn('docker-registry', ['serve', config], {
    stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')],
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const stop = async () => {
    await stopChild(child);
    await new Promise<void>((resolve) => (tokenServer ? tokenServer.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 150; i++) {
    if (spawnError || child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry did not start (${spawnError?.message ?? `exit ${child.exitCode}`})`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) {
        return { registry: `127.0.0.1:${port}`, dir, tokenRequests, stop };
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  await stop();
  throw new Error(`docker-registry did not come up:\n${log}`);
}

/** A bcrypt hash for htpasswd (Go's bcrypt reads glibc's `$2b$` hashes), at the lowest cost: the registry checks it on every request. */
function bcrypt(password: string): string {
  return execFileSync(
    'python3',
    [
      '-W',
      'ignore',
      '-c',
      'import crypt,sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))',
    ],
    { input: password, encoding: 'utf8' },
  ).trim();
}

async function startTokenServer(
  keyPem: string,
  certPem: string,
  user: { username: string; password: string },
  requests: TestRegistry['tokenRequests'],
): Promise<Server> {
  const x5c = [new X509Certificate(certPem).raw.toString('base64')];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams.getAll('scope');
    const header = req.headers.authorization ?? '';
    const decoded = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString('utf8') : undefined;
    requests.push({ scopes, user: decoded?.split(':')[0] });
    if (decoded !== `${user.username}:${user.password}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"wrong user name or password"}');
      return;
    }
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type === 'repository' && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const token = jwt(
      { alg: 'RS256', typ: 'JWT', x5c },
      {
        iss: ISSUER,
        sub: user.username,
        aud: SERVICE,
        iat: now,
        nbf: now - 60,
        exp: now + 300,
        jti: randomUUID(),
        access,
      },
      keyPem,
    );
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function jwt(header: object, claims: object, keyPem: string): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(keyPem).toString('base64url');
  return `${signingInput}.${signature}`;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5_000));
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** A Docker config directory holding `config.json` with these contents; DOCKER_CONFIG points at it. */
export async function dockerConfigDir(config: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mrel-docker-config-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  return dir;
}

export function basicAuthEntry(username: string, password: string): { auth: string } {
  return { auth: Buffer.from(`${username}:${password}`).toString('base64') };
}
