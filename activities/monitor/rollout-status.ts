/**
 * What the objects of a rollout say about it, read the way their own tools read them: a Deployment the way
 * `kubectl rollout status` does, a Flux Kustomization by its applied revision and Ready condition, an Argo CD
 * Application by its sync revision, sync status and health, a KServe InferenceService by its Ready condition.
 * Pure functions of plain objects (what the API server returns), so that they are tested without a cluster.
 */
import type { ReplicaCounts } from '../../contract/delivery';

/** The parts of a Kubernetes object these readers look at; everything is optional because nothing is guaranteed. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; generation?: number; resourceVersion?: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown' | string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

/** The workload's rollout: still going, complete, or stalled for a reason a wait will not change. */
export type WorkloadState =
  | { state: 'progressing'; message: string; replicas?: ReplicaCounts }
  | { state: 'complete'; message: string; replicas?: ReplicaCounts }
  | { state: 'stalled'; message: string; replicas?: ReplicaCounts };

/** The GitOps controller's view of the commit: not applied yet, applied, or failed for that very commit. */
export type SyncState =
  | { state: 'waiting'; message: string; revision?: string }
  | { state: 'applied'; message: string; revision: string }
  | { state: 'failed'; message: string; revision: string };

/** The Deployment condition reason the controller sets when a rollout made no progress within its deadline. */
export const PROGRESS_DEADLINE_EXCEEDED = 'ProgressDeadlineExceeded';

/**
 * True when `revision` (as a GitOps controller reports it: `main@sha1:<sha>`, `main/<sha>`, `<sha>`) names exactly
 * `commit`. Only the whole trailing hash counts: an abbreviated or longer hash is another revision.
 */
export function revisionMatches(revision: string | undefined, commit: string): boolean {
  const hash = revisionHash(revision);
  return hash !== undefined && commit !== '' && hash === commit.trim().toLowerCase();
}

/** The commit hash a controller's revision names (lower case), or undefined when it names none. */
export function revisionHash(revision: string | undefined): string | undefined {
  return /(?:^|[@/:])([0-9a-f]{7,64})$/i.exec(revision?.trim() ?? '')?.[1]?.toLowerCase();
}

/**
 * The revision the controller reports as applied and healthy enough to follow the workload from, whichever commit it
 * is: Flux's lastAppliedRevision while Ready is not False, Argo CD's sync revision while Synced and Healthy or
 * Progressing. A later commit than the release's may contain it (other releases commit to the same branch).
 */
export function appliedRevisionOf(controller: 'flux' | 'argocd', object: KubeObject | undefined): string | undefined {
  if (object === undefined) return undefined;
  if (controller === 'flux') {
    const applied = stringAt(object.status, 'lastAppliedRevision');
    return applied && conditionOf(object, 'Ready')?.status !== 'False' ? applied : undefined;
  }
  const sync = recordAt(object.status, 'sync');
  const health = stringAt(recordAt(object.status, 'health'), 'status');
  const revision = stringAt(sync, 'revision');
  return revision && stringAt(sync, 'status') === 'Synced' && (health === 'Healthy' || health === 'Progressing')
    ? revision
    : undefined;
}

export function conditionsOf(object: KubeObject | undefined): Condition[] {
  const list = object?.status?.conditions;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (c): c is Condition =>
      typeof c === 'object' && c !== null && typeof c.type === 'string' && typeof c.status === 'string',
  );
}

export function conditionOf(object: KubeObject | undefined, type: string): Condition | undefined {
  return conditionsOf(object).find((c) => c.type === type);
}

function numberAt(record: Record<string, unknown> | undefined, key: string): number | undefined {
  const value = record?.[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function stringAt(record: Record<string, unknown> | undefined, key: string): string | undefined {
  const value = record?.[key];
  return typeof value === 'string' ? value : undefined;
}

function recordAt(record: Record<string, unknown> | undefined, key: string): Record<string, unknown> | undefined {
  const value = record?.[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A controller's message on one line and bounded: it travels into heartbeats, results and history. */
export function shortMessage(text: string | undefined, max = 300): string {
  const line = (text ?? '').replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** Replica counts of a Deployment as the UI shows them (desired from spec.replicas, defaulting to 1 like the API). */
export function deploymentReplicas(deployment: KubeObject): ReplicaCounts {
  const status = deployment.status;
  return {
    desired: numberAt(deployment.spec, 'replicas') ?? 1,
    updated: numberAt(status, 'updatedReplicas') ?? 0,
    ready: numberAt(status, 'readyReplicas') ?? 0,
    available: numberAt(status, 'availableReplicas') ?? 0,
  };
}

/**
 * The rollout state of a Deployment, by the rules of `kubectl rollout status`: the controller has observed the
 * current generation; its Progressing condition is not ProgressDeadlineExceeded (stalled); all desired replicas are
 * updated; no old replicas remain; every updated replica is available. Undefined `deployment`: not created yet.
 */
export function deploymentRolloutState(
  deployment: KubeObject | undefined,
  watchedSince?: string,
  options: { deadlineCounts?: boolean } = {},
): WorkloadState {
  if (deployment === undefined) return { state: 'progressing', message: 'waiting for the Deployment to be created' };
  const replicas = deploymentReplicas(deployment);
  const generation = deployment.metadata?.generation ?? 0;
  const observed = numberAt(deployment.status, 'observedGeneration') ?? 0;
  if (observed < generation) {
    return { state: 'progressing', message: 'waiting for the deployment spec update to be observed', replicas };
  }
  const progressing = conditionOf(deployment, 'Progressing');
  const deadlineCounts = options.deadlineCounts ?? true;
  if (
    deadlineCounts &&
    progressing?.reason === PROGRESS_DEADLINE_EXCEEDED &&
    !staleCondition(progressing, watchedSince)
  ) {
    const detail = shortMessage(progressing.message);
    return {
      state: 'stalled',
      message: `the Deployment exceeded its progress deadline${detail ? `: ${detail}` : ''}`,
      replicas,
    };
  }
  const total = numberAt(deployment.status, 'replicas') ?? 0;
  if (replicas.updated < replicas.desired) {
    return {
      state: 'progressing',
      message: `${replicas.updated} of ${replicas.desired} new replicas updated`,
      replicas,
    };
  }
  if (total > replicas.updated) {
    return {
      state: 'progressing',
      message: `${total - replicas.updated} old replicas pending termination`,
      replicas,
    };
  }
  if (replicas.available < replicas.updated) {
    return {
      state: 'progressing',
      message: `${replicas.available} of ${replicas.updated} updated replicas available`,
      replicas,
    };
  }
  return {
    state: 'complete',
    message: `rolled out: ${replicas.available} of ${replicas.desired} replicas available`,
    replicas,
  };
}

/**
 * A deadline condition last set before this watch began belongs to an earlier rollout (a stalled release that is now
 * being rolled back keeps it until the controller's next status change): it says nothing about the rollout watched
 * now, whose own deadline can only pass after the watch began.
 */
function staleCondition(condition: Condition, watchedSince: string | undefined): boolean {
  if (watchedSince === undefined) return false;
  const set = Date.parse(condition.lastUpdateTime ?? condition.lastTransitionTime ?? '');
  return Number.isFinite(set) && set < Date.parse(watchedSince);
}

/**
 * The state of a KServe InferenceService: complete when it reports Ready for its current generation; stalled when
 * any of its conditions carries ProgressDeadlineExceeded (KServe passes it up from the predictor's Deployment).
 */
export function inferenceServiceState(service: KubeObject | undefined): WorkloadState {
  if (service === undefined) return { state: 'progressing', message: 'waiting for the InferenceService to be created' };
  const generation = service.metadata?.generation ?? 0;
  const observed = numberAt(service.status, 'observedGeneration');
  if (observed !== undefined && observed < generation) {
    return { state: 'progressing', message: 'waiting for the InferenceService spec update to be observed' };
  }
  const deadline = conditionsOf(service).find((c) => c.reason === PROGRESS_DEADLINE_EXCEEDED);
  if (deadline !== undefined) {
    return {
      state: 'stalled',
      message: `the InferenceService's ${deadline.type} exceeded its progress deadline: ${shortMessage(deadline.message)}`,
    };
  }
  const ready = conditionOf(service, 'Ready');
  if (ready?.status === 'True') return { state: 'complete', message: 'the InferenceService is Ready' };
  const why = ready ? shortMessage([ready.reason, ready.message].filter(Boolean).join(': ')) : '';
  return { state: 'progressing', message: `waiting for the InferenceService to be Ready${why ? ` (${why})` : ''}` };
}

/**
 * Flux Kustomization reasons that are final for the revision they were reached on: a kustomize build that fails
 * fails the same way every time, so waiting for the timeout would only delay the rollback.
 */
const FLUX_FINAL_FAILURES = new Set(['BuildFailed']);

/**
 * Whether a Flux Kustomization has applied `commit`. Applied: `status.lastAppliedRevision` names the commit and the
 * Ready condition is not False for it; or, with `wait: true` (health checks before lastAppliedRevision is set), the
 * controller has applied the commit and is checking, or has failed checking, its health: the workload watch then
 * decides. A build failure of the commit is final; other failures are retried by Flux, so they are waited out.
 */
export function fluxSyncState(kustomization: KubeObject | undefined, commit: string): SyncState {
  if (kustomization === undefined) return { state: 'waiting', message: 'waiting for the Flux Kustomization to exist' };
  const status = kustomization.status;
  const applied = stringAt(status, 'lastAppliedRevision');
  const attempted = stringAt(status, 'lastAttemptedRevision');
  const ready = conditionOf(kustomization, 'Ready');
  const healthy = conditionOf(kustomization, 'Healthy');
  const readyText = ready ? shortMessage([ready.reason, ready.message].filter(Boolean).join(': ')) : '';
  if (revisionMatches(applied, commit) && ready?.status !== 'False') {
    return { state: 'applied', message: `Flux applied ${applied}`, revision: applied as string };
  }
  if (revisionMatches(attempted, commit)) {
    const revision = attempted as string;
    if (ready?.status === 'False' && ready.reason !== undefined && FLUX_FINAL_FAILURES.has(ready.reason)) {
      return { state: 'failed', message: `Flux cannot apply ${revision}: ${readyText}`, revision };
    }
    // Health checks run only after the apply: a check running, or failed, for this revision means it was applied.
    const checking = [healthy, ready].some(
      (c) => c !== undefined && c.status !== 'True' && (c.message ?? '').includes(commit),
    );
    if (checking || ready?.reason === 'HealthCheckFailed' || revisionMatches(applied, commit)) {
      return {
        state: 'applied',
        message: `Flux applied ${revision} (${readyText || 'health check running'})`,
        revision,
      };
    }
  }
  const at = applied ? ` (applied: ${applied})` : '';
  return {
    state: 'waiting',
    message: `waiting for Flux to apply ${short(commit)}${at}${readyText ? `; ${readyText}` : ''}`,
  };
}

/** Argo CD sync operation phases that end an operation without applying it. */
const ARGO_FAILED_PHASES = new Set(['Failed', 'Error']);

/**
 * Whether an Argo CD Application has synced `commit`: `status.sync.revision` (or one of `status.sync.revisions`)
 * is the commit, `status.sync.status` is Synced and health is Healthy or Progressing (the workload watch then
 * follows the rollout). Degraded health at the commit, or a sync operation that failed for it, is final.
 */
export function argoSyncState(application: KubeObject | undefined, commit: string): SyncState {
  if (application === undefined) return { state: 'waiting', message: 'waiting for the Argo CD Application to exist' };
  const sync = recordAt(application.status, 'sync');
  const health = recordAt(application.status, 'health');
  const revisions = [stringAt(sync, 'revision'), ...arrayOfStrings(sync?.revisions)].filter(
    (r): r is string => r !== undefined,
  );
  const revision = revisions.find((r) => revisionMatches(r, commit));
  const syncStatus = stringAt(sync, 'status') ?? 'Unknown';
  const healthStatus = stringAt(health, 'status') ?? 'Unknown';
  const operation = recordAt(application.status, 'operationState');
  const operationPhase = stringAt(operation, 'phase');
  const operationRevision =
    stringAt(recordAt(operation, 'syncResult'), 'revision') ??
    stringAt(recordAt(recordAt(operation, 'operation'), 'sync'), 'revision');
  if (
    operationPhase !== undefined &&
    ARGO_FAILED_PHASES.has(operationPhase) &&
    revisionMatches(operationRevision, commit)
  ) {
    return {
      state: 'failed',
      message: `Argo CD could not sync ${short(commit)}: ${operationPhase}: ${shortMessage(stringAt(operation, 'message'))}`,
      revision: operationRevision as string,
    };
  }
  if (revision !== undefined && syncStatus === 'Synced') {
    if (healthStatus === 'Healthy' || healthStatus === 'Progressing') {
      return { state: 'applied', message: `Argo CD synced ${short(revision)} (${healthStatus})`, revision };
    }
    if (healthStatus === 'Degraded') {
      const why = shortMessage(stringAt(health, 'message'));
      return {
        state: 'failed',
        message: `Argo CD reports the application Degraded at ${short(revision)}${why ? `: ${why}` : ''}`,
        revision,
      };
    }
  }
  const current = revisions[0]
    ? ` (at ${short(revisions[0])}, ${syncStatus}, ${healthStatus})`
    : ` (${syncStatus}, ${healthStatus})`;
  return { state: 'waiting', message: `waiting for Argo CD to sync ${short(commit)}${current}` };
}

function arrayOfStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function short(revision: string): string {
  const hash = /([0-9a-f]{40,64})$/i.exec(revision)?.[1];
  return hash === undefined ? revision : revision.slice(0, revision.length - hash.length) + hash.slice(0, 12);
}
