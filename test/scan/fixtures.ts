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
import { parseScanPolicy } from '../../config/policy-scan';
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
