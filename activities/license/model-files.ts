/**
 * The files of a model as the license gate sees them: a list of paths and sizes, and a way to read one. The gate
 * activity reads through the acquired manifest (by digest, from the artifact store); `mrel license` reads a
 * directory on disk. Everything else in the gate is the same code.
 */
import { readFile } from 'node:fs/promises';
import type { ArtifactManifest } from '../../contract/types';
import { walkModelDirectory } from '../formats/walk';
import type { ArtifactStore } from '../store/artifact-store';

export interface ModelFile {
  /** Relative to the model root, with forward slashes. */
  path: string;
  size: number;
}

export interface ModelFiles {
  files: ModelFile[];
  read(path: string): Promise<Buffer>;
}

/** Largest file the license gate reads whole (cards, LICENSE texts, package metadata are far smaller). */
const MAX_LICENSE_SOURCE_BYTES = 64 * 1024 * 1024;

/** The acquired model: paths from the manifest, bytes from the artifact store. */
export function manifestFiles(manifest: ArtifactManifest, store: ArtifactStore): ModelFiles {
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  return {
    files: manifest.files.map((f) => ({ path: f.path, size: f.size })),
    async read(path) {
      const file = byPath.get(path);
      if (!file) throw new Error(`${path} is not in the manifest of ${manifest.model}@${manifest.version}`);
      return store.read(file.sha256, MAX_LICENSE_SOURCE_BYTES);
    },
  };
}

/**
 * A model directory on disk, walked as acquire walks a `file://` source (activities/formats/walk.ts), so `mrel
 * license` judges the files the gate would. Only listed files are read. Throws a WalkError for a path that is not a
 * directory or that holds a link out of it, a dangling link or a special file.
 */
export async function directoryFiles(root: string): Promise<ModelFiles> {
  const { files: walked } = await walkModelDirectory(root);
  const byPath = new Map(walked.map((f) => [f.path, f]));
  return {
    files: walked.map((f) => ({ path: f.path, size: f.size })),
    async read(path) {
      const file = byPath.get(path);
      if (!file) throw new Error(`${path} is not a file of the model directory ${root}`);
      return readFile(file.realPath);
    },
  };
}
