import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Lookup, SourcePolicy } from '../common/source-policy';

/** One file a source offers, opened only when the store is ready to take it. */
export interface SourceFile {
  /** Manifest path: relative to the model root, forward slashes, already checked by assertSafeRelativePath. */
  path: string;
  open(signal?: AbortSignal): Promise<Readable>;
  /** The same bytes as a local file opened for reading (file sources only), for stores that copy files faster. */
  openFile?(signal?: AbortSignal): Promise<FileHandle>;
}

/** A source listed and pinned: every file comes from `resolvedRevision`, whatever the branch does meanwhile. */
export interface ResolvedSource {
  resolvedRevision: string;
  files: SourceFile[];
}

export interface SourceOptions {
  fetch: typeof fetch;
  /** Hugging Face Hub endpoint without a trailing slash, e.g. https://huggingface.co */
  hfEndpoint: string;
  hfToken?: string;
  signal?: AbortSignal;
  /** Where sources may come from: every URL requested (redirects included) is checked against it. */
  policy: SourcePolicy;
  lookup?: Lookup;
  /** PEM certificates trusted for https besides the bundled roots (MREL_SOURCE_CA_FILE). */
  ca?: string;
  /** The request field the source came from, for refusals (`model.source`, `evaluation.dataset`). */
  field: string;
}
