/**
 * The files of a model as the license gate sees them: a list of paths and sizes, and a way to read one. The gate
 * activity reads through the acquired manifest (by digest, from the artifact store); `mrel license` reads a
 * directory on disk. Everything else in the gate is the same code.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ArtifactManifest } from '../../contract/types';
import { storePath } from '../store/filesystem';

export interface ModelFile {
  /** Relative to the model root, with forward slashes. */
  path: string;
  size: number;
}

export interface ModelFiles {
  files: ModelFile[];
  read(path: string): Promise<Buffer>;
}

/** The acquired model: paths from the manifest, bytes from the content-addressed store. */
export function manifestFiles(manifest: ArtifactManifest): ModelFiles {
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  return {
    files: manifest.files.map((f) => ({ path: f.path, size: f.size })),
    async read(path) {
      const file = byPath.get(path);
      if (!file) throw new Error(`${path} is not in the manifest of ${manifest.model}@${manifest.version}`);
      return readFile(storePath(manifest.storeRoot, file.sha256));
    },
  };
}

/** Directories that hold tooling state rather than model files. */
const SKIPPED_DIRECTORIES = new Set(['.git', '.hg', '.svn', 'node_modules', '.venv', '__pycache__']);

/**
 * A model directory on disk. Only regular files count: symbolic links are not followed, so nothing outside the
 * directory is read. Throws ENOENT / ENOTDIR errors for a path that is not a directory.
 */
export async function directoryFiles(root: string): Promise<ModelFiles> {
  const files: ModelFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRECTORIES.has(entry.name)) await walk(full);
      } else if (entry.isFile()) {
        files.push({ path: relative(root, full).split(sep).join('/'), size: (await stat(full)).size });
      }
    }
  };
  await walk(root);
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { files, read: (path) => readFile(join(root, ...path.split('/'))) };
}
