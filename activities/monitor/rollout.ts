/**
 * The rollout watch of the monitor stage: after the GitOps commit, wait (watching, never polling) until the
 * controller has applied exactly that commit, then until the workload's rollout is complete, reporting progress that
 * a retried attempt resumes from. Knows nothing of Temporal: the adapter (index.ts) passes heartbeats, the previous
 * attempt's details and the cancellation signal in.
 */
import type {
  ReplicaCounts,
  RolloutProgress,
  RolloutResult,
  RolloutWatchInput,
  WorkloadRef,
} from '../../contract/delivery';
import type { KubeClient, ObjectRef } from './kube';
import { RESOURCES, describeRef } from './kube';
import { followObject } from './object-watch';
import type { KubeObject, SyncState, WorkloadState } from './rollout-status';
import {
  appliedRevisionOf,
  argoSyncState,
  deploymentRolloutState,
  fluxSyncState,
  inferenceServiceState,
  revisionHash,
  shortMessage,
} from './rollout-status';

export const FLUX_RECONCILE_ANNOTATION = 'reconcile.fluxcd.io/requestedAt';
export const ARGO_REFRESH_ANNOTATION = 'argocd.argoproj.io/refresh';

export interface FollowRolloutOptions {
  kube: KubeClient;
  /** The heartbeat details of an earlier attempt: its start (the deadline counts from it) and its resume point. */
  resume?: unknown;
  /** Cancellation: aborts every request and watch, and the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Progress on every change; `checkpoint` marks one that must not be dropped (a phase change). */
  onProgress?: (progress: RolloutProgress, checkpoint: boolean) => void;
  /** The latest progress is reported again this often while nothing changes; default 5 s. */
  progressEveryMs?: number;
  watchTimeoutSeconds?: number;
  backoff?: { initialMs: number; maxMs: number };
  /**
   * Whether commit `descendant` has `ancestor` in its history (CommitAncestry over the GitOps repository). With it, a
   * controller that applied a later commit of the branch, one containing the release's, counts as having applied it.
   */
  containsCommit?: (descendant: string, ancestor: string) => Promise<boolean>;
}

/** The deadline of the watch passed (a reason of the internal abort, never thrown to callers). */
class DeadlineReached extends Error {}

/**
 * Watches the rollout of `input.commit` to its end. Resolves `healthy` when the controller applied the commit and the
 * workload rolled out, `stalled` when the controller cannot apply it, the workload exceeded its progress deadline,
 * or `input.timeoutMs` passed since the first attempt started. Rejects with a KubeApiError that is `permanent` when
 * the cluster refuses the credentials or does not serve the controller's API, and with the signal's reason when
 * cancelled. Transient trouble (dropped watches, an API server restart, a 410) is retried up to the deadline.
 */
export async function followRollout(input: RolloutWatchInput, options: FollowRolloutOptions): Promise<RolloutResult> {
  const { kube } = options;
  const resume = resumePoint(options.resume);
  const startedAt = resume?.startedAt ?? new Date().toISOString();
  const deadlineAt = Date.parse(startedAt) + input.timeoutMs;
  let progress: RolloutProgress = {
    phase: input.gitops.kind === 'none' ? 'rollout' : (resume?.phase ?? 'sync'),
    startedAt,
    ...(resume?.appliedRevision ? { appliedRevision: resume.appliedRevision } : {}),
    ...(resume?.replicas ? { replicas: resume.replicas } : {}),
    message: resume ? `resuming: ${resume.message}` : 'starting the rollout watch',
  };
  const resumeVersion = resume?.phase === progress.phase ? resume.resourceVersion : undefined;
  if (resumeVersion) progress.resourceVersion = resumeVersion;
  const report = (change: Partial<RolloutProgress>, checkpoint = false) => {
    progress = { ...progress, ...change };
    options.onProgress?.(progress, checkpoint);
  };
  const result = (outcome: RolloutResult['outcome'], reason: string): RolloutResult => ({
    outcome,
    reason: shortMessage(reason, 500),
    ...(progress.appliedRevision ? { appliedRevision: progress.appliedRevision } : {}),
    ...(progress.replicas ? { replicas: progress.replicas } : {}),
    apiRequests: kube.requests,
    finishedAt: new Date().toISOString(),
  });

  const deadline = new AbortController();
  const deadlineTimer = setTimeout(() => deadline.abort(new DeadlineReached()), Math.max(0, deadlineAt - Date.now()));
  const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
  const ticker = setInterval(() => options.onProgress?.(progress, false), options.progressEveryMs ?? 5_000);
  ticker.unref();
  const subject = input.purpose === 'rollback' ? 'the rollback' : 'the release';
  report({}, true);
  try {
    if (Date.now() >= deadlineAt) {
      // A retry that starts after the deadline (the worker was down) looks once before calling the rollout stalled.
      return await lastLook(input, options, progress, report, result, subject);
    }
    if (progress.phase === 'sync' && input.gitops.kind !== 'none') {
      if (input.requestReconcile && resume === undefined) await requestReconcile(input, kube, report);
      const sync = await followObject<SyncState>({
        kube,
        ref: syncRef(input),
        resourceVersion: resumeVersion,
        decide: async (object, resourceVersion) => {
          const state = await syncStateWithAncestry(input, object, options.containsCommit);
          report({ message: state.message, resourceVersion });
          return state.state === 'waiting' ? undefined : state;
        },
        onBookmark: (resourceVersion) => report({ resourceVersion }),
        onRetry: (err, delayMs) => report({ message: `${err.message}; retrying in ${delayMs} ms` }),
        signal,
        watchTimeoutSeconds: options.watchTimeoutSeconds,
        backoff: options.backoff,
      });
      if (sync.state === 'failed') {
        report({ message: sync.message }, true);
        return result('stalled', `${subject}'s commit was not applied: ${sync.message}`);
      }
      report(
        { phase: 'rollout', appliedRevision: sync.revision, resourceVersion: undefined, message: sync.message },
        true,
      );
    }
    const workload = await followObject<WorkloadState>({
      kube,
      ref: workloadRef(input.workload),
      resourceVersion: progress.phase === 'rollout' ? (progress.resourceVersion ?? undefined) : undefined,
      decide: (object, resourceVersion) => {
        const state = workloadStateOf(input, object, startedAt);
        report({ message: state.message, resourceVersion, ...replicasOf(state.replicas) });
        return state.state === 'progressing' ? undefined : state;
      },
      onBookmark: (resourceVersion) => report({ resourceVersion }),
      onRetry: (err, delayMs) => report({ message: `${err.message}; retrying in ${delayMs} ms` }),
      signal,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
      backoff: options.backoff,
    });
    report({}, true);
    const what = describeRef(workloadRef(input.workload));
    return workload.state === 'complete'
      ? result('healthy', `${what}: ${workload.message}`)
      : result('stalled', `${what} of ${subject} stalled: ${workload.message}`);
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (deadline.signal.aborted) {
      return result(
        'stalled',
        `${subject}'s rollout did not complete within ${duration(input.timeoutMs)} (${progress.phase} phase): ${progress.message}`,
      );
    }
    throw err;
  } finally {
    clearTimeout(deadlineTimer);
    clearInterval(ticker);
  }
}

/** One list of the current phase's object (and of the workload when the commit is applied), then a verdict. */
async function lastLook(
  input: RolloutWatchInput,
  options: FollowRolloutOptions,
  progress: RolloutProgress,
  report: (change: Partial<RolloutProgress>, checkpoint?: boolean) => void,
  result: (outcome: RolloutResult['outcome'], reason: string) => RolloutResult,
  subject: string,
): Promise<RolloutResult> {
  const late = `${subject}'s rollout did not complete within ${duration(input.timeoutMs)}`;
  if (progress.phase === 'sync' && input.gitops.kind !== 'none') {
    const { object } = await options.kube.listOne(syncRef(input));
    const sync = await syncStateWithAncestry(input, object, options.containsCommit);
    report({ message: sync.message });
    if (sync.state !== 'applied') return result('stalled', `${late}: ${sync.message}`);
    report({ phase: 'rollout', appliedRevision: sync.revision, resourceVersion: undefined }, true);
  }
  const { object } = await options.kube.listOne(workloadRef(input.workload));
  const state = workloadStateOf(input, object, progress.startedAt);
  report({ message: state.message, ...replicasOf(state.replicas) }, true);
  const what = describeRef(workloadRef(input.workload));
  return state.state === 'complete'
    ? result('healthy', `${what}: ${state.message}`)
    : result('stalled', `${late}: ${state.message}`);
}

/**
 * Asks the controller to reconcile now instead of at its interval. Only a shortcut: when it fails (no permission to
 * patch, the object not there yet), the watch still waits for the controller's own schedule and says so.
 */
async function requestReconcile(
  input: RolloutWatchInput,
  kube: KubeClient,
  report: (change: Partial<RolloutProgress>) => void,
): Promise<void> {
  const gitops = input.gitops;
  const at = new Date().toISOString();
  try {
    if (gitops.kind === 'flux') {
      const kustomization: ObjectRef = {
        type: RESOURCES.kustomization,
        namespace: gitops.namespace,
        name: gitops.kustomization,
      };
      const source = gitops.gitRepository
        ? { namespace: gitops.namespace, name: gitops.gitRepository }
        : sourceOf(await kube.get(kustomization), gitops.namespace);
      const annotate = { metadata: { annotations: { [FLUX_RECONCILE_ANNOTATION]: at } } };
      // The source first: the Kustomization reconciles when the source's new artifact arrives, and again on its own
      // annotation in case the source had already fetched the commit.
      if (source) await kube.mergePatch({ type: RESOURCES.gitRepository, ...source }, annotate);
      await kube.mergePatch(kustomization, annotate);
      report({ message: `requested an immediate Flux reconcile at ${at}` });
    } else if (gitops.kind === 'argocd') {
      await kube.mergePatch(
        { type: RESOURCES.application, namespace: gitops.namespace, name: gitops.application },
        { metadata: { annotations: { [ARGO_REFRESH_ANNOTATION]: 'normal' } } },
      );
      report({ message: 'requested an immediate Argo CD refresh' });
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    report({ message: `could not request an immediate reconcile (${why}); waiting for the controller's interval` });
  }
}

function sourceOf(
  kustomization: KubeObject | undefined,
  namespace: string,
): { namespace: string; name: string } | undefined {
  const ref = kustomization?.spec?.sourceRef as { kind?: unknown; name?: unknown; namespace?: unknown } | undefined;
  if (ref?.kind !== 'GitRepository' || typeof ref.name !== 'string') return undefined;
  return { namespace: typeof ref.namespace === 'string' ? ref.namespace : namespace, name: ref.name };
}

function syncRef(input: RolloutWatchInput): ObjectRef {
  const gitops = input.gitops;
  if (gitops.kind === 'flux')
    return { type: RESOURCES.kustomization, namespace: gitops.namespace, name: gitops.kustomization };
  if (gitops.kind === 'argocd')
    return { type: RESOURCES.application, namespace: gitops.namespace, name: gitops.application };
  throw new Error('no GitOps controller to follow');
}

async function syncStateWithAncestry(
  input: RolloutWatchInput,
  object: KubeObject | undefined,
  containsCommit: FollowRolloutOptions['containsCommit'],
): Promise<SyncState> {
  const state = syncStateOf(input, object);
  if (state.state !== 'waiting' || containsCommit === undefined || input.gitops.kind === 'none') return state;
  const applied = appliedRevisionOf(input.gitops.kind, object);
  const hash = revisionHash(applied);
  if (applied === undefined || hash === undefined || !(await containsCommit(hash, input.commit))) return state;
  return {
    state: 'applied',
    revision: applied,
    message: `applied ${applied}, which contains ${input.commit.slice(0, 12)}`,
  };
}

function syncStateOf(input: RolloutWatchInput, object: KubeObject | undefined): SyncState {
  return input.gitops.kind === 'argocd' ? argoSyncState(object, input.commit) : fluxSyncState(object, input.commit);
}

function workloadRef(workload: WorkloadRef): ObjectRef {
  const type = workload.kind === 'InferenceService' ? RESOURCES.inferenceService : RESOURCES.deployment;
  return { type, namespace: workload.namespace, name: workload.name };
}

/**
 * The workload's state for this watch. A rollback's watch does not take the Deployment's deadline condition as a
 * stall: the controller keeps refreshing the condition of the stalled rollout being undone until the rollback is
 * complete (so `kubectl rollout status` would call the rollback stalled in that window); the rollback has the
 * watch's own timeout instead.
 */
function workloadStateOf(
  input: RolloutWatchInput,
  object: KubeObject | undefined,
  watchedSince: string,
): WorkloadState {
  if (input.workload.kind === 'InferenceService') return inferenceServiceState(object);
  return deploymentRolloutState(object, input.purpose === 'rollback' ? undefined : watchedSince, {
    deadlineCounts: input.purpose !== 'rollback',
  });
}

function replicasOf(replicas: ReplicaCounts | undefined): { replicas?: ReplicaCounts } {
  return replicas ? { replicas } : {};
}

/** The earlier attempt's progress when it has the shape this code writes; anything else starts afresh. */
function resumePoint(details: unknown): RolloutProgress | undefined {
  const d = details as Partial<RolloutProgress> | undefined;
  if (typeof d !== 'object' || d === null) return undefined;
  if (d.phase !== 'sync' && d.phase !== 'rollout') return undefined;
  if (typeof d.startedAt !== 'string' || Number.isNaN(Date.parse(d.startedAt))) return undefined;
  return {
    phase: d.phase,
    startedAt: d.startedAt,
    message: typeof d.message === 'string' ? d.message : '',
    ...(typeof d.resourceVersion === 'string' && d.resourceVersion !== ''
      ? { resourceVersion: d.resourceVersion }
      : {}),
    ...(typeof d.appliedRevision === 'string' ? { appliedRevision: d.appliedRevision } : {}),
    ...(isReplicas(d.replicas) ? { replicas: d.replicas } : {}),
  };
}

function isReplicas(value: unknown): value is ReplicaCounts {
  const r = value as Partial<ReplicaCounts> | undefined;
  return (
    typeof r === 'object' &&
    r !== null &&
    [r.desired, r.updated, r.ready, r.available].every((n) => typeof n === 'number')
  );
}

function duration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
