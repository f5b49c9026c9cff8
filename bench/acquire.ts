/**
 * How fast acquire stores a large file (file:// source: read, sha256, write to the store) against `sha256sum`
 * reading and hashing the same file in the same run; `openssl dgst -sha256` is shown too when present, as the
 * fastest hash this machine has.
 *
 *   npx tsx bench/acquire.ts [--size-mb 1024] [--runs 3]
 *
 * Each acquire run is a child process, so its peak RSS (getrusage maxrss) belongs to that run alone.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { acquireArtifacts } from '../activities/acquire';

const execFileAsync = promisify(execFile);

interface ChildResult {
  ms: number;
  sha256: string;
  /** Peak RSS of the child in bytes, and its RSS just before acquiring (the tsx + module baseline). */
  maxRss: number;
  rssBefore: number;
}

async function child(file: string, storeRoot: string): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  const start = performance.now();
  const manifest = await acquireArtifacts(
    { name: 'bench-model', version: '1.0.0', source: pathToFileURL(file).href },
    // The bench's file lies in its own temp directory: that one root is allowed, nothing else.
    { storeRoot, sourcePolicy: { roots: [dirname(file)], hosts: [], networks: [] } },
  );
  const ms = performance.now() - start;
  const result: ChildResult = {
    ms,
    sha256: manifest.files[0]?.sha256 ?? '',
    // maxRSS is in KiB on Linux.
    maxRss: process.resourceUsage().maxRSS * 1024,
    rssBefore,
  };
  process.stdout.write(JSON.stringify(result));
}

async function runAcquire(file: string, storeRoot: string): Promise<ChildResult> {
  // Re-run this script under the same loader (tsx) in child mode.
  const proc = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child', file, storeRoot],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`acquire child exited with ${code}`);
  return JSON.parse(out) as ChildResult;
}

async function runTool(command: string, args: string[]): Promise<{ ms: number; sha256: string }> {
  const start = performance.now();
  const { stdout } = await execFileAsync(command, args);
  const ms = performance.now() - start;
  const sha256 = /\b([0-9a-f]{64})\b/.exec(stdout)?.[1] ?? '';
  return { ms, sha256 };
}

/** Flush dirty pages so that writeback left by one contender does not slow down the next. */
async function settle(): Promise<void> {
  await execFileAsync('sync').catch(() => undefined);
}

async function hasCommand(command: string): Promise<boolean> {
  try {
    await execFileAsync(command, ['version']);
    return true;
  } catch {
    return false;
  }
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

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      'size-mb': { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      child: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (values.child) {
    const [file, storeRoot] = positionals;
    if (!file || !storeRoot) throw new Error('--child needs <file> <storeRoot>');
    return child(file, storeRoot);
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
    const withOpenssl = await hasCommand('openssl');

    // Warm the page cache so every contender reads from memory, not from whatever the disk does.
    await runTool('sha256sum', [file]);

    const ours: ChildResult[] = [];
    const sha256sum: number[] = [];
    const openssl: number[] = [];
    for (let run = 0; run < runs; run++) {
      const storeRoot = join(dir, `store-${run}`);
      await settle();
      const result = await runAcquire(file, storeRoot);
      await rm(storeRoot, { recursive: true, force: true });
      await settle();
      const reference = await runTool('sha256sum', [file]);
      if (reference.sha256 !== result.sha256) {
        throw new Error(`digests differ: sha256sum ${reference.sha256}, acquire ${result.sha256}`);
      }
      ours.push(result);
      sha256sum.push(reference.ms);
      if (withOpenssl) openssl.push((await runTool('openssl', ['dgst', '-sha256', file])).ms);
      console.log(
        `run ${run + 1}: acquire ${result.ms.toFixed(0)} ms, sha256sum ${reference.ms.toFixed(0)} ms` +
          (withOpenssl ? `, openssl ${openssl[run]?.toFixed(0)} ms` : ''),
      );
    }

    const oursMs = median(ours.map((r) => r.ms));
    const sumMs = median(sha256sum);
    const ratio = mbps(bytes, oursMs) / mbps(bytes, sumMs);
    const peak = Math.max(...ours.map((r) => r.maxRss));
    const before = Math.max(...ours.map((r) => r.rssBefore));
    console.log(`runs: ${runs} (medians below; MB = 10^6 bytes)`);
    console.log(`sha256sum (read + hash):          ${mbps(bytes, sumMs).toFixed(0)} MB/s  (${sumMs.toFixed(0)} ms)`);
    if (withOpenssl) {
      const sslMs = median(openssl);
      console.log(
        `openssl dgst -sha256 (read + hash): ${mbps(bytes, sslMs).toFixed(0)} MB/s  (${sslMs.toFixed(0)} ms)`,
      );
    }
    console.log(`acquire (read + hash + store):    ${mbps(bytes, oursMs).toFixed(0)} MB/s  (${oursMs.toFixed(0)} ms)`);
    console.log(`ratio acquire/sha256sum: ${ratio.toFixed(2)} (target >= 0.9) ${ratio >= 0.9 ? 'OK' : 'BELOW TARGET'}`);
    console.log(`peak RSS of the acquire run: ${mb(peak)} MB (RSS before acquiring: ${mb(before)} MB)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
