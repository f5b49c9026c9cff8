/**
 * A private Docker engine and image registry for tests and local runs: Debian's `dockerd` with its own data and exec
 * roots and a unix socket in a temp directory (no bridge, no iptables, no IP forwarding: it touches no network),
 * and Debian's `docker-registry` on 127.0.0.1 with temp storage. Both are children we own, stopped by PID.
 *
 *   npx tsx scripts/docker-test-env.ts [--port 5000]    # start both, print DOCKER_HOST and the registry, Ctrl-C stops
 *
 * Needs root and the Debian packages docker.io and docker-registry (`apt-get install -y docker.io docker-registry`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Docker from 'dockerode';

export interface DockerTestEnv {
  /** Everything lives here: data-root, exec-root, socket, registry storage, logs. */
  dir: string;
  socketPath: string;
  docker: Docker;
  /** `127.0.0.1:<port>`: push `${registry}/name:tag`. */
  registry: string;
  dockerdPid: number;
  registryPid: number;
  /** Stops the registry and then dockerd (SIGTERM, then SIGKILL after a grace period) and removes `dir`. */
  stop(): Promise<void>;
}

export interface DockerTestEnvOptions {
  /** Registry port on 127.0.0.1 (default: a free one). */
  registryPort?: number;
  startTimeoutMs?: number;
  /** Keep the temp directory after stop (for debugging). */
  keep?: boolean;
}

const INSTALL_HINT = "install Debian's packages: apt-get install -y docker.io docker-registry";

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Starts dockerd and the registry; throws with the daemon's log when either does not come up. */
export async function startDockerTestEnv(options: DockerTestEnvOptions = {}): Promise<DockerTestEnv> {
  if (process.getuid?.() !== 0) {
    throw new Error('dockerd needs root to run (mounts, cgroups); run the image tests as root, as CI does');
  }
  const timeout = options.startTimeoutMs ?? 60_000;
  // Short path: a unix socket path must stay under 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'mrel-docker-'));
  const socketPath = join(dir, 'docker.sock');
  const dockerdLog = join(dir, 'dockerd.log');
  const dockerd = spawnOwned(
    'dockerd',
    [
      '--iptables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '-H',
      `unix://${socketPath}`,
      '--pidfile',
      join(dir, 'docker.pid'),
    ],
    dockerdLog,
  );
  const port = options.registryPort ?? (await freePort());
  const registryConfig = join(dir, 'registry.yml');
  await writeFile(
    registryConfig,
    [
      'version: 0.1',
      'log: { level: warn }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(dir, 'registry')} }`,
      '  delete: { enabled: true }',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const registryLog = join(dir, 'registry.log');
  const registry = spawnOwned('docker-registry', ['serve', registryConfig], registryLog);
  const docker = new Docker({ socketPath });
  const env: DockerTestEnv = {
    dir,
    socketPath,
    docker,
    registry: `127.0.0.1:${port}`,
    dockerdPid: dockerd.pid ?? -1,
    registryPid: registry.pid ?? -1,
    stop: async () => {
      await stopChild(registry, 5_000);
      await stopChild(dockerd, 20_000);
      await stopManagedContainerd(dir);
      if (!options.keep) await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
  try {
    await waitFor(
      async () => {
        await docker.ping();
      },
      timeout,
      dockerd,
      'dockerd',
      dockerdLog,
    );
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        if (res.status !== 200) throw new Error(`registry answered ${res.status}`);
      },
      timeout,
      registry,
      'docker-registry',
      registryLog,
    );
  } catch (err) {
    await env.stop();
    throw err;
  }
  return env;
}

function spawnOwned(command: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { stdio: ['ignore', log, log] });
  child.once('error', () => {
    // Reported by waitFor through exitCode / spawnError.
  });
  return child;
}

async function waitFor(
  probe: () => Promise<void>,
  timeoutMs: number,
  child: ChildProcess,
  name: string,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  let last: unknown;
  while (Date.now() < deadline) {
    if (spawnError) {
      const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
      throw new Error(`${name} could not be started: ${spawnError.message}${missing ? ` (${INSTALL_HINT})` : ''}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) while starting:\n${tail(logFile)}`);
    }
    try {
      await probe();
      return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not come up in ${timeoutMs} ms (${String(last)}):\n${tail(logFile)}`);
}

function tail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs));
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** dockerd stops the containerd it started; if dockerd was killed, stop that containerd by its PID file. */
async function stopManagedContainerd(dir: string): Promise<void> {
  const pid = Number(
    (await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '')).trim(),
  );
  if (!Number.isInteger(pid) || pid <= 0) return;
  // Only the containerd whose command line names our exec-root: a recycled PID is left alone.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (cmdline.includes(dir)) process.kill(pid, 'SIGTERM');
}

async function main(): Promise<void> {
  const portArg = process.argv.indexOf('--port');
  const env = await startDockerTestEnv({
    registryPort: portArg > 0 ? Number(process.argv[portArg + 1]) : 5000,
  });
  console.log(`DOCKER_HOST=unix://${env.socketPath}`);
  console.log(`registry: ${env.registry}  (dockerd pid ${env.dockerdPid}, registry pid ${env.registryPid})`);
  console.log('Ctrl-C stops both.');
  const stop = (): void => {
    void env.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
