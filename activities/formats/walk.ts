/**
 * The one way a model directory on disk becomes a list of files: acquire's `file://` source, `mrel scan`, `mrel
 * license`, `mrel cost estimate` and `mrel evaluate --model` all walk with it, so a command run on a directory sees
 * exactly the files the gates see once that directory is acquired.
 *
 * The rules: entries in code-unit order of their names, depth first; symbolic links are followed only while their
 * real target stays inside the real root (a link to /etc/shadow in a model directory must not end up in an artifact
 * store other teams read); a link out of the root, a dangling link, a link loop, and anything that is neither a
 * regular file nor a directory (a FIFO, socket or device) refuse the whole directory rather than being left out,
 * because a model that silently loses a file is not the model its owner meant to ship.
 */
import { realpath, readdir, readlink, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';

export interface WalkedFile {
  /** Relative to the root, forward slashes; a file reached through a link is named by the link's path. */
  path: string;
  /** Where its bytes are: the real path, inside the real root. */
  realPath: string;
  size: number;
}

export type WalkErrorCode = 'NotFound' | 'Unreadable' | 'Unsafe';

/** Why a directory cannot be walked; `details` are the facts behind the message (path, target). */
export class WalkError extends Error {
  override readonly name = 'WalkError';

  constructor(
    readonly code: WalkErrorCode,
    message: string,
    readonly details: Record<string, string> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface WalkedDirectory {
  /** The root with every link resolved. */
  realRoot: string;
  files: WalkedFile[];
}

/** The real path of `path`, or a WalkError saying it does not exist or cannot be read. */
export async function realRootOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new WalkError('NotFound', `${path} does not exist`, { path }, { cause: err });
    if (code === 'EACCES' || code === 'EPERM')
      throw new WalkError('Unreadable', `${path} is not readable (${code})`, { path }, { cause: err });
    throw err;
  }
}

/** Every regular file under the directory `root`, by the rules above. */
export async function walkModelDirectory(root: string): Promise<WalkedDirectory> {
  const realRoot = await realRootOf(root);
  const rootStat = await stat(realRoot);
  if (!rootStat.isDirectory()) throw new WalkError('Unsafe', `${root} is not a directory`, { path: root });
  const files: WalkedFile[] = [];
  await walk(realRoot, realRoot, '', new Set([realRoot]), files);
  return { realRoot, files };
}

/** @param ancestors real paths of the directories on the way down, to refuse link loops instead of walking forever */
async function walk(
  realRoot: string,
  dir: string,
  prefix: string,
  ancestors: ReadonlySet<string>,
  files: WalkedFile[],
): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    // A name is one path segment (no "/", NUL, "." or ".."); only a backslash could give a file two spellings.
    if (entry.name.includes('\\'))
      throw new WalkError(
        'Unsafe',
        `file ${JSON.stringify(path)} is refused: it contains a backslash (use forward slashes)`,
        { path },
      );
    const abs = join(dir, entry.name);
    let target = abs;
    if (entry.isSymbolicLink()) {
      target = await followLinkInside(realRoot, abs, path);
    } else if (!entry.isFile() && !entry.isDirectory()) {
      throw new WalkError('Unsafe', `${path} is neither a regular file nor a directory (a FIFO, socket or device?)`, {
        path,
      });
    }
    const targetStat = entry.isSymbolicLink() || entry.isFile() ? await stat(target) : undefined;
    if (entry.isDirectory() || targetStat?.isDirectory()) {
      if (ancestors.has(target))
        throw new WalkError('Unsafe', `${path} is a symlink loop: it points back to its own ancestor ${target}`, {
          path,
          target,
        });
      await walk(realRoot, target, path, new Set([...ancestors, target]), files);
    } else if (targetStat?.isFile()) {
      files.push({ path, realPath: target, size: targetStat.size });
    } else {
      throw new WalkError('Unsafe', `${path} points to ${target}, which is neither a regular file nor a directory`, {
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
    throw new WalkError('NotFound', `${path} is a symlink to ${dangling}, which does not exist`, {
      path,
      target: dangling,
    });
  }
  const rel = relative(realRoot, target);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw new WalkError('Unsafe', `${path} is a symlink to ${target}, outside the model root ${realRoot}`, {
      path,
      target,
    });
  return target;
}
