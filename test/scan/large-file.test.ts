/**
 * A 2 GB model file streams through the pickle walker with flat memory: the payload hidden after 2 GB of bytes is
 * still found, and the scanning process never holds more than 256 MB. The file is sparse, so the test is cheap.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { scanTargets } from '../../activities/scan';
import { test } from './fixtures';

const execFileAsync = promisify(execFile);
const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));
const CHILD = fileURLToPath(new URL('./rss-child.ts', import.meta.url));
const SIZE = 2 * 2 ** 30;
const MAX_RSS = 256 * 2 ** 20;

test('a 2 GB pickle is walked to its end with RSS under 256 MB', { timeout: 60_000 }, async ({ tmp }) => {
  const file = join(tmp, 'big.pkl');
  // PROTO 4, BINBYTES8 <2 GB of zeros>, POP, then os.system('id') and STOP.
  const tail = Buffer.from('0cos\nsystem\n\x8c\x02id\x85R.', 'latin1');
  const head = Buffer.alloc(11);
  head.write('\x80\x04\x8e', 'latin1');
  const payload = SIZE - head.length - tail.length;
  head.writeBigUInt64LE(BigInt(payload), 3);
  const handle = await open(file, 'w');
  try {
    await handle.write(head, 0, head.length, 0);
    await handle.write(tail, 0, tail.length, head.length + payload);
  } finally {
    await handle.close();
  }
  const { stdout } = await execFileAsync(TSX, [CHILD, file], { maxBuffer: 1 << 20 });
  const result = JSON.parse(stdout) as { findings: { ruleId: string; offset: number }[]; maxRss: number };
  expect(result.findings).toEqual([
    expect.objectContaining({ ruleId: 'pickle.dangerous-global', offset: head.length + payload + 1 }),
  ]);
  expect(result.maxRss).toBeLessThan(MAX_RSS);
});

test('a long scan gives the event loop turns, so a cancellation from a timer stops it', async ({ tmp }) => {
  // A 2 GB sparse file that starts like HDF5: the Keras check reads its first 64 MiB, in 1 MiB reads, for the root group.
  const file = join(tmp, 'weights.h5');
  const handle = await open(file, 'w');
  try {
    await handle.write(Buffer.from('\x89HDF\r\n\x1a\n', 'latin1'), 0, 8, 0);
    await handle.truncate(SIZE);
  } finally {
    await handle.close();
  }
  const controller = new AbortController();
  // Due at once: it fires only if the scan gives the event loop a turn while it reads (64 reads of 1 MiB).
  setTimeout(() => controller.abort(new Error('scan cancelled by the test')), 1);
  await expect(scanTargets([{ path: 'weights.h5', file, size: SIZE }], { signal: controller.signal })).rejects.toThrow(
    'scan cancelled by the test',
  );
});
