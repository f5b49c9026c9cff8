/**
 * Manifests kept in the artifact store by digest. Acquire stores the full file list as canonical JSON and hands on
 * only a ManifestRef; every later step loads the list from the store, so a model of 20,000 files costs each activity
 * input and the history a few hundred bytes.
 */
import { createHash } from 'node:crypto';
import type { ArtifactFile, ArtifactManifest, ManifestRef } from '../../contract/types';
import { canonicalJson } from '../common/canonical-json';
import type { ArtifactStore } from './artifact-store';

/** Manifest blobs above this are refused when read (about 300,000 files). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
const MAX_EMPTY_NAMED = 20;

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

/** Stores the manifest (canonical JSON, so the same model gives the same blob) and returns its reference. */
export async function storeManifest(store: ArtifactStore, manifest: ArtifactManifest): Promise<ManifestRef> {
  const { storeRoot: _legacy, ...portable } = manifest;
  const blob = await store.putBytes(canonicalJson(portable), { path: `manifest of ${manifest.model}` });
  const empty = manifest.files.filter((f) => f.size === 0).map((f) => f.path);
  return {
    model: manifest.model,
    version: manifest.version,
    source: manifest.source,
    resolvedRevision: manifest.resolvedRevision,
    manifestDigest: manifest.manifestDigest,
    blob: blob.sha256,
    fileCount: manifest.files.length,
    totalSize: manifest.totalSize,
    ...(empty.length > 0 ? { emptyFiles: empty.slice(0, MAX_EMPTY_NAMED) } : {}),
  };
}

/** Whether `value` is a whole manifest (releases acquired before manifests were kept by digest) or a reference. */
export function isFullManifest(value: ManifestRef | ArtifactManifest): value is ArtifactManifest {
  return Array.isArray((value as ArtifactManifest).files);
}

/**
 * The full manifest for a reference, checked against the digests the reference names: a store that returned
 * another list (tampered, or a bug) is refused. A legacy whole manifest is returned as it is.
 */
export async function loadManifest(
  store: ArtifactStore,
  ref: ManifestRef | ArtifactManifest,
): Promise<ArtifactManifest> {
  if (isFullManifest(ref)) return ref;
  const bytes = await store.read(ref.blob, MAX_MANIFEST_BYTES);
  const manifest = JSON.parse(bytes.toString('utf8')) as ArtifactManifest;
  if (!Array.isArray(manifest.files) || manifestDigest(manifest.files) !== ref.manifestDigest) {
    throw new Error(
      `the manifest blob sha256:${ref.blob.slice(0, 12)}… does not match manifest digest ${ref.manifestDigest.slice(0, 12)}…: acquire the release again`,
    );
  }
  return manifest;
}
