import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ArtifactFile, ArtifactManifest } from '../../contract/types';
import { PRIVATE_DIR, PRIVATE_FILE } from '../common/private-files';

/** Code-unit order, not locale order: the manifest digest must not depend on the machine's locale. */
export function sortFiles(files: readonly ArtifactFile[]): ArtifactFile[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** sha256 over the sorted `path\0sha256\n` lines: one digest that names the whole model's content. */
export function manifestDigest(files: readonly ArtifactFile[]): string {
  const hash = createHash('sha256');
  for (const file of sortFiles(files)) hash.update(`${file.path}\0${file.sha256}\n`);
  return hash.digest('hex');
}

/** `<storeRoot>/manifests/<model>/<version>/<manifestDigest>.json` */
export function manifestPath(manifest: ArtifactManifest): string {
  return join(manifest.storeRoot, 'manifests', manifest.model, manifest.version, `${manifest.manifestDigest}.json`);
}

/** Written via a temp file and rename, so a reader never sees half a manifest. */
export async function writeManifest(manifest: ArtifactManifest): Promise<string> {
  const target = manifestPath(manifest);
  const tmpDir = join(manifest.storeRoot, 'tmp');
  const tmpPath = join(tmpDir, `${randomUUID()}.json`);
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR });
  await mkdir(dirname(target), { recursive: true, mode: PRIVATE_DIR });
  try {
    await writeFile(tmpPath, `${JSON.stringify(manifest, null, 2)}\n`, { mode: PRIVATE_FILE });
    await rename(tmpPath, target);
  } finally {
    await rm(tmpPath, { force: true });
  }
  return target;
}
