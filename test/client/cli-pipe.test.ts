/**
 * `mrel … | head`: the real CLI entry point (bin/mrel.js) writing into a pipe whose reader has gone. The command ends
 * quietly with its own exit code; no EPIPE, no stack trace.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MREL = fileURLToPath(new URL('../../bin/mrel.js', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-pipe-'));
  // Enough files that the JSON report (hundreds of KiB) cannot fit in a pipe's buffer.
  await mkdir(join(dir, 'model'));
  await Promise.all(
    Array.from({ length: 1500 }, (_, i) => writeFile(join(dir, 'model', `part-${i}.txt`), `shard ${i}\n`)),
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs `mrel <args> | <reader>` in bash; returns bash's stderr (mrel's included) and mrel's own exit code. */
async function piped(args: string, reader: string): Promise<{ mrelExit: number; stderr: string }> {
  const script = `node ${JSON.stringify(MREL)} ${args} | ${reader}; echo "mrel-exit=\${PIPESTATUS[0]}" >&2`;
  const { stderr } = await promisify(execFile)('bash', ['-c', script], { cwd: dir, timeout: 60_000 });
  const match = /mrel-exit=(\d+)\s*$/.exec(stderr);
  expect(match, stderr).not.toBeNull();
  return { mrelExit: Number(match?.[1]), stderr: stderr.replace(/mrel-exit=\d+\s*$/, '') };
}

describe('mrel into a closed pipe', () => {
  it('a long report cut by `head -c 10` ends with the scan exit code and nothing on stderr', async () => {
    const { mrelExit, stderr } = await piped('scan --format json model', 'head -c 10 >/dev/null');
    expect(stderr).toBe('');
    expect(mrelExit).toBe(0);
  });

  it('a reader that exits before the first line is written: scan and --help end quietly', async () => {
    const scan = await piped('scan model', 'true');
    expect(scan).toEqual({ mrelExit: 0, stderr: '' });
    const help = await piped('--help', 'true');
    expect(help).toEqual({ mrelExit: 0, stderr: '' });
  });

  it('with stdout cut, errors still reach stderr and the exit code is the command’s', async () => {
    const { mrelExit, stderr } = await piped('scan no-such-dir', 'head -c 10 >/dev/null');
    expect(mrelExit).toBe(2);
    expect(stderr).toMatch(/mrel scan: no-such-dir: no such file or directory/);
  });
});
