/**
 * How fast acquire stores a large file (file:// source: read, sha256, write to the store) against the fastest hash
 * this machine has, `openssl dgst -sha256` reading and hashing the same file in the same run (target: acquire into
 * the filesystem store at 0.7x its throughput or better). `sha256sum` (read + hash) and `cp` to a new file (read +
 * write, no hash: what any store that keeps a copy pays) are shown too, and the registry store when its module and
 * `docker-registry` are there (a fresh registry on 127.0.0.1 per run, anonymous).
 *
 *   npx tsx bench/acquire.ts [--size-mb 1024] [--runs 3] [--skip-registry]
 *
 * Before each writer the bench syncs and pauses a few seconds, so that writeback and the memory the previous
 * contender freed have settled (a VM with free page reporting hands freed memory back to its host after 2 s) and
 * every writer starts from the same state, that of a worker handed an acquire while idle. Contenders run back to
 * back in each run and ratios are medians of the per-run ratios, so that load from other processes hits both sides
 * of a ratio alike. Each acquire runs in a child process, so its peak RSS (getrusage maxrss) and CPU time belong to
 * that run alone.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { acquireArtifacts } from '../activities/acquire';
import type { ArtifactStore } from '../activities/store/artifact-store';

const execFileAsync = promisify(execFile);

interface ChildResult {
  ms: number;
  sha256: string;
  /** CPU time of the acquire itself, in ms. */
  userMs: number;
  systemMs: number;
  /** Peak RSS of the child in bytes, and its RSS just before acquiring (the tsx + module baseline). */
  maxRss: number;
  rssBefore: number;
}

/** `file` for the filesystem store under `dataDir`, or an `oci://` store URL. */
async function child(file: string, storeSpec: string, dataDir: string): Promise<void> {
  let store: ArtifactStore | undefined;
  if (storeSpec !== 'file') {
    const { artifactStoreFromEnv } = await import('../activities/store/select');
    // An empty Docker config: the bench's registry is anonymous, and no user's credentials are read.
    const dockerConfig = join(dataDir, 'docker-config');
    await mkdir(dockerConfig, { recursive: true });
    store = artifactStoreFromEnv({ MREL_ARTIFACT_STORE: storeSpec, DOCKER_CONFIG: dockerConfig }, dataDir);
  }
  // Here rather than in the parent, so that starting this process is not part of what settles.
  await settle();
  const rssBefore = process.memoryUsage().rss;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const manifest = await acquireArtifacts(
    { name: 'bench-model', version: '1.0.0', source: pathToFileURL(file).href },
    // The bench's file lies in its own temp directory: that one root is allowed, nothing else.
    {
      ...(store ? { store } : { storeRoot: join(dataDir, 'store') }),
      sourcePolicy: { roots: [dirname(file)], hosts: [], networks: [] },
    },
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const result: ChildResult = {
    ms,
    sha256: manifest.files[0]?.sha256 ?? '',
    userMs: cpu.user / 1000,
    systemMs: cpu.system / 1000,
    // maxRSS is in KiB on Linux.
    maxRss: process.resourceUsage().maxRSS * 1024,
    rssBefore,
  };
  process.stdout.write(JSON.stringify(result));
}

async function runAcquire(file: string, storeSpec: string, dataDir: string): Promise<ChildResult> {
  // Re-run this script under the same loader (tsx) in child mode.
  const proc = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child', file, storeSpec, dataDir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`acquire child (${storeSpec}) exited with ${code}`);
  return JSON.parse(out) as ChildResult;
}

async function runTool(command: string, args: string[]): Promise<{ ms: number; sha256: string }> {
  const start = performance.now();
  const { stdout } = await execFileAsync(command, args);
  const ms = performance.now() - start;
  const sha256 = /\b([0-9a-f]{64})\b/.exec(stdout)?.[1] ?? '';
  return { ms, sha256 };
}

/** Flush dirty pages and let freed memory settle before a writer, so that each starts from the same state. */
async function settle(): Promise<void> {
  await execFileAsync('sync').catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
}

async function hasCommand(command: string, args: string[]): Promise<boolean> {
  try {
    await execFileAsync(command, args);
    return true;
  } catch {
    return false;
  }
}

/** Why the registry store cannot be measured here, or undefined when it can. */
async function registryUnavailable(): Promise<string | undefined> {
  try {
    await import('../activities/store/select');
  } catch (err) {
    return `the registry store does not load (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
  if (!(await hasCommand('docker-registry', ['--version']))) return 'docker-registry is not installed';
  return undefined;
}

interface Registry {
  url: string;
  stop(): Promise<void>;
}

/** An anonymous registry on a free 127.0.0.1 port, storing under `dir`; stopped by its PID. */
async function startRegistry(dir: string): Promise<Registry> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'registry.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'storage')} } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const log = join(dir, 'registry.log');
  const proc = spawn('docker-registry', ['serve', config], {
    stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
  });
  const stop = () => stopChild(proc);
  for (let i = 0; i < 100 && proc.exitCode === null; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.ok) return { url: `oci://127.0.0.1:${port}/bench/model`, stop };
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-5).join('\n');
  throw new Error(`docker-registry did not come up on 127.0.0.1:${port}:\n${tail}`);
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timeout = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timeout);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Random 16 MiB repeated, with each repeat stamped by its index: fast to make, and no two blocks alike. */
async function makeFile(path: string, sizeMb: number): Promise<void> {
  const block = randomBytes(16 << 20);
  const handle = await open(path, 'w');
  try {
    let written = 0;
    for (let i = 0; written < sizeMb << 20; i++) {
      block.writeUInt32LE(i, 0);
      const length = Math.min(block.length, (sizeMb << 20) - written);
      await handle.write(block, 0, length);
      written += length;
    }
  } finally {
    await handle.close();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
const cpu = (r: ChildResult) => `cpu ${r.userMs.toFixed(0)} user + ${r.systemMs.toFixed(0)} sys ms`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      'size-mb': { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      'skip-registry': { type: 'boolean', default: false },
      child: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (values.child) {
    const [file, storeSpec, dataDir] = positionals;
    if (!file || !storeSpec || !dataDir) throw new Error('--child needs <file> <file|oci://…> <dataDir>');
    return child(file, storeSpec, dataDir);
  }

  const sizeMb = Number(values['size-mb']);
  const runs = Number(values.runs);
  if (!Number.isInteger(sizeMb) || sizeMb <= 0) throw new Error('--size-mb must be a positive integer (MiB)');
  if (!Number.isInteger(runs) || runs <= 0) throw new Error('--runs must be a positive integer');
  const bytes = sizeMb << 20;

  const dir = await mkdtemp(join(tmpdir(), 'acquire-bench-'));
  try {
    const file = join(dir, 'model.bin');
    const start = performance.now();
    await makeFile(file, sizeMb);
    console.log(`file: ${sizeMb} MiB in ${(performance.now() - start).toFixed(0)} ms (${file})`);
    if (!(await hasCommand('openssl', ['version']))) throw new Error('openssl is not installed: it is the reference');
    const noRegistry = values['skip-registry'] ? 'skipped (--skip-registry)' : await registryUnavailable();

    // Warm the page cache so every contender reads from memory, not from whatever the disk does.
    await runTool('sha256sum', [file]);

    const openssl: number[] = [];
    const sha256sum: number[] = [];
    const cp: number[] = [];
    const ours: ChildResult[] = [];
    const registry: ChildResult[] = [];
    for (let run = 0; run < runs; run++) {
      await execFileAsync('sync');
      const reference = await runTool('openssl', ['dgst', '-sha256', file]);
      const sum = await runTool('sha256sum', [file]);
      if (sum.sha256 !== reference.sha256)
        throw new Error(`digests differ: openssl ${reference.sha256}, sha256sum ${sum.sha256}`);

      const copy = join(dir, 'copy.bin');
      await settle();
      const copied = await runTool('cp', ['--reflink=never', file, copy]);
      await rm(copy);

      const dataDir = join(dir, `data-${run}`);
      const result = await runAcquire(file, 'file', dataDir);
      await rm(dataDir, { recursive: true, force: true });
      if (result.sha256 !== reference.sha256) {
        throw new Error(`digests differ: openssl ${reference.sha256}, acquire ${result.sha256}`);
      }
      openssl.push(reference.ms);
      sha256sum.push(sum.ms);
      cp.push(copied.ms);
      ours.push(result);
      let line =
        `run ${run + 1}: openssl ${reference.ms.toFixed(0)} ms, sha256sum ${sum.ms.toFixed(0)} ms, ` +
        `cp ${copied.ms.toFixed(0)} ms, acquire filesystem ${result.ms.toFixed(0)} ms (${cpu(result)})`;

      if (noRegistry === undefined) {
        const registryDir = join(dir, `registry-${run}`);
        const started = await startRegistry(registryDir);
        try {
          const pushed = await runAcquire(file, started.url, join(registryDir, 'worker'));
          if (pushed.sha256 !== reference.sha256) {
            throw new Error(`digests differ: openssl ${reference.sha256}, registry acquire ${pushed.sha256}`);
          }
          registry.push(pushed);
          line += `, acquire registry ${pushed.ms.toFixed(0)} ms (${cpu(pushed)})`;
        } finally {
          await started.stop();
          await rm(registryDir, { recursive: true, force: true });
        }
      }
      console.log(line);
    }

    const row = (name: string, ms: number, note = '') =>
      console.log(`${name.padEnd(50)} ${mbps(bytes, ms).toFixed(0).padStart(5)} MB/s  (${ms.toFixed(0)} ms)${note}`);
    /** Median over runs of (their MB/s) / (our MB/s), i.e. of reference ms / our ms. */
    const ratio = (theirs: number[], mine: ChildResult[]) => median(mine.map((r, i) => (theirs[i] ?? NaN) / r.ms));
    console.log(`runs: ${runs} (medians below; MB = 10^6 bytes)`);
    row('openssl dgst -sha256 (read + hash)', median(openssl), '  reference');
    row('sha256sum (read + hash)', median(sha256sum));
    row('cp to a new file (read + write, no hash)', median(cp));
    row('acquire, filesystem store (read + hash + write)', median(ours.map((r) => r.ms)));
    if (registry.length > 0) row('acquire, registry store (read + hash + push)', median(registry.map((r) => r.ms)));
    const vsOpenssl = ratio(openssl, ours);
    console.log(
      `ratio acquire filesystem / openssl: ${vsOpenssl.toFixed(2)} (target >= 0.7) ` +
        `${vsOpenssl >= 0.7 ? 'OK' : 'BELOW TARGET'}; / sha256sum: ${ratio(sha256sum, ours).toFixed(2)}; ` +
        `/ cp: ${ratio(cp, ours).toFixed(2)}`,
    );
    if (registry.length > 0) {
      console.log(
        `ratio acquire registry / openssl: ${ratio(openssl, registry).toFixed(2)}; ` +
          `/ acquire filesystem: ${median(registry.map((r, i) => (ours[i]?.ms ?? NaN) / r.ms)).toFixed(2)}`,
      );
    } else {
      console.log(`registry store: not measured, ${noRegistry ?? 'no runs'}`);
    }
    const peak = Math.max(...ours.map((r) => r.maxRss));
    const before = Math.max(...ours.map((r) => r.rssBefore));
    console.log(`peak RSS of the filesystem acquire runs: ${mb(peak)} MB (RSS before acquiring: ${mb(before)} MB)`);
    if (registry.length > 0) {
      console.log(`peak RSS of the registry acquire runs: ${mb(Math.max(...registry.map((r) => r.maxRss)))} MB`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
