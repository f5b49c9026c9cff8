/**
 * `file://<absolute path>`: a directory walked recursively, or a single regular file, inside the file roots of the
 * source policy. Symlinks are followed only while their real target stays inside the model root: a link to
 * /etc/shadow in a model directory must not end up in an artifact store that other teams read.
 */
import { constants, type Dirent } from 'node:fs';
import { open, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFilePath, type SourcePolicy } from '../common/source-policy';
import { InvalidRequestError, SourceNotFoundError, SourceRejectedError, UnsafePathError } from './errors';
import { assertSafeRelativePath } from './paths';
import type { ResolvedSource, SourceFile } from './source';
import { CHUNK_BYTES } from '../store/filesystem';

export async function resolveFileSource(source: string, policy: SourcePolicy): Promise<ResolvedSource> {
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
  await checkFilePath(root, policy, 'model.source');
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
  const files: SourceFile[] = [];
  await walk(realRoot, realRoot, '', new Set([realRoot]), files);
  return { resolvedRevision: realRoot, files };
}

/**
 * @param ancestors real paths of the directories on the way down, to refuse symlink loops instead of walking forever
 */
async function walk(
  realRoot: string,
  dir: string,
  prefix: string,
  ancestors: ReadonlySet<string>,
  files: SourceFile[],
): Promise<void> {
  const entries: Dirent[] = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    assertSafeRelativePath(path, 'file');
    const abs = join(dir, entry.name);
    let target = abs;
    if (entry.isSymbolicLink()) {
      target = await followLinkInside(realRoot, abs, path);
    } else if (!entry.isFile() && !entry.isDirectory()) {
      throw new UnsafePathError(`${path} is neither a regular file nor a directory (a FIFO, socket or device?)`, {
        path,
      });
    }
    const targetStat = entry.isSymbolicLink() ? await stat(target) : entry;
    if (targetStat.isFile()) {
      files.push(regularFile(path, target));
    } else if (targetStat.isDirectory()) {
      if (ancestors.has(target)) {
        throw new UnsafePathError(`${path} is a symlink loop: it points back to its own ancestor ${target}`, {
          path,
          target,
        });
      }
      await walk(realRoot, target, path, new Set([...ancestors, target]), files);
    } else {
      throw new UnsafePathError(`${path} points to ${target}, which is neither a regular file nor a directory`, {
        path,
        target,
      });
    }
  }
}

async function followLinkInside(realRoot: string, link: string, path: string): Promise<string> {
  let target: string;
  try {
    target = await realpath(link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const dangling = await readlink(link);
    throw new SourceNotFoundError(`${path} is a symlink to ${dangling}, which does not exist`, {
      path,
      target: dangling,
    });
  }
  const rel = relative(realRoot, target);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new UnsafePathError(`${path} is a symlink to ${target}, outside the model root ${realRoot}`, {
      path,
      target,
    });
  }
  return target;
}

function regularFile(path: string, realPath: string): SourceFile {
  return {
    path,
    async open() {
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
      return handle.createReadStream({ highWaterMark: CHUNK_BYTES });
    },
  };
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
