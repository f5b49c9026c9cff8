/**
 * The gitops stage: writes an approved release (kustomize manifests, the release summary and its evidence bundle) into
 * the GitOps repository as one commit, which Argo CD or Flux then roll out.
 */
import { Context } from '@temporalio/activity';
import { resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../contract/definitions';
import type { GitOpsCommit, GitOpsReleaseInput } from '../../contract/types';
import { releaseRequestSchema } from '../../contract/types';
import type { ArtifactStore } from '../store/artifact-store';
import { BlobNotFoundError, BlobTooLargeError } from '../store/artifact-store';
import { commitMessage } from './commit-message';
import { isPinnedByDigest } from './delivery-policy';
import { GitOpsRejectedError, ReleaseCommitNotFoundError, RevertConflictError, UnsafePathError } from './errors';
import type { EvidenceBundleRef, EvidenceEntry, RenderedBundle } from './evidence-bundle';
import { EvidenceBundleError, renderEvidenceBundle } from './evidence-bundle';
import type { GateAnnotationHooks, GitIdentity } from './render';
import { DEFAULT_AUTHOR, renderRelease } from './render';
import { DEFAULT_BRANCH, publishRelease } from './repo';
import type { RevertResult } from './revert';
import { revertRelease } from './revert';
import { configSnapshots, renderAttestation, type ReleaseSigningKey } from './attest';
import { renderMlBom } from './ml-bom';
import { sha256Hex } from '../common/canonical-json';
import { loadManifest } from '../store/manifest';
import type { RevertInput } from '../../contract/delivery';
import type { MonitoringEvidenceInput } from '../../contract/monitoring';
import type { MonitoringEvidenceCommit } from './monitoring-evidence';
import { MonitoringEvidenceInputError, publishMonitoringEvidence } from './monitoring-evidence';

export { findReleaseCommit } from './repo';
export type { RevertResult } from './revert';
export type { MonitoringEvidenceCommit } from './monitoring-evidence';
export type { GateAnnotationHook, GateAnnotationHooks, GitIdentity } from './render';
export type { EvidenceBundleRef, EvidenceEntryRef, EvidenceIndex } from './evidence-bundle';
export { verifyBundle } from './evidence-bundle';

/** Evidence blobs one release may commit, and the largest one: bounds on what a publish holds in memory. */
export const MAX_EVIDENCE_ENTRIES = 1000;
export const MAX_EVIDENCE_BLOB_BYTES = 64 * 1024 * 1024;

/**
 * What the gitops activity receives: the release and, for releases that collected it, the evidence to commit as a
 * bundle (entries by digest; the bytes come from the artifact store). Releases started before evidence was collected
 * have none and commit as before, so their histories replay unchanged.
 */
export type GitOpsPublishInput = GitOpsReleaseInput & { evidence?: EvidenceBundleRef };

export interface GitOpsDeps {
  /** Path or URL of the GitOps repository. */
  repoUrl: string;
  /** Default `main`; created by the first release when the repository is empty. */
  branch?: string;
  /** Scratch directory for the per-call clones. */
  workRoot: string;
  /** Author and committer of release commits; default `modelrelease-bot <bot@modelrelease.local>`. */
  author?: GitIdentity;
  /**
   * Releases started before delivery policies only: the image for requests that name none (default
   * `modelrelease/model-server:latest`, as then). Releases with a delivery run their policy's serving image.
   */
  servingImage?: string;
  /** Extra `policy.modelrelease.io/…` annotations per gate, beside the `<gate>-verdict` every gate gets. */
  gateAnnotations?: GateAnnotationHooks;
  /** Pushes tried when other writers keep moving the branch; default 10. */
  maxPushAttempts?: number;
  /** Where the evidence blobs of a release are read from; required for releases whose input carries `evidence`. */
  store?: ArtifactStore;
  /**
   * The release signing key (MREL_SIGNING_KEY_FILE or MREL_SIGNING_KEY): a release with evidence then commits
   * `attestation.dsse.json` signed with it. Unset: no attestation.
   */
  signingKey?: ReleaseSigningKey;
  /**
   * The config folder the releases' policies and approvers.yaml come from: the bundle of a release then holds copies of
   * those whose digest its evidence records, so that `mrel verify` checks approvals against the files as they were.
   */
  configDir?: string;
}

export interface GitOpsActivities {
  commitRelease(input: GitOpsPublishInput): Promise<GitOpsCommit>;
  revertRelease(input: RevertInput): Promise<RevertResult>;
  commitMonitoringEvidence(input: MonitoringEvidenceInput): Promise<MonitoringEvidenceCommit>;
}

export function createGitOpsActivities(deps: GitOpsDeps): GitOpsActivities {
  const branch = deps.branch ?? DEFAULT_BRANCH;
  const author = deps.author ?? DEFAULT_AUTHOR;
  // Releases handled by one worker publish one after another: racing each other for the same branch only makes all
  // but one of them fetch, re-apply and push again (measured: 100 concurrent releases took 439 attempts). Other
  // workers can still move the branch; the retry loop in publishRelease handles those races.
  const serial = new SerialQueue();
  /** Where and as whom each step writes, how often it tries to push, and how it reports: the same for every step. */
  const remoteStep = (ctx: Context) => ({
    repoUrl: deps.repoUrl,
    branch,
    workRoot: deps.workRoot,
    identity: author,
    maxAttempts: deps.maxPushAttempts,
    signal: ctx.cancellationSignal,
    onProgress: (progress: unknown) => ctx.heartbeat(progress),
  });
  return {
    /**
     * Commits the release's manifests, summary and evidence bundle (when the input names evidence: each blob is read
     * from the artifact store and checked against its digest) to the GitOps branch and pushes them.
     *
     * Idempotency key: the `Release-Id: <releaseId>` trailer. A commit carrying it already on the branch is returned
     * with `alreadyPresent: true` and nothing new is written, so retries are safe. A release whose files are already
     * identical on the branch still gets its (empty) commit, so that Git keeps an audit record of every release.
     *
     * Heartbeats at each step (sync, commit, push, backoff). Retryable: an unreachable remote, or a branch that other
     * writers kept moving for every push attempt, or an evidence blob the store does not hold (yet). Non-retryable:
     * InvalidRequest (also an evidence blob above MAX_EVIDENCE_BLOB_BYTES), InvalidConfig (evidence but no store),
     * DigestMismatch (a blob whose bytes do not match its digest), UnsafePath, and GitOpsRejected when the remote
     * refuses the push (a hook, a protected branch).
     */
    async commitRelease(input: GitOpsPublishInput): Promise<GitOpsCommit> {
      const ctx = Context.current();
      validate(input);
      const evidenceBundle =
        input.evidence === undefined
          ? undefined
          : await bundleOf(input, input.evidence, deps.store, ctx, deps.configDir);
      const renderOptions = {
        servingImage: deps.servingImage,
        author,
        gateAnnotations: deps.gateAnnotations,
        evidenceBundle,
      };
      let files = renderRelease(input, renderOptions);
      if (evidenceBundle !== undefined) {
        const signed = await signedEvidence(files, input, deps, ctx);
        // The workload names its attestation; the attestation covers the workload's images, not its annotations.
        if (signed.attestation !== undefined) {
          files = renderRelease(input, {
            ...renderOptions,
            attestation: `sha256:${sha256Hex(signed.attestation.content)}`,
          });
        }
        for (const file of [signed.mlBom, signed.attestation])
          if (file !== undefined) files.set(file.path, file.content);
      }
      try {
        const result = await serial.run(() =>
          publishRelease({
            ...remoteStep(ctx),
            keepClone: true,
            releaseId: input.releaseId,
            files,
            message: commitMessage(input),
          }),
        );
        return { repository: deps.repoUrl, branch, ...result };
      } catch (err) {
        return gitOpsFailure(err, ctx.cancellationSignal, deps.repoUrl, [
          [GitOpsRejectedError, FailureType.GitOpsRejected],
          [UnsafePathError, FailureType.UnsafePath],
        ]);
      }
    },

    /**
     * Rolls the release back: a `git revert` of `input.commit` on the GitOps branch with the trailers
     * `Rollback-Of: <releaseId>`, `Rollback-Reason`, `Rollback-Decided-By` and `Release-Id: <releaseId>#rollback`.
     *
     * Idempotency key: the `Rollback-Of` trailer; a commit carrying it already on the branch is returned with
     * `alreadyDone: true`. Heartbeats each step. Non-retryable: InvalidRequest (malformed input, or a commit that is not
     * on the branch), GitOpsConflict (the revert conflicts with later changes: a person resolves it), GitOpsRejected.
     * Retryable: an unreachable remote, lost push races.
     */
    async revertRelease(input: RevertInput): Promise<RevertResult> {
      const ctx = Context.current();
      const problems = [
        /^[^\r\n]{1,512}$/.test(input.releaseId ?? '') ? '' : 'releaseId: must be a non-empty single line',
        /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(input.commit ?? '')
          ? ''
          : 'commit: must be a full lower-case commit sha',
        typeof input.reason === 'string' ? '' : 'reason: must be a string',
        typeof input.decidedBy === 'string' && input.decidedBy.trim() !== '' ? '' : 'decidedBy: must name who decided',
      ].filter((p) => p !== '');
      if (problems.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `invalid revert input: ${problems.join('; ')}`,
          FailureType.InvalidRequest,
        );
      }
      try {
        return await serial.run(() => revertRelease({ ...remoteStep(ctx), input }));
      } catch (err) {
        if (err instanceof RevertConflictError && !ctx.cancellationSignal.aborted) {
          const message = withoutRemote(err.message, deps.repoUrl);
          throw ApplicationFailure.nonRetryable(message, FailureType.GitOpsConflict, err.details);
        }
        return gitOpsFailure(err, ctx.cancellationSignal, deps.repoUrl, [
          [ReleaseCommitNotFoundError, FailureType.InvalidRequest],
          [GitOpsRejectedError, FailureType.GitOpsRejected],
        ]);
      }
    },

    /**
     * Commits the monitoring window's results (canonical JSON named by its sha256) as
     * `releases/<model>/<version>/<environment>/monitoring/<sha256>.json`, with the trailers
     * `Release-Id: <releaseId>#monitoring`, `Monitoring-Of: <release commit>` and `Monitoring-Outcome`. It changes no
     * Deployment and no bundle.json, so nothing is redeployed; after a rollback it still lands.
     *
     * Idempotency key: the `Monitoring-Of` and `Release-Id` trailers together; a commit carrying both already on the
     * branch is returned with `created: false`. Heartbeats each step. Non-retryable: InvalidRequest (a malformed input,
     * or a commit that is not on the branch), UnsafePath, GitOpsRejected. Retryable: an unreachable remote, lost push
     * races.
     */
    async commitMonitoringEvidence(input: MonitoringEvidenceInput): Promise<MonitoringEvidenceCommit> {
      const ctx = Context.current();
      try {
        return await serial.run(() => publishMonitoringEvidence({ ...remoteStep(ctx), input }));
      } catch (err) {
        return gitOpsFailure(err, ctx.cancellationSignal, deps.repoUrl, [
          [MonitoringEvidenceInputError, FailureType.InvalidRequest],
          [ReleaseCommitNotFoundError, FailureType.InvalidRequest],
          [UnsafePathError, FailureType.UnsafePath],
          [GitOpsRejectedError, FailureType.GitOpsRejected],
        ]);
      }
    },
  };
}

/**
 * One GitOps step's error as the activity's failure: a cancellation as itself; the remote's location (a host path, a
 * URL with credentials) kept out of the release's history; the listed errors permanent, with their failure types;
 * everything else (an unreachable remote, lost push races, local git trouble) retried by Temporal.
 */
function gitOpsFailure(
  err: unknown,
  signal: AbortSignal,
  repoUrl: string,
  permanent: [abstract new (...args: never[]) => Error, string][],
): never {
  if (signal.aborted) throw signal.reason;
  const message = withoutRemote(err instanceof Error ? err.message : String(err), repoUrl);
  for (const [type, failure] of permanent)
    if (err instanceof type) throw ApplicationFailure.nonRetryable(message, failure);
  throw ApplicationFailure.retryable(message, err instanceof Error ? err.name : 'GitOpsError');
}

/** Reads the evidence blobs from the store and renders the bundle; every failure becomes an ApplicationFailure. */
async function bundleOf(
  input: GitOpsReleaseInput,
  evidence: EvidenceBundleRef,
  store: ArtifactStore | undefined,
  ctx: Context,
  configDir: string | undefined,
): Promise<RenderedBundle> {
  if (store === undefined) {
    throw ApplicationFailure.nonRetryable(
      'the release carries evidence but this worker gives the gitops activities no artifact store: pass `store` in the gitops deps',
      FailureType.InvalidConfig,
    );
  }
  const entries: EvidenceEntry[] = [];
  try {
    for (const [i, entry] of evidence.entries.entries()) {
      ctx.cancellationSignal.throwIfAborted();
      ctx.heartbeat({ step: 'evidence', read: i, of: evidence.entries.length });
      const sha256 = entry.sha256.replace(/^sha256:/, '');
      entries.push({ name: entry.name, sha256, bytes: await store.read(sha256, MAX_EVIDENCE_BLOB_BYTES) });
    }
    if (configDir !== undefined) {
      const named = new Set(entries.map((e) => e.name));
      for (const copy of await configSnapshots(configDir, evidence.index))
        if (!named.has(copy.name)) entries.push(copy);
    }
    const { request, releaseId } = input;
    return renderEvidenceBundle({
      model: request.model.name,
      version: request.model.version,
      environment: request.environment,
      releaseId,
      entries,
      index: evidence.index,
    });
  } catch (err) {
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof EvidenceBundleError) throw ApplicationFailure.nonRetryable(message, FailureType.DigestMismatch);
    if (err instanceof BlobTooLargeError) {
      throw ApplicationFailure.nonRetryable(
        `evidence: ${message}; an evidence blob may be at most ${MAX_EVIDENCE_BLOB_BYTES} bytes`,
        FailureType.InvalidRequest,
      );
    }
    if (err instanceof UnsafePathError) throw ApplicationFailure.nonRetryable(message, FailureType.UnsafePath);
    // A blob not (yet) in the store, or a store that cannot be reached: an operator can restore it, so retried.
    throw ApplicationFailure.retryable(
      `evidence: ${message}`,
      err instanceof BlobNotFoundError ? 'BlobNotFound' : 'EvidenceReadError',
    );
  }
}

type RenderedFile = { path: string; content: string };

/**
 * The ML-BOM and, with a signing key, the attestation, both beside `bundle.json`. The model's file list comes from the
 * store (a manifest by reference): a manifest the store does not hold (yet) is retried, one that does not match the
 * release's manifest digest is refused.
 */
async function signedEvidence(
  files: Map<string, string | Buffer>,
  input: GitOpsReleaseInput,
  deps: GitOpsDeps,
  ctx: Context,
): Promise<{ mlBom: RenderedFile; attestation?: RenderedFile }> {
  ctx.heartbeat({ step: 'attest' });
  let manifest;
  try {
    manifest = await loadManifest(deps.store as ArtifactStore, input.manifest);
  } catch (err) {
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    const message = `ML-BOM: ${err instanceof Error ? err.message : String(err)}`;
    if (err instanceof SyntaxError || /does not match manifest digest/.test(message)) {
      throw ApplicationFailure.nonRetryable(message, FailureType.DigestMismatch);
    }
    if (err instanceof BlobTooLargeError) throw ApplicationFailure.nonRetryable(message, FailureType.InvalidRequest);
    // A manifest not (yet) in the store, or a store that cannot be reached: retried.
    throw ApplicationFailure.retryable(
      message,
      err instanceof BlobNotFoundError ? 'BlobNotFound' : 'ManifestReadError',
    );
  }
  const mlBom = renderMlBom(input, manifest);
  if (deps.signingKey === undefined) return { mlBom };
  const withBom = new Map(files).set(mlBom.path, mlBom.content);
  return { mlBom, attestation: renderAttestation({ input, files: withBom, mlBomPath: mlBom.path }, deps.signingKey) };
}

function validate(input: GitOpsPublishInput): void {
  const problems: string[] = [];
  const parsed = releaseRequestSchema.safeParse(input.request);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`request.${issue.path.join('.')}: ${issue.message}`);
  }
  // The release id becomes a commit trailer: it must stay on one line to stay the idempotency key.
  if (!/^[^\r\n]+$/.test(input.releaseId ?? '')) problems.push('releaseId: must be a non-empty single line');
  if (input.evidence !== undefined) {
    const entries = input.evidence.entries;
    if (!Array.isArray(entries)) problems.push('evidence.entries: must be a list of {name, sha256}');
    else if (entries.length > MAX_EVIDENCE_ENTRIES) {
      problems.push(`evidence.entries: at most ${MAX_EVIDENCE_ENTRIES} entries (got ${entries.length})`);
    } else {
      entries.forEach((e, i) => {
        if (!/^(?:sha256:)?[0-9a-f]{64}$/.test(e?.sha256 ?? '')) {
          problems.push(`evidence.entries[${i}].sha256: must be a lower-case hex sha256`);
        }
      });
    }
    const index = input.evidence.index as Partial<EvidenceBundleRef['index']> | null;
    if (typeof index !== 'object' || index === null) {
      problems.push('evidence.index: must be an object (policy, decisions, refusedDecisions, gates, …)');
    } else {
      for (const list of ['decisions', 'refusedDecisions', 'gates'] as const) {
        if (!Array.isArray(index[list])) problems.push(`evidence.index.${list}: must be a list`);
      }
    }
  }
  // What the cluster runs and mounts must not move after the approval: only references pinned by digest are committed.
  if (input.delivery !== undefined) {
    const { servingImage, pullerImage, modelMount } = input.delivery;
    if (!isPinnedByDigest(servingImage ?? '')) problems.push('delivery.servingImage: must be pinned by digest');
    if (modelMount === 'init-container' && !isPinnedByDigest(pullerImage ?? '')) {
      problems.push('delivery.pullerImage: must be pinned by digest when modelMount is init-container');
    }
  }
  const artifact = 'artifact' in input.manifest ? input.manifest.artifact : undefined;
  if (artifact !== undefined && !isPinnedByDigest(artifact.reference ?? '')) {
    problems.push('manifest.artifact.reference: must be pinned by digest (host/repository@sha256:<hex>)');
  }
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(`invalid gitops input: ${problems.join('; ')}`, FailureType.InvalidRequest);
  }
}

function withoutRemote(message: string, repoUrl: string): string {
  const forms = [repoUrl, resolve(repoUrl), repoUrl.replace(/\/+$/, '')].filter((f) => f.length > 1);
  return forms.reduce((text, form) => text.split(form).join('<gitops remote>'), message);
}

/** Runs tasks one at a time, in the order they were submitted. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
