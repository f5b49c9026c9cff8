/**
 * The cache that lets the evaluation tests train their models once: concurrent callers share one build, a failed build
 * leaves nothing behind, and a lock left by a dead process does not block the next run.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_ROOT, cachedDir } from './cached-dir';

const made: string[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

function uniqueKey(): { test: string } {
  return { test: randomUUID() };
}

async function leftovers(name: string): Promise<string[]> {
  return (await readdir(CACHE_ROOT)).filter((entry) => entry.startsWith(`${name}-`));
}

describe('cachedDir', () => {
  it('builds once for concurrent callers with the same key, and again for another key', async () => {
    const key = uniqueKey();
    let builds = 0;
    const build = async (dir: string): Promise<void> => {
      builds += 1;
      await writeFile(join(dir, 'model.json'), JSON.stringify(key));
    };
    const dirs = await Promise.all([1, 2, 3].map(() => cachedDir('cache-test', key, build)));
    made.push(...dirs);
    expect(new Set(dirs).size).toBe(1);
    expect(builds).toBe(1);
    expect(JSON.parse(await readFile(join(dirs[0]!, 'model.json'), 'utf8'))).toEqual(key);
    const other = await cachedDir('cache-test', uniqueKey(), build);
    made.push(other);
    expect(other).not.toBe(dirs[0]);
    expect(builds).toBe(2);
  });

  it('leaves nothing behind when the build fails, so the next caller builds it', async () => {
    const name = `cache-fail-${randomUUID().slice(0, 8)}`;
    const key = uniqueKey();
    await expect(cachedDir(name, key, () => Promise.reject(new Error('training diverged')))).rejects.toThrow(
      'training diverged',
    );
    expect(await leftovers(name)).toEqual([]);
    const dir = await cachedDir(name, key, (into) => writeFile(join(into, 'ok'), ''));
    made.push(dir);
    expect(await readdir(dir)).toEqual(['ok']);
  });

  it('takes over a lock whose holder has exited', async () => {
    const name = `cache-stale-${randomUUID().slice(0, 8)}`;
    const key = uniqueKey();
    // Find where the lock of this key lives by building once, then plant a lock of a process that cannot exist.
    const first = await cachedDir(name, key, async () => {});
    await rm(first, { recursive: true });
    await writeFile(`${first}.lock`, '2147483646');
    made.push(`${first}.lock`);
    const dir = await cachedDir(name, key, (into) => writeFile(join(into, 'rebuilt'), ''));
    made.push(dir);
    expect(await readdir(dir)).toEqual(['rebuilt']);
    expect(await leftovers(name)).toEqual([basename(dir)]);
  });
});
