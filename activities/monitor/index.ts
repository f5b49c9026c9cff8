/**
 * The monitor stage's activities: the rollout watch after the GitOps commit. The cluster comes from the worker's
 * environment (MREL_KUBECONFIG, KUBECONFIG, in-cluster); without one the watch says so and the release ends at its
 * commit.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { RolloutProgress, RolloutResult, RolloutWatchInput } from '../../contract/delivery';
import { FailureType } from '../../contract/definitions';
import { ProductError } from '../../contract/errors';
import { activityContext, throttledHeartbeat } from '../common/activity-context';
import { CommitAncestry, type GitOpsRepositoryRef } from './commit-ancestry';
import { KubeApiError, KubeClient, KubeConfigError, NO_CLUSTER_REASON, loadKubeConfig } from './kube';
import { followRollout } from './rollout';
import { createAnalysisActivities, type AnalysisDeps } from './analysis/measure';
import type { Measurement, MeasureInput } from '../../contract/monitoring';

export { loadKubeConfig, KubeClient, NO_CLUSTER_REASON } from './kube';
export { followRollout } from './rollout';

export interface MonitorDeps {
  /** The cluster to watch; read from `env` (loadKubeConfig) on every call when not given; null: no cluster. */
  kubeConfig?: KubeConfig | null;
  env?: NodeJS.ProcessEnv;
  /** How often the watch heartbeats while nothing changes; default 5 s (keep the heartbeat timeout above 15 s). */
  progressEveryMs?: number;
  /**
   * The GitOps repository the releases commit to: with it, a controller that applied a later commit containing the
   * release's counts as having applied it (other releases may commit to the same branch in between).
   */
  repository?: GitOpsRepositoryRef;
}

/** Longest rollout timeout accepted: bounds the watch a release can ask for. */
const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function createMonitorActivities(deps: MonitorDeps = {}) {
  const ancestry = deps.repository ? new CommitAncestry(deps.repository) : undefined;
  return {
    /**
     * Waits until the GitOps controller (Flux Kustomization, Argo CD Application, or none) has applied
     * `input.commit`, then until the workload's rollout is complete, by watches. Returns `healthy`, `stalled` (the
     * controller cannot apply the commit, ProgressDeadlineExceeded, or `timeoutMs` passed since the first attempt)
     * or `no-cluster` (no kubeconfig on this worker).
     *
     * Heartbeats RolloutProgress on every change and every `progressEveryMs`; a retried attempt keeps the first
     * attempt's start (so its deadline) and resumes its watch from the heartbeat's resourceVersion. Idempotent: it
     * only reads, besides the reconcile request annotation. Cancellation aborts every watch. Non-retryable:
     * InvalidRequest (a malformed input), InvalidConfig (an unusable kubeconfig, refused credentials, a controller
     * API the cluster does not serve). Dropped watches and an unreachable API server are retried inside, up to the
     * deadline.
     */
    async watchRollout(input: RolloutWatchInput): Promise<RolloutResult> {
      validate(input);
      let config: KubeConfig | null;
      try {
        config = deps.kubeConfig !== undefined ? deps.kubeConfig : (loadKubeConfig(deps.env)?.config ?? null);
      } catch (err) {
        if (err instanceof KubeConfigError)
          throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig);
        throw err;
      }
      if (config === null) {
        return { outcome: 'no-cluster', reason: NO_CLUSTER_REASON, finishedAt: new Date().toISOString() };
      }
      const context = activityContext();
      const heartbeat =
        context && throttledHeartbeat<RolloutProgress>(context, (p) => `${p.phase}\n${p.message}`, 1_000);
      try {
        return await followRollout(input, {
          kube: new KubeClient(config),
          resume: context?.info.heartbeatDetails,
          signal: context?.cancellationSignal,
          onProgress: (progress, checkpoint) => heartbeat?.(progress, checkpoint),
          progressEveryMs: deps.progressEveryMs,
          containsCommit: ancestry && ((descendant, ancestor) => ancestry.contains(descendant, ancestor)),
        });
      } catch (err) {
        if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
        if (err instanceof KubeApiError && err.permanent) {
          throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig, err.details);
        }
        if (err instanceof ProductError) throw ApplicationFailure.retryable(err.message, err.code, err.details);
        throw err;
      }
    },
  };
}

export type MonitorActivities = ReturnType<typeof createMonitorActivities>;

function validate(input: RolloutWatchInput): void {
  const problems: string[] = [];
  if (!/^[^\r\n]{1,512}$/.test(input.releaseId ?? '')) problems.push('releaseId: must be a non-empty single line');
  if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(input.commit ?? ''))
    problems.push('commit: must be a full lower-case commit sha');
  const workload = input.workload;
  if (workload?.kind !== 'Deployment' && workload?.kind !== 'InferenceService') {
    problems.push('workload.kind: must be Deployment or InferenceService');
  }
  if (!NAME.test(workload?.namespace ?? '')) problems.push('workload.namespace: must be a Kubernetes name');
  if (!NAME.test(workload?.name ?? '')) problems.push('workload.name: must be a Kubernetes name');
  const gitops = input.gitops;
  if (gitops?.kind === 'flux') {
    if (!NAME.test(gitops.namespace ?? '')) problems.push('gitops.namespace: must be a Kubernetes name');
    if (!NAME.test(gitops.kustomization ?? '')) problems.push('gitops.kustomization: must be a Kubernetes name');
    if (gitops.gitRepository !== undefined && !NAME.test(gitops.gitRepository)) {
      problems.push('gitops.gitRepository: must be a Kubernetes name');
    }
  } else if (gitops?.kind === 'argocd') {
    if (!NAME.test(gitops.namespace ?? '')) problems.push('gitops.namespace: must be a Kubernetes name');
    if (!NAME.test(gitops.application ?? '')) problems.push('gitops.application: must be a Kubernetes name');
  } else if (gitops?.kind !== 'none') problems.push('gitops.kind: must be flux, argocd or none');
  if (!Number.isFinite(input.timeoutMs) || input.timeoutMs <= 0 || input.timeoutMs > MAX_TIMEOUT_MS) {
    problems.push(`timeoutMs: must be a positive number of milliseconds up to ${MAX_TIMEOUT_MS}`);
  }
  if (input.purpose !== 'release' && input.purpose !== 'rollback')
    problems.push('purpose: must be release or rollback');
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `invalid rollout watch input: ${problems.join('; ')}`,
      FailureType.InvalidRequest,
    );
  }
}

/**
 * The `measureMetric` activity: a provider's failure is an Error measurement, never a failed activity; a malformed
 * input (a permanent ProductError) fails at once instead of being retried.
 */
export function createMeasureActivities(deps: AnalysisDeps = {}) {
  const analysis = createAnalysisActivities(deps);
  return {
    async measureMetric(input: MeasureInput): Promise<Measurement> {
      try {
        return await analysis.measureMetric(input);
      } catch (err) {
        if (err instanceof ProductError && err.permanent)
          throw ApplicationFailure.nonRetryable(err.message, err.code, err.details);
        throw err;
      }
    },
  };
}
