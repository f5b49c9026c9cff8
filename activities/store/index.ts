/**
 * The artifact store and what is kept in it by digest: the interface, the filesystem store, manifests and evidence.
 */
export * from './artifact-store';
export { CHUNK_BYTES, FilesystemStore, storePath, storeStream } from './filesystem';
export { isFullManifest, loadManifest, manifestDigest, sortFiles, storeManifest } from './manifest';
