/**
 * The acquire activity: Temporal wiring around the pure code in ./acquire. It maps permanent domain errors to
 * non-retryable ApplicationFailures, heartbeats progress while files stream, and turns cancellation into aborted
 * transfers.
 */
import { activityContext, throttledHeartbeat } from '../common/activity-context';
import type { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../contract/definitions';
import type { ManifestRef, ModelRef, PinnedArtifact } from '../../contract/types';
import type { ArtifactStore } from '../store/artifact-store';
import { storeManifest } from '../store/manifest';
import { pathToFileURL } from 'node:url';
import { acquireArtifacts, type AcquireProgress } from './acquire';
import { SourceNotAllowedError, type SourcePolicy } from '../common/source-policy';
import { AcquireError, type AcquireErrorCode } from './errors';

export { acquireArtifacts, DEFAULT_HF_ENDPOINT } from './acquire';
export type { AcquireOptions, AcquireProgress } from './acquire';
export * from './errors';
export { SourceNotAllowedError } from '../common/source-policy';
export { manifestDigest } from '../store/manifest';
export { storePath } from '../store/filesystem';

export interface AcquireDeps {
  /** The artifact store, shared with the stages that read artifacts. */
  store: ArtifactStore;
  /** Hugging Face Hub endpoint; falls back to HF_ENDPOINT, then https://huggingface.co. */
  hfEndpoint?: string;
  /** Hub token for private and gated repositories; falls back to HF_TOKEN. */
  hfToken?: string;
  fetch?: typeof fetch;
  /** Where sources may come from (loadSourcePolicy); config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
  /** PEM certificates trusted for https sources besides the bundled roots (MREL_SOURCE_CA_FILE). */
  sourceCa?: string;
}

export interface AcquireModelInput {
  model: ModelRef;
}

export interface AcquireDatasetInput {
  /** The request's `evaluation.dataset`: a file:// or https:// URI, or an absolute path. */
  source: string;
  /** The request's `evaluation.sha256`: content with another digest is refused. */
  sha256?: string;
}

/** Heartbeats are throttled by the SDK as well; this keeps a multi-GB file from producing thousands of calls. */
const HEARTBEAT_INTERVAL_MS = 1_000;

const failureTypes: Record<AcquireErrorCode, FailureType> = {
  InvalidRequest: FailureType.InvalidRequest,
  DigestMismatch: FailureType.DigestMismatch,
  UnsafePath: FailureType.UnsafePath,
  EmptyModel: FailureType.EmptyModel,
  SourceNotFound: FailureType.SourceNotFound,
  SourceRejected: FailureType.SourceRejected,
  UnsupportedSource: FailureType.UnsupportedSource,
};

export function createAcquireActivities(deps: AcquireDeps) {
  const hfEndpoint = deps.hfEndpoint ?? process.env.HF_ENDPOINT;
  const hfToken = deps.hfToken ?? process.env.HF_TOKEN;

  return {
    /**
     * Fetch every file of `model` into the content-addressed store and return its manifest.
     *
     * Idempotent: blobs are named by digest, so a retry reuses what an earlier attempt stored; the manifest is
     * rewritten with identical content. Heartbeats `{ file, bytes }` while streaming: give it a heartbeat timeout.
     * Permanent failures (digest mismatch, unsafe paths, a source the source policy refuses, 4xx, empty model, bad
     * request) are non-retryable with a FailureType; 5xx, network and I/O errors are plain errors and retried.
     */
    async acquireModel({ model }: AcquireModelInput): Promise<ManifestRef> {
      const context = activityContext();
      try {
        const manifest = await acquireArtifacts(model, {
          store: deps.store,
          hfEndpoint,
          hfToken,
          fetch: deps.fetch,
          sourcePolicy: deps.sourcePolicy,
          sourceCa: deps.sourceCa,
          signal: context?.cancellationSignal,
          onProgress: context && throttledHeartbeat<AcquireProgress>(context, (p) => p.file, HEARTBEAT_INTERVAL_MS),
        });
        return await storeManifest(deps.store, manifest);
      } catch (err) {
        throw toActivityFailure(err, context);
      }
    },

    /**
     * Fetch the evaluation dataset into the store and pin it by digest, like the model: the evaluation gates read
     * exactly these bytes, on whichever worker they run. The same source policy applies (roots, hosts, networks);
     * a declared sha256 that does not match is a non-retryable DigestMismatch.
     */
    async acquireDataset(input: AcquireDatasetInput): Promise<PinnedArtifact> {
      const context = activityContext();
      const source = /^[a-z][a-z0-9+.-]*:\/\//i.test(input.source) ? input.source : pathToFileURL(input.source).href;
      const name = decodeURIComponent(new URL(source).pathname.split('/').pop() ?? '') || 'dataset';
      try {
        const manifest = await acquireArtifacts(
          {
            name: 'dataset',
            version: '1',
            source,
            ...(input.sha256 ? { digests: { [name]: input.sha256 } } : {}),
          },
          {
            store: deps.store,
            fetch: deps.fetch,
            sourcePolicy: deps.sourcePolicy,
            sourceCa: deps.sourceCa,
            field: 'evaluation.dataset',
            signal: context?.cancellationSignal,
            onProgress: context && throttledHeartbeat<AcquireProgress>(context, (p) => p.file, HEARTBEAT_INTERVAL_MS),
          },
        );
        const file = manifest.files[0];
        if (manifest.files.length !== 1 || !file) {
          throw ApplicationFailure.nonRetryable(
            `evaluation.dataset ${input.source} names ${manifest.files.length} files; name one CSV or JSON Lines file`,
            FailureType.InvalidRequest,
          );
        }
        return { source, sha256: file.sha256, size: file.size };
      } catch (err) {
        throw toActivityFailure(err, context);
      }
    },
  };
}

/** Map a domain error to what Temporal should do with it. */
function toActivityFailure(err: unknown, context?: Context): unknown {
  // The worker reports a cancelled activity only when the error is its CancelledFailure (or an AbortError).
  if (context?.cancellationSignal.aborted) return context.cancellationSignal.reason ?? err;
  if (err instanceof AcquireError) {
    return ApplicationFailure.nonRetryable(err.message, failureTypes[err.code], err.details);
  }
  if (err instanceof SourceNotAllowedError) {
    return ApplicationFailure.nonRetryable(err.message, FailureType.SourceNotAllowed, { field: err.field });
  }
  return err;
}
