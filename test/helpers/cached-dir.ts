/**
 * Directories that are slow to build and the same every time (trained tfjs models), built once per content key and
 * shared by every test file and every later run: test files run in separate processes, so the cache lives under the
 * temp directory, one folder per key, guarded by a lock file that names its holder's pid.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CACHE_ROOT = join(tmpdir(), 'mrel-test-cache');

/** A holder that is still alive but has not finished in this long is taken to be stuck. */
const LOCK_WAIT_MS = 10 * 60_000;

/**
 * The cached directory for `key`, built by `build` into a fresh directory when no run has built it yet. The key must
 * name everything the content depends on (source digests, versions, parameters): a stale key serves stale content.
 * Callers must not change what is in the directory; copy it first.
 */
export async function cachedDir(name: string, key: unknown, build: (dir: string) => Promise<void>): Promise<string> {
  const digest = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
  const dir = join(CACHE_ROOT, `${name}-${digest}`);
  const lock = `${dir}.lock`;
  await mkdir(CACHE_ROOT, { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (Date.now() < deadline) {
    // The rename below is atomic, so a directory that exists is complete.
    if (await exists(dir)) return dir;
    if (await takeLock(lock)) {
      try {
        if (await exists(dir)) return dir;
        const partial = `${dir}.partial-${process.pid}`;
        await rm(partial, { recursive: true, force: true });
        await mkdir(partial);
        try {
          await build(partial);
          await rename(partial, dir);
        } catch (err) {
          await rm(partial, { recursive: true, force: true });
          // Two holders (a lock cleared twice): the first rename won, and the content is the same.
          if (!(await exists(dir))) throw err;
        }
        return dir;
      } finally {
        await rm(lock, { force: true });
      }
    }
    await sleep(250);
  }
  throw new Error(
    `${lock}: held by another test process for over ${LOCK_WAIT_MS / 60_000} minutes; delete it if no test runs`,
  );
}

/** Creates the lock file, or clears one whose holder died (a test process killed mid-build) and says "not yet". */
async function takeLock(lock: string): Promise<boolean> {
  try {
    const file = await open(lock, 'wx');
    await file.writeFile(String(process.pid));
    await file.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = Number(await readFile(lock, 'utf8').catch(() => ''));
  // An empty file is a holder between open and write; give it time.
  if (Number.isInteger(holder) && holder > 0 && !isAlive(holder)) await rm(lock, { force: true });
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
