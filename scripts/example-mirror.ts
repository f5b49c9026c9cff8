/**
 * npm run example:mirror — what the second example releases from, as a team would have it: an internal model mirror
 * on HTTPS signed by the company's own CA, and a registry holding the inference image. Both run on 127.0.0.1:
 *
 * - a CA and a server certificate for localhost/127.0.0.1, made once with the `openssl` CLI under
 *   .data/example-mirror/tls (private to the user); the worker trusts the CA through MREL_SOURCE_CA_FILE;
 * - an HTTPS static file server (port 8443, EXAMPLE_MIRROR_PORT) serving examples/mirror/<model>/<version>/<file>;
 * - Debian's `docker-registry` on 127.0.0.1:5000 (EXAMPLE_REGISTRY_PORT), or the registry already listening there,
 *   and a small inference image pushed to it through the registry HTTP API (no Docker engine needed): one layer
 *   with the serving app's package.json, package-lock.json and node_modules records, a Debian os-release and dpkg
 *   database, so the image gate has packages to inventory and match against advisories.
 *
 * It prints the environment the workers and `mrel` need, then serves until Ctrl-C, which stops the registry it
 * started (by PID) and the mirror.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { createReadStream, existsSync, openSync } from 'node:fs';
import { chmod, cp, mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { PROJECT_ROOT } from './temporal-cli';

/** /etc/os-release of the serving image (Debian 12), which the image gate's OS detection reads. */
export const OS_RELEASE_DEBIAN_12 = [
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
  'NAME="Debian GNU/Linux"',
  'VERSION_ID="12"',
  'VERSION="12 (bookworm)"',
  'VERSION_CODENAME=bookworm',
  'ID=debian',
  '',
].join('\n');

const exec = promisify(execFile);

export const EXAMPLE_DIR = join(PROJECT_ROOT, '.data', 'example-mirror');
export const MIRROR_ROOT = join(PROJECT_ROOT, 'examples', 'mirror');
export const EXAMPLE_ADVISORIES = join(PROJECT_ROOT, 'examples', 'advisories');
export const EXAMPLE_REQUEST = join(PROJECT_ROOT, 'examples', 'releases', 'credit-risk-https.yaml');
/** Where the image is pushed, as the example request names it (`<registry>/<repository>:<tag>`). */
export const EXAMPLE_IMAGE = { repository: 'ml/credit-risk-serving', tag: '1.1.0' };

// ── certificates ────────────────────────────────────────────────────────────────────────────────────────────────

export interface MirrorCertificates {
  /** The CA that signs the mirror's certificate: what MREL_SOURCE_CA_FILE points at. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Certificates kept for a day less than they are valid, so a long-lived folder renews them before they lapse. */
const RENEW_BEFORE_MS = 24 * 3600 * 1000;

/**
 * A CA and a server certificate for localhost and 127.0.0.1 signed by it, made with the openssl CLI in `dir`
 * (mode 0700, keys 0600) unless valid ones are there already. The CA's key stays in `dir`: nothing else needs it.
 */
export async function ensureCertificates(dir: string): Promise<MirrorCertificates> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const certs: MirrorCertificates = {
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server.key'),
  };
  if (await stillValid(certs)) return certs;
  const caKey = join(dir, 'ca.key');
  const csr = join(dir, 'server.csr');
  const extensions = join(dir, 'server.ext');
  await writeFile(
    extensions,
    [
      'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    caKey,
    '-out',
    certs.caFile,
    '-days',
    '825',
    '-subj',
    '/O=modelrelease example/CN=modelrelease example mirror CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl(['req', ...ec, '-keyout', certs.keyFile, '-out', csr, '-subj', '/O=modelrelease example/CN=localhost']);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    certs.caFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    certs.certFile,
    '-days',
    '397',
    '-extfile',
    extensions,
  ]);
  for (const key of [caKey, certs.keyFile]) await chmod(key, 0o600);
  return certs;
}

async function stillValid(certs: MirrorCertificates): Promise<boolean> {
  try {
    const [ca, server] = await Promise.all([readFile(certs.caFile), readFile(certs.certFile)]);
    await stat(certs.keyFile);
    const caCert = new X509Certificate(ca);
    const serverCert = new X509Certificate(server);
    const lapses = Math.min(Date.parse(caCert.validTo), Date.parse(serverCert.validTo));
    return serverCert.checkIssued(caCert) && lapses - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

async function openssl(args: string[]): Promise<void> {
  try {
    await exec('openssl', args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('the openssl CLI is missing: apt-get install -y openssl', { cause: err });
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' ')}`, {
      cause: err,
    });
  }
}

// ── the model mirror ────────────────────────────────────────────────────────────────────────────────────────────

export interface ModelMirror {
  /** `https://localhost:<port>`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ModelMirrorOptions {
  /** Served as is: `<root>/<model>/<version>/<file>` at `https://localhost:<port>/<model>/<version>/<file>`. */
  root: string;
  certs: MirrorCertificates;
  /** 0 picks a free port. */
  port: number;
}

/**
 * A plain HTTPS file server on 127.0.0.1, as internal model mirrors are: GET and HEAD of files, no listings (a
 * directory URL is a 404, which is why the request names its files), nothing outside the root.
 */
export async function startModelMirror(options: ModelMirrorOptions): Promise<ModelMirror> {
  const root = await realpath(options.root);
  const [cert, key] = await Promise.all([readFile(options.certs.certFile), readFile(options.certs.keyFile)]);
  const server: Server = createServer({ cert, key }, (req, res) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const file = await servedFile(root, req.url ?? '/');
      if (!file) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': file.size,
        etag: `"${file.size.toString(16)}-${Math.trunc(file.mtimeMs).toString(16)}"`,
      });
      if (req.method === 'HEAD') res.end();
      else
        createReadStream(file.path)
          .on('error', () => res.destroy())
          .pipe(res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`port ${options.port} on 127.0.0.1 is in use; stop what listens there or set EXAMPLE_MIRROR_PORT`)
          : err,
      ),
    );
    server.listen(options.port, '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://localhost:${port}`,
    port,
    close: () =>
      new Promise((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

async function servedFile(root: string, url: string): Promise<{ path: string; size: number; mtimeMs: number } | null> {
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(url, 'https://localhost').pathname);
  } catch {
    return null;
  }
  if (pathname.includes('\0') || pathname.split('/').includes('..')) return null;
  try {
    // The real path, so that a symlink under the root cannot serve a file outside it.
    const path = await realpath(resolve(root, `.${pathname}`));
    const rel = relative(root, path);
    if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..') return null;
    const info = await stat(path);
    return info.isFile() ? { path, size: info.size, mtimeMs: info.mtimeMs } : null;
  } catch {
    return null;
  }
}

// ── the registry ────────────────────────────────────────────────────────────────────────────────────────────────

export interface ExampleRegistry {
  /** `127.0.0.1:<port>`. */
  address: string;
  /** The PID of the registry this process started; undefined when one was already listening. */
  pid?: number;
  stop(): Promise<void>;
}

/**
 * Debian's docker-registry on 127.0.0.1:`port` with its storage under `dir`, or the registry that already answers
 * there (another `npm run example:mirror`, scripts/docker-test-env.ts): that one is left running on stop.
 */
export async function startRegistry(options: { port: number; dir: string }): Promise<ExampleRegistry> {
  const address = `127.0.0.1:${options.port}`;
  const probe = await probeRegistry(address);
  if (probe === 'registry') return { address, stop: async () => {} };
  if (probe === 'other') {
    throw new Error(
      `something that is not a registry answers on ${address}; stop it, or set EXAMPLE_REGISTRY_PORT and name that ` +
        'port in the request (image.ref)',
    );
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const config = join(options.dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(options.dir, 'data')} }`,
      'http:',
      `  addr: ${address}`,
      '',
    ].join('\n'),
  );
  const logFile = join(options.dir, 'registry.log');
  const log = openSync(logFile, 'a');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
  let spawnError: NodeJS.ErrnoException | undefined;
  child.once('error', (err) => (spawnError = err));
  const stop = () => stopChild(child);
  for (let attempt = 0; attempt < 150; attempt++) {
    if (spawnError) {
      throw new Error(
        spawnError.code === 'ENOENT'
          ? "docker-registry is missing: install Debian's package (apt-get install -y docker-registry)"
          : `docker-registry could not be started: ${spawnError.message}`,
      );
    }
    if (child.exitCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode}) while starting; see ${logFile}`);
    }
    if ((await probeRegistry(address)) === 'registry') return { address, pid: child.pid, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`docker-registry did not answer on ${address} within 30 s; see ${logFile}`);
}

async function probeRegistry(address: string): Promise<'registry' | 'other' | 'none'> {
  try {
    const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200 && response.headers.has('docker-distribution-api-version') ? 'registry' : 'other';
  } catch {
    return 'none';
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ── the inference image ─────────────────────────────────────────────────────────────────────────────────────────

export interface ImageFile {
  path: string;
  content: string;
}

const NPM_PACKAGES = [
  { name: 'express', version: '4.21.2', license: 'MIT' },
  { name: 'body-parser', version: '1.20.3', license: 'MIT' },
  { name: 'cookie', version: '0.7.1', license: 'MIT' },
  { name: 'path-to-regexp', version: '0.1.12', license: 'MIT' },
  { name: 'lodash', version: '4.17.21', license: 'MIT' },
];

const DEBIAN_PACKAGES = [
  { name: 'libc6', version: '2.36-9+deb12u9', source: 'glibc' },
  { name: 'libssl3', version: '3.0.15-1~deb12u1', source: 'openssl' },
  { name: 'openssl', version: '3.0.15-1~deb12u1' },
  { name: 'zlib1g', version: '1:1.2.13.dfsg-1', source: 'zlib' },
  { name: 'ca-certificates', version: '20230311' },
];

/**
 * The serving image's files: Debian 12's identity and dpkg database, and a small Node serving app with its
 * manifest, lock file and installed packages' records — what the image gate inventories.
 */
export function exampleImageFiles(): ImageFile[] {
  const app = {
    name: 'credit-risk-serving',
    version: '1.1.0',
    private: true,
    description: 'Serves credit-risk over the KServe v2 protocol',
    main: 'server.js',
    license: 'UNLICENSED',
    dependencies: { express: '4.21.2', lodash: '4.17.21' },
  };
  const lock = {
    name: app.name,
    version: app.version,
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: app.name, version: app.version, license: app.license, dependencies: app.dependencies },
      ...Object.fromEntries(
        NPM_PACKAGES.map((p) => [
          `node_modules/${p.name}`,
          {
            version: p.version,
            resolved: `https://registry.npmjs.org/${p.name}/-/${p.name}-${p.version}.tgz`,
            license: p.license,
          },
        ]),
      ),
    },
  };
  return [
    {
      path: 'etc/os-release',
      content: OS_RELEASE_DEBIAN_12,
    },
    { path: 'etc/debian_version', content: '12.8\n' },
    {
      path: 'var/lib/dpkg/status',
      content: DEBIAN_PACKAGES.map((p) =>
        [
          `Package: ${p.name}`,
          'Status: install ok installed',
          'Priority: optional',
          'Architecture: amd64',
          ...(p.source ? [`Source: ${p.source}`] : []),
          `Version: ${p.version}`,
          `Description: ${p.name}`,
          '',
        ].join('\n'),
      ).join('\n'),
    },
    { path: 'srv/app/package.json', content: `${JSON.stringify(app, null, 2)}\n` },
    { path: 'srv/app/package-lock.json', content: `${JSON.stringify(lock, null, 2)}\n` },
    {
      path: 'srv/app/server.js',
      content: [
        "'use strict';",
        '// Loads the released model from MODEL_DIR and answers KServe v2 inference requests on :8080.',
        "const express = require('express');",
        'const app = express();',
        "app.get('/healthz', (_req, res) => res.send('ok'));",
        'app.listen(8080);',
        '',
      ].join('\n'),
    },
    ...NPM_PACKAGES.map((p) => ({
      path: `srv/app/node_modules/${p.name}/package.json`,
      content: `${JSON.stringify({ name: p.name, version: p.version, license: p.license }, null, 2)}\n`,
    })),
  ];
}

/** Fixed so that the same files make the same layer, and the image's digest does not change between runs. */
const EPOCH = new Date('2025-01-01T00:00:00Z');

async function layerTar(files: ImageFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0 });
    }
    pack.entry({ name: file.path, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0 }, file.content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * Pushes a one-layer OCI image to `registry` (plain HTTP: a loopback registry) through the registry API: blobs by
 * monolithic upload, then the manifest under `tag`. Returns the manifest digest the registry answers with.
 */
export async function pushImage(
  registry: string,
  image: { repository: string; tag: string },
  files: ImageFile[],
): Promise<string> {
  const base = `http://${registry}/v2/${image.repository}`;
  const layerRaw = await layerTar(files);
  const layer = gzipSync(layerRaw);
  const config = Buffer.from(
    JSON.stringify({
      created: EPOCH.toISOString(),
      architecture: 'amd64',
      os: 'linux',
      config: {
        User: '10001:10001',
        ExposedPorts: { '8080/tcp': {} },
        Env: [
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          'NODE_ENV=production',
          'MODEL_DIR=/models',
        ],
        Entrypoint: ['node', 'server.js'],
        WorkingDir: '/srv/app',
        Labels: {
          'org.opencontainers.image.source': 'https://git.example.com/ml/credit-risk-serving',
          'org.opencontainers.image.revision': '9c41e07',
          'org.opencontainers.image.version': image.tag,
          'org.opencontainers.image.title': image.repository.split('/').pop() ?? image.repository,
        },
      },
      rootfs: { type: 'layers', diff_ids: [sha256(layerRaw)] },
      history: [{ created: EPOCH.toISOString(), created_by: 'COPY rootfs/ / # example-mirror' }],
    }),
  );
  for (const blob of [config, layer]) await pushBlob(base, blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  const response = await fetch(`${base}/manifests/${image.tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  await expectStatus(response, 201, `PUT manifest ${image.repository}:${image.tag}`);
  return response.headers.get('docker-content-digest') ?? sha256(manifest);
}

async function pushBlob(base: string, blob: Buffer): Promise<void> {
  const digest = sha256(blob);
  const head = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return;
  const started = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
  await expectStatus(started, 202, 'POST blob upload');
  const location = started.headers.get('location');
  if (!location) throw new Error(`the registry at ${base} started an upload without a Location`);
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob,
  });
  await expectStatus(put, 201, `PUT blob ${digest}`);
}

async function expectStatus(response: Response, status: number, what: string): Promise<void> {
  if (response.status === status) {
    await response.body?.cancel();
    return;
  }
  // The registry's errors are JSON codes about our own upload, safe to show.
  const body = (await response.text().catch(() => '')).slice(0, 300);
  throw new Error(`${what} answered ${response.status}, expected ${status}: ${body}`);
}

// ── advisories ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * The default policy reads OSV advisories from `advisories/` under the worker's working directory. When there is
 * none, the example's records go there; an existing folder (osv.dev's real dumps) is left as it is.
 */
export async function ensureAdvisories(target = join(PROJECT_ROOT, 'advisories')): Promise<boolean> {
  if (existsSync(target)) return false;
  await cp(EXAMPLE_ADVISORIES, target, { recursive: true });
  return true;
}

// ── npm run example:mirror ──────────────────────────────────────────────────────────────────────────────────────

/** A path as one shell word: bare when it is plainly safe, single-quoted otherwise. */
function shellWord(text: string): string {
  return /^[\w./@%+=:,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function portFrom(variable: string, fallback: number): number {
  const text = process.env[variable];
  if (text === undefined || text === '') return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new Error(`environment variable ${variable}: must be a TCP port (1-65535), e.g. ${fallback}`);
  }
  return port;
}

async function main(): Promise<void> {
  // Keys, the registry's storage and logs are private to this user.
  process.umask(0o077);
  const mirrorPort = portFrom('EXAMPLE_MIRROR_PORT', 8443);
  const registryPort = portFrom('EXAMPLE_REGISTRY_PORT', 5000);
  await mkdir(EXAMPLE_DIR, { recursive: true, mode: 0o700 });
  await chmod(EXAMPLE_DIR, 0o700);
  const certs = await ensureCertificates(join(EXAMPLE_DIR, 'tls'));
  const copiedAdvisories = await ensureAdvisories();
  const mirror = await startModelMirror({ root: MIRROR_ROOT, certs, port: mirrorPort });
  let registry: ExampleRegistry | undefined;
  try {
    registry = await startRegistry({ port: registryPort, dir: join(EXAMPLE_DIR, 'registry') });
    const digest = await pushImage(registry.address, EXAMPLE_IMAGE, exampleImageFiles());
    const env = [
      `export MREL_SOURCE_CA_FILE=${shellWord(certs.caFile)}`,
      'export MREL_SOURCE_HOSTS=localhost',
      // ::1 as well: where /etc/hosts maps localhost to both, every address it resolves to must be allowed.
      'export MREL_SOURCE_NETWORKS=127.0.0.1/32,::1/128',
    ];
    await writeFile(join(EXAMPLE_DIR, 'env.sh'), `${env.join('\n')}\n`);
    const envFile = relative(process.cwd(), join(EXAMPLE_DIR, 'env.sh'));
    const request = relative(process.cwd(), EXAMPLE_REQUEST) || EXAMPLE_REQUEST;
    console.log(
      [
        '',
        '──────────────────────────────────────────────────────────────────────────────',
        ` model mirror (HTTPS, CA ${relative(process.cwd(), certs.caFile)}): ${mirror.url}/credit-risk/1.1.0/`,
        ` registry: ${registry.address}${registry.pid ? ` (docker-registry pid ${registry.pid})` : ' (already running)'}`,
        `   pushed ${registry.address}/${EXAMPLE_IMAGE.repository}:${EXAMPLE_IMAGE.tag} → ${digest}`,
        copiedAdvisories
          ? " advisories/ was missing: the example's OSV records were copied there (the image gate reads them)"
          : ' advisories/ exists: the image gate reads the OSV records there',
        '',
        ` The workers (npm start) and the door (mrel) need this environment; it is also in ${envFile}:`,
        ...env.map((line) => `   ${line}`),
        '',
        ` terminal 2, the workers:  . ${envFile} && npm start`,
        ` terminal 3, the release:  . ${envFile}`,
        `                           ./bin/mrel start ${request} --wait`,
        '',
        ' Ctrl-C stops the mirror and the registry this started.',
        '──────────────────────────────────────────────────────────────────────────────',
      ].join('\n'),
    );
  } catch (err) {
    await registry?.stop();
    await mirror.close();
    throw err;
  }
  const stop = (signal: string): void => {
    console.log(`\n${signal}: stopping the mirror${registry?.pid ? ` and the registry (pid ${registry.pid})` : ''} …`);
    void Promise.all([registry?.stop(), mirror.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
