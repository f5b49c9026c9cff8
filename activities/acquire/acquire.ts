/**
 * The acquire stage without Temporal: resolve the source, stream every file into the content-addressed store
 * (verifying declared digests on the way), and write the manifest that later stages read artifacts through.
 */
import { resolve } from 'node:path';
import { loadSourcePolicy } from '../../config/loader';
import { SourceNotAllowedError, type Lookup, type SourcePolicy } from '../common/source-policy';
import type { ArtifactFile, ArtifactManifest, ModelRef } from '../../contract/types';
import { modelRefSchema } from '../../contract/types';
import {
  AcquireError,
  EmptyModelError,
  formatIssues,
  InvalidRequestError,
  SourceNotFoundError,
  SourceRejectedError,
  SourceUnavailableError,
  UnsupportedSourceError,
} from './errors';
import { resolveFileSource } from './file-source';
import { resolveHfSource } from './hf-source';
import { checkAllowedUrl } from './http-get';
import { resolveHttpSource } from './http-source';
import { manifestDigest, sortFiles } from '../store/manifest';
import { assertSafeRelativePath } from './paths';
import type { ResolvedSource, SourceFile, SourceOptions } from './source';
import { FilesystemStore } from '../store/filesystem';
import type { ArtifactStore, PutOptions, StoredBlob } from '../store/artifact-store';

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

export interface AcquireProgress {
  /** Manifest path of the file being stored. */
  file: string;
  /** Bytes of that file stored so far. */
  bytes: number;
}

export interface AcquireOptions {
  /** Where the files go; a filesystem store at `storeRoot` when not given. */
  store?: ArtifactStore;
  storeRoot?: string;
  hfEndpoint?: string;
  hfToken?: string;
  fetch?: typeof fetch;
  /**
   * Where sources may come from; config/sources.yaml plus the MREL_SOURCE_* variables when not given, so that no
   * caller acquires unchecked.
   */
  sourcePolicy?: SourcePolicy;
  /** Resolves host names for the address checks (default: the system resolver, as fetch uses). */
  lookup?: Lookup;
  /** PEM certificates trusted for https sources besides the bundled roots (MREL_SOURCE_CA_FILE, read by the worker). */
  sourceCa?: string;
  /** The request field the source came from, for refusals (default `model.source`). */
  field?: string;
  /** Aborts listing and transfers; temp files are removed and nothing is added to the store. */
  signal?: AbortSignal;
  onProgress?: (progress: AcquireProgress) => void;
}

/**
 * Store every file of `model` and return its manifest (the caller stores the manifest itself: storeManifest).
 *
 * Idempotent: blobs already in the store are reused. Throws an AcquireError subclass or SourceNotAllowedError (the
 * source policy refuses it) for permanent failures and SourceUnavailableError (or a plain I/O error) for transient
 * ones.
 */
export async function acquireArtifacts(model: ModelRef, options: AcquireOptions): Promise<ArtifactManifest> {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(model.source)?.[1]?.toLowerCase();
  if (scheme !== 'file' && scheme !== 'http' && scheme !== 'https' && scheme !== 'hf') {
    throw new UnsupportedSourceError(
      `${model.source}: unsupported source ${scheme ? `scheme "${scheme}:"` : 'URI'} ` +
        '(supported: file:///absolute/dir, https://host/path, http://host/path, hf://org/repo@revision)',
      { source: model.source },
    );
  }
  // Activities can be started by anything that reaches the task queue, so the door's validation is not assumed.
  const parsed = modelRefSchema.safeParse(model);
  if (!parsed.success) throw new InvalidRequestError(formatIssues(parsed.error.issues, 'model'), {});

  const store = artifactStore(options);
  const sourceOptions: SourceOptions = {
    fetch: options.fetch ?? globalThis.fetch,
    hfEndpoint: (options.hfEndpoint ?? DEFAULT_HF_ENDPOINT).replace(/\/+$/, ''),
    hfToken: options.hfToken,
    signal: options.signal,
    policy: options.sourcePolicy ?? (await loadSourcePolicy()),
    lookup: options.lookup,
    ca: options.sourceCa,
    field: options.field ?? 'model.source',
  };
  // Refused before anything else about the source is looked at, so that no answer tells what lies behind it.
  if (scheme === 'http' || scheme === 'https') {
    await checkAllowedUrl(new URL(model.source), model.source, sourceOptions);
  }
  const source = await resolveSource(scheme, model, sourceOptions);

  const declared = new Map(Object.entries(model.digests ?? {}));
  checkListing(model, source, declared);

  const files = await storeAll(source.files, store, declared, model.source, options);

  const totalSize = files.reduce((sum, file) => sum + file.size, 0);
  if (totalSize === 0) {
    throw new EmptyModelError(`${model.source} holds only empty files (${files.map((f) => f.path).join(', ')})`, {
      source: model.source,
    });
  }
  const sorted = sortFiles(files);
  const manifest: ArtifactManifest = {
    model: model.name,
    version: model.version,
    source: model.source,
    // A file source's revision is its URI: the folder it resolved to is a host path and stays on the worker.
    resolvedRevision: scheme === 'file' ? model.source : source.resolvedRevision,
    files: sorted,
    totalSize,
    manifestDigest: manifestDigest(sorted),
  };
  return manifest;
}

function artifactStore(options: AcquireOptions): ArtifactStore {
  if (options.store) return options.store;
  if (options.storeRoot === undefined) throw new TypeError('acquire needs an artifact store (store or storeRoot)');
  return new FilesystemStore(resolve(options.storeRoot));
}

function resolveSource(scheme: 'file' | 'http' | 'https' | 'hf', model: ModelRef, options: SourceOptions) {
  switch (scheme) {
    case 'file':
      return resolveFileSource(model.source, options.policy, options.field);
    case 'http':
    case 'https':
      return resolveHttpSource(model, options);
    case 'hf':
      return resolveHfSource(model.source, options);
  }
}

/** Everything that can be refused without transferring a byte is refused before the first transfer. */
function checkListing(model: ModelRef, source: ResolvedSource, declared: ReadonlyMap<string, string>): void {
  if (source.files.length === 0) {
    throw new EmptyModelError(`${model.source} has no files`, { source: model.source });
  }
  const listed = new Set<string>();
  for (const file of source.files) {
    // Each source checks its own paths; checking again here keeps a future source from forgetting to.
    assertSafeRelativePath(file.path, `${model.source}: file`);
    if (listed.has(file.path)) {
      throw new SourceRejectedError(`${model.source} lists ${JSON.stringify(file.path)} twice`, {
        source: model.source,
        path: file.path,
      });
    }
    listed.add(file.path);
  }
  for (const path of declared.keys()) {
    if (!listed.has(path)) {
      throw new SourceNotFoundError(
        `${model.source} has no file ${JSON.stringify(path)}, which model.digests declares ` +
          `(the source has: ${[...listed].slice(0, 20).join(', ')}${listed.size > 20 ? ', …' : ''})`,
        { source: model.source, path },
      );
    }
  }
}

/** Name the file in transient errors; a bare "terminated" from a dropped connection helps nobody. */
/**
 * Files stored at once. A model of many small files (a tokenizer's vocabulary shards, a sharded checkpoint, 20,000
 * files) is bound by round trips and file creation, not bandwidth; a few at a time keep memory at a few chunks each.
 */
export const ACQUIRE_CONCURRENCY = 4;

/**
 * Streams every file into the store, ACQUIRE_CONCURRENCY at a time. The first failure stops the others and is what
 * the caller sees, once every transfer has ended and removed its temp file.
 */
async function storeAll(
  sourceFiles: ResolvedSource['files'],
  store: ArtifactStore,
  declared: Map<string, string>,
  sourceUri: string,
  options: AcquireOptions,
): Promise<ArtifactFile[]> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const files: ArtifactFile[] = new Array(sourceFiles.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < sourceFiles.length) {
      const index = next++;
      const file = sourceFiles[index] as ResolvedSource['files'][number];
      try {
        options.signal?.throwIfAborted();
        const putOptions: PutOptions = {
          path: file.path,
          expectedSha256: declared.get(file.path),
          signal,
          onProgress: options.onProgress && ((bytes) => options.onProgress?.({ file: file.path, bytes })),
        };
        const blob = await storeFile(file, store, putOptions, signal);
        files[index] = { path: file.path, ...blob };
      } catch (err) {
        // Only the first failure counts: the others are the transfers it stopped.
        if (failure === undefined) {
          failure = { err: describeTransferError(err, file.path, sourceUri, options.signal) };
          stop.abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(ACQUIRE_CONCURRENCY, sourceFiles.length) }, worker));
  if (failure !== undefined) throw failure.err;
  return files;
}

/** A local file goes to the store as a file when the store takes one (several times faster), else as a stream. */
async function storeFile(
  file: SourceFile,
  store: ArtifactStore,
  options: PutOptions,
  signal: AbortSignal,
): Promise<StoredBlob> {
  if (!file.openFile || !store.putFile) return store.put(await file.open(signal), options);
  const handle = await file.openFile(signal);
  try {
    return await store.putFile(handle, options);
  } finally {
    await handle.close();
  }
}

function describeTransferError(err: unknown, path: string, source: string, signal?: AbortSignal): unknown {
  if (
    err instanceof AcquireError ||
    err instanceof SourceNotAllowedError ||
    err instanceof SourceUnavailableError ||
    signal?.aborted
  ) {
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new SourceUnavailableError(`storing ${path} from ${source} failed: ${message}`, { cause: err });
}
