/**
 * `file://<absolute path>`: a directory walked recursively, or a single regular file, inside the file roots of the
 * source policy. A directory is walked by the shared model-directory walker (activities/formats/walk.ts): symlinks
 * are followed only while their real target stays inside the model root, so a link to /etc/shadow in a model
 * directory does not end up in an artifact store that other teams read, and `mrel scan <dir>` sees the same files.
 */
import { constants } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFilePath, type SourcePolicy } from '../common/source-policy';
import { walkModelDirectory, WalkError, type WalkedFile } from '../formats/walk';
import { InvalidRequestError, SourceNotFoundError, SourceRejectedError, UnsafePathError } from './errors';
import { assertSafeRelativePath } from './paths';
import type { ResolvedSource, SourceFile } from './source';
import { CHUNK_BYTES } from '../store/filesystem';

export async function resolveFileSource(
  source: string,
  policy: SourcePolicy,
  field = 'model.source',
): Promise<ResolvedSource> {
  let root: string;
  try {
    root = fileURLToPath(source);
  } catch (err) {
    throw new InvalidRequestError(
      `${source} is not a local file URL: use file:///absolute/path (${err instanceof Error ? err.message : err})`,
      { source },
    );
  }
  // Before anything else touches the path: "does not exist" about a path outside the roots would already tell.
  await checkFilePath(root, policy, field);
  const realRoot = await realpathOrFail(root, source);
  const rootStat = await stat(realRoot);
  if (rootStat.isFile()) {
    const path = basename(root);
    assertSafeRelativePath(path, `${source}: file name`);
    return { resolvedRevision: realRoot, files: [regularFile(path, realRoot)] };
  }
  if (!rootStat.isDirectory()) {
    throw new UnsafePathError(`${source} is neither a regular file nor a directory`, { source });
  }
  const files = (await walkOrFail(realRoot)).map((f) => regularFile(f.path, f.realPath));
  return { resolvedRevision: realRoot, files };
}

/** The walker's refusals as acquire's permanent failures, with the same messages and details. */
async function walkOrFail(realRoot: string): Promise<WalkedFile[]> {
  try {
    return (await walkModelDirectory(realRoot)).files;
  } catch (err) {
    if (!(err instanceof WalkError)) throw err;
    if (err.code === 'NotFound') throw new SourceNotFoundError(err.message, err.details, { cause: err });
    if (err.code === 'Unreadable') throw new SourceRejectedError(err.message, err.details, { cause: err });
    throw new UnsafePathError(err.message, err.details, { cause: err });
  }
}

function regularFile(path: string, realPath: string): SourceFile {
  return {
    path,
    async open() {
      return (await openRegularFile(path, realPath)).createReadStream({ highWaterMark: CHUNK_BYTES });
    },
    openFile: () => openRegularFile(path, realPath),
  };
}

async function openRegularFile(path: string, realPath: string): Promise<FileHandle> {
  // O_NOFOLLOW: had the checked file been swapped for a symlink since the walk, refuse rather than follow it.
  const handle = await open(realPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await handle.stat()).isFile()) {
      throw new UnsafePathError(`${path} is no longer a regular file`, { path });
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

async function realpathOrFail(path: string, source: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new SourceNotFoundError(`${source}: ${path} does not exist`, { source, path });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new SourceRejectedError(`${source}: ${path} is not readable by the worker (${code})`, { source, path });
    }
    throw err;
  }
}
