/**
 * The inference log writer on a real directory: a full buffer drops and counts records instead of growing, files
 * rotate at the size limit without splitting a line, and a write that fails is counted, not thrown at the request.
 */
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InferenceLog } from '../../serving/inference-log';

let dir: string;

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'inference-log-')), 'log');
});

afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

async function lines(): Promise<{ file: string; records: { i: number }[]; bytes: number }[]> {
  const files = (await readdir(dir)).sort(
    (a, b) => Number(a.split('-').at(-1)!.split('.')[0]) - Number(b.split('-').at(-1)!.split('.')[0]),
  );
  return Promise.all(
    files.map(async (file) => {
      const text = await readFile(join(dir, file), 'utf8');
      return {
        file,
        bytes: Buffer.byteLength(text),
        records: text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l) as { i: number }),
      };
    }),
  );
}

describe('InferenceLog', () => {
  it('drops and counts records beyond its buffer while the disk has not caught up, and keeps the rest in order', async () => {
    const drops: number[] = [];
    const log = await InferenceLog.open({
      dir,
      prefix: 'inference',
      flushRecords: 1_000_000,
      flushMs: 3_600_000,
      maxBufferBytes: 1000,
      rotateBytes: 64 * 1024 * 1024,
      onDrop: (n) => drops.push(n),
    });
    const record = (i: number) => ({ i, pad: 'x'.repeat(80) });
    const line = Buffer.byteLength(`${JSON.stringify(record(10))}\n`);
    let accepted = 0;
    // Appended in one turn of the event loop: nothing can reach the disk in between, as under a burst.
    for (let i = 10; i < 60; i++) if (log.append(record(i))) accepted++;
    expect(accepted).toBe(Math.floor(1000 / line));
    expect(log.pendingBytes).toBeLessThanOrEqual(1000);
    expect(drops.reduce((a, b) => a + b, 0)).toBe(50 - accepted);
    await log.close();
    const [only] = await lines();
    expect(only!.records.map((r) => r.i)).toEqual(Array.from({ length: accepted }, (_, k) => 10 + k));
    expect(log.written).toBe(accepted);
    expect(log.dropped).toBe(50 - accepted);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, only!.file))).mode & 0o777).toBe(0o600);
  });

  it('rotates at the size limit into numbered files without splitting a line', async () => {
    const log = await InferenceLog.open({
      dir,
      prefix: 'inference',
      flushRecords: 7,
      flushMs: 10,
      maxBufferBytes: 1 << 20,
      rotateBytes: 500,
      startedAtMs: 1234,
    });
    for (let i = 0; i < 100; i++) log.append({ i, pad: 'y'.repeat(30) });
    await log.close();
    const files = await lines();
    expect(files.length).toBeGreaterThan(5);
    files.forEach((f, k) => {
      expect(f.file).toBe(`inference-1234-${process.pid}-${k + 1}.jsonl`);
      expect(f.bytes).toBeLessThanOrEqual(500);
    });
    expect(files.flatMap((f) => f.records.map((r) => r.i))).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('counts the records of a failed write as dropped and reports the directory, not the content', async () => {
    const errors: string[] = [];
    let dropped = 0;
    const log = await InferenceLog.open({
      dir,
      prefix: 'feedback',
      flushRecords: 1,
      flushMs: 10,
      maxBufferBytes: 1 << 20,
      rotateBytes: 1 << 20,
      onDrop: (n) => (dropped += n),
      onError: (err) => errors.push(err.message),
    });
    // A directory the writer cannot create files in (root ignores modes, so only when not root).
    if (process.getuid?.() === 0) {
      await rm(dir, { recursive: true });
    } else {
      await chmod(dir, 0o500);
    }
    log.append({ secret: 'SECRET-VALUE' });
    await log.flush();
    expect(dropped).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`${dir}: writing the feedback log failed (`);
    expect(errors[0]).not.toContain('SECRET');
    await log.close();
  });
});
