/**
 * One directory walker: acquire's `file://` source, `mrel scan <dir>` and `mrel license`'s directory listing see the
 * same files of a model directory — links inside followed and named by their own path, and the whole directory
 * refused when a link leaves it or a special file is in it, whoever walks it.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsafePathError } from '../../activities/acquire/errors';
import { resolveFileSource } from '../../activities/acquire/file-source';
import { walkModelDirectory, WalkError } from '../../activities/formats/walk';
import { directoryFiles } from '../../activities/license/model-files';
import { register as scanCommand } from '../../client/commands/scan';
import { runCommand } from '../helpers/command';

let tmp: string;
let root: string;
beforeAll(async () => {
  tmp = await realpath(await mkdtemp(join(tmpdir(), 'mrel-walk-')));
  root = join(tmp, 'model');
  await mkdir(join(root, 'nested', 'deep'), { recursive: true });
  await mkdir(join(root, 'blobs'));
  await mkdir(join(tmp, 'outside'));
  await writeFile(join(tmp, 'outside', 'secret.txt'), 'not part of the model');
  await writeFile(join(root, 'config.json'), '{"hidden": 4}');
  await writeFile(join(root, 'nested', 'deep', 'notes.md'), '# notes\n');
  await writeFile(join(root, 'blobs', 'w'), 'plain text weights\n');
  await writeFile(join(root, 'a.txt'), 'a\n');
  await symlink('blobs/w', join(root, 'model.bin'));
  await symlink(join(root, 'nested'), join(root, 'docs'));
});
afterAll(async () => rm(tmp, { recursive: true, force: true }));

const policy = () => ({ roots: [tmp], hosts: [], networks: [] });

/** What each door lists of `root`: the walker, acquire, `mrel scan --format json` and the license gate's listing. */
async function listings(): Promise<Record<string, string[] | string>> {
  const outcome = async (list: () => Promise<string[]>): Promise<string[] | string> =>
    list().catch((err: unknown) => `refused: ${(err as Error).message}`);
  const scan = await runCommand(scanCommand, ['scan', root, '--format', 'json']);
  return {
    walker: await outcome(async () => (await walkModelDirectory(root)).files.map((f) => f.path)),
    acquire: await outcome(async () =>
      (await resolveFileSource(pathToFileURL(root).href, policy())).files.map((f) => f.path),
    ),
    license: await outcome(async () => (await directoryFiles(root)).files.map((f) => f.path)),
    scan:
      scan.code === 2
        ? `refused: ${scan.err.replace(/^mrel scan: /, '')}`
        : (JSON.parse(scan.out) as { files: { path: string }[] }).files.map((f) => f.path.slice(root.length + 1)),
  };
}

describe('a model directory with a nested folder and links inside it', () => {
  it('lists the same files, in the same order, to the walker, acquire, mrel scan and the license gate', async () => {
    const expected = ['a.txt', 'blobs/w', 'config.json', 'docs/deep/notes.md', 'model.bin', 'nested/deep/notes.md'];
    expect(await listings()).toEqual({ walker: expected, acquire: expected, license: expected, scan: expected });
  });

  it('names a linked file by the link and reads it from its real path inside the root', async () => {
    const { files } = await walkModelDirectory(root);
    expect(files.find((f) => f.path === 'model.bin')).toEqual({
      path: 'model.bin',
      realPath: join(root, 'blobs', 'w'),
      size: 'plain text weights\n'.length,
    });
  });
});

describe('a model directory that no door may take', () => {
  it('a link out of the root is refused by all, naming the link and its target', async () => {
    const link = join(root, 'blobs', 'leak.txt');
    await symlink(join(tmp, 'outside', 'secret.txt'), link);
    try {
      const why = `blobs/leak.txt is a symlink to ${join(tmp, 'outside', 'secret.txt')}, outside the model root ${root}`;
      expect(await listings()).toEqual({
        walker: `refused: ${why}`,
        acquire: `refused: ${why}`,
        license: `refused: ${why}`,
        scan: `refused: ${why}`,
      });
      await expect(walkModelDirectory(root)).rejects.toMatchObject({
        code: 'Unsafe',
        details: { path: 'blobs/leak.txt' },
      });
      await expect(resolveFileSource(pathToFileURL(root).href, policy())).rejects.toBeInstanceOf(UnsafePathError);
    } finally {
      await unlink(link);
    }
  });

  it('a FIFO is refused by all rather than skipped or read', async () => {
    const fifo = join(root, 'blobs', 'pipe');
    await promisify(execFile)('mkfifo', [fifo]);
    try {
      const why = 'blobs/pipe is neither a regular file nor a directory (a FIFO, socket or device?)';
      expect(await listings()).toEqual({
        walker: `refused: ${why}`,
        acquire: `refused: ${why}`,
        license: `refused: ${why}`,
        scan: `refused: ${why}`,
      });
      await expect(walkModelDirectory(root)).rejects.toBeInstanceOf(WalkError);
    } finally {
      await unlink(fifo);
    }
  });
});
