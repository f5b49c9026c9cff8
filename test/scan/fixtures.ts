/**
 * Shared parts of the scan tests: the Python that makes real pickles (the repository's .venv), the fixture corpus it
 * writes into a temp directory, and a helper that scans paths the way `mrel scan` does.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test as base } from 'vitest';
import { parseScanPolicy } from '../../activities/scan/policy';
import { scanTargets, type ScanReport } from '../../activities/scan';

const execFileAsync = promisify(execFile);

/** The repository's virtual environment python (numpy, joblib, h5py installed by CI). */
export const PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));
const MAKE_FIXTURES = fileURLToPath(new URL('./make-fixtures.py', import.meta.url));

/** Runs a Python snippet (stdin-free) with the repository's python. */
export async function python(code: string, cwd: string): Promise<string> {
  const { stdout } = await execFileAsync(PYTHON, ['-c', code], { cwd });
  return stdout;
}

/** Writes the fixture corpus (evil/ and benign/) into `dir`. */
export async function makeFixtures(dir: string): Promise<void> {
  await execFileAsync(PYTHON, [MAKE_FIXTURES, dir]);
}

/** Scans files (relative to `root`) as the CLI would, with an optional raw `scan:` policy section. */
export async function scan(root: string, paths: string[], policy?: unknown): Promise<ScanReport> {
  const targets = [];
  for (const p of paths) {
    const file = join(root, p);
    targets.push({ path: p, file, size: (await stat(file)).size });
  }
  return scanTargets(targets, { policy: parseScanPolicy(policy) });
}

/** Every file under `dir`, relative. */
export async function listFiles(dir: string, under = ''): Promise<string[]> {
  const entries = await readdir(join(dir, under), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

export const test = base.extend<{ tmp: string }>({
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'mrel-scan-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

/**
 * A GGUF v3 file with `general.architecture = llama`, the extra string metadata given, one tensor, and `dataBytes`
 * of zeros after the aligned header.
 */
export function ggufFile(options: {
  metadata?: Record<string, string>;
  tensor: string;
  dims: bigint[];
  /** ggml type id (0 = F32). */
  type: number;
  offset?: bigint;
  dataBytes: number;
}): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(n);
    parts.push(b);
  };
  const str = (s: string) => {
    u64(BigInt(Buffer.byteLength(s)));
    parts.push(Buffer.from(s));
  };
  const metadata = { 'general.architecture': 'llama', ...options.metadata };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(1n); // tensors
  u64(BigInt(Object.keys(metadata).length));
  for (const [key, value] of Object.entries(metadata)) {
    str(key);
    u32(8); // string
    str(value);
  }
  str(options.tensor);
  u32(options.dims.length);
  for (const d of options.dims) u64(d);
  u32(options.type);
  u64(options.offset ?? 0n); // offset into the data section
  const header = Buffer.concat(parts);
  const pad = Buffer.alloc((32 - (header.length % 32)) % 32);
  return Buffer.concat([header, pad, Buffer.alloc(options.dataBytes)]);
}
