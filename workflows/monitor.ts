/**
 * The `monitor` stage, rollout part (DELIVERY_PATCH releases): after the commit, wait until the GitOps controller has
 * applied exactly that commit and the rollout is complete. A release is released only when its rollout is healthy;
 * a stalled one is handled as the environment's delivery policy says: rolled back (a revert commit, then the
 * rollback's own rollout watched to the end), paused for people (`rollback` / `keep` signals, role-checked, with a
 * deadline and a default), or only recorded.
 */
import { condition, isCancellation } from '@temporalio/workflow';
import { workloadOf, type RolloutResult, type RolloutWatchInput } from '../contract/delivery';
import { durationMs } from '../contract/duration';
import { clip } from '../contract/limits';
import type { TerminalStage } from '../contract/types';
import { nowIso } from './handlers';
import { GITOPS_ROUNDS, MONITOR_ROUNDS } from './plan';
import type { ReleaseState } from './release-state';
import { failureMessage, type Steps } from './steps';

export interface MonitorOutcome {
  stage: TerminalStage;
  reason?: string;
}

export async function monitorRollout(state: ReleaseState, steps: Steps, publish: () => void): Promise<MonitorOutcome> {
  const { config, request, status } = state;
  const delivery = config?.delivery;
  const commit = status.commit;
  if (delivery === undefined || commit === undefined) return { stage: 'released' };
  const workload = workloadOf({ request, delivery });
  const timeout = delivery.rollout.timeout;
  state.startMonitor(`${workload.kind} ${workload.namespace}/${workload.name}`, nowIso());
  publish();

  const watch = async (sha: string, purpose: RolloutWatchInput['purpose'], reconcile: boolean) => {
    const input: RolloutWatchInput = {
      releaseId: status.releaseId,
      commit: sha,
      workload,
      gitops: delivery.gitops,
      requestReconcile: reconcile,
      timeoutMs: durationMs(timeout),
      purpose,
    };
    const summary = `watch the ${purpose === 'rollback' ? 'rollback' : 'rollout'} of ${sha.slice(0, 12)} (${workload.kind} ${workload.namespace}/${workload.name})`;
    try {
      return await steps.call('monitor', 'watch', 'watchRollout', [input], summary, MONITOR_ROUNDS);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Unknown health counts as unhealthy: the stall policy decides, as it would for a rollout that never completed.
      const unwatched: RolloutResult = {
        outcome: 'stalled',
        reason: `the rollout could not be watched: ${failureMessage(err)}`,
        finishedAt: nowIso(),
      };
      return unwatched;
    }
  };

  for (let round = 1; ; round++) {
    state.updateRollout({ state: 'watching', watches: round }, nowIso());
    publish();
    const result = await watch(commit.sha, 'release', round === 1 && delivery.requestReconcile);
    const observed = { ...observation(result), reason: result.reason };
    if (result.outcome === 'no-cluster') {
      state.updateRollout({ state: 'no-cluster', ...observed }, nowIso());
      return { stage: 'released', reason: `committed; ${result.reason}` };
    }
    if (result.outcome === 'healthy') {
      state.updateRollout({ state: 'healthy', ...observed }, nowIso());
      return { stage: 'released' };
    }
    state.updateRollout({ state: 'stalled', ...observed }, nowIso());
    publish();
    const stalled = `rollout stalled: ${result.reason}`;
    const onStall = delivery.rollout.onStall;
    if (onStall === 'record')
      return { stage: 'failed', reason: `${stalled}; the policy only records it: nothing was rolled back` };
    let decidedBy = `policy ${request.policy} (onStall: rollback)`;
    if (onStall === 'pause') {
      const pause = delivery.rollout.pause;
      const deadline = new Date(Date.now() + durationMs(pause.timeout)).toISOString();
      state.pauseRollout(pause.roles, deadline, pause.onTimeout, nowIso());
      publish();
      const told = steps.notify('rollout-stalled', `${stalled}; awaits rollback or keep`, [
        `may decide: ${state.status.rollout?.awaiting?.from.join(', ') || `nobody with ${pause.roles.join('/')}`}`,
        `until ${deadline}, then ${pause.onTimeout}`,
      ]);
      const decided = await condition(() => state.rolloutDecision !== undefined, durationMs(pause.timeout));
      await told;
      const decision = state.rolloutDecision;
      if (!decided || decision === undefined) {
        state.updateRollout({ awaiting: undefined }, nowIso());
        if (pause.onTimeout === 'keep')
          return {
            stage: 'failed',
            reason: `${stalled}; nobody decided within ${pause.timeout}: kept as it is (policy onTimeout: keep)`,
          };
        decidedBy = `policy ${request.policy} (no decision within ${pause.timeout})`;
      } else if (decision.decision === 'keep') {
        continue;
      } else {
        decidedBy = `${decision.approver} (${decision.role})`;
      }
    }
    return rollBack(state, steps, publish, { stalled, decidedBy, watch });
  }
}

async function rollBack(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  context: {
    stalled: string;
    decidedBy: string;
    watch: (sha: string, purpose: RolloutWatchInput['purpose'], reconcile: boolean) => Promise<RolloutResult>;
  },
): Promise<MonitorOutcome> {
  const { status, request, config } = state;
  const commit = status.commit;
  if (commit === undefined) return { stage: 'failed', reason: 'internal: rollback without a commit' };
  const { stalled, decidedBy, watch } = context;
  state.updateRollout({ state: 'rolling-back' }, nowIso());
  publish();
  let revert: { commit: string };
  try {
    revert = await steps.call(
      'rollback',
      'short',
      'revertRelease',
      [
        {
          releaseId: status.releaseId,
          model: request.model.name,
          version: request.model.version,
          environment: request.environment,
          commit: commit.sha,
          reason: clip(stalled, 500),
          decidedBy,
        },
      ],
      `revert ${commit.sha.slice(0, 12)} (${request.model.name}@${request.model.version} → ${request.environment})`,
      GITOPS_ROUNDS,
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { stage: 'failed', reason: `${stalled}; the rollback could not be committed: ${failureMessage(err)}` };
  }
  state.updateRollout({ revert: { sha: revert.commit, decidedBy, reason: clip(stalled, 500) } }, nowIso());
  publish();
  const result = await watch(revert.commit, 'rollback', config?.delivery?.requestReconcile ?? true);
  const rolledBack = `${stalled}; rolled back in ${revert.commit.slice(0, 12)} (decided by ${decidedBy})`;
  if (result.outcome === 'healthy') {
    state.updateRollout({ state: 'rolled-back', rollbackOutcome: 'healthy', ...observation(result) }, nowIso());
    return { stage: 'rolled-back', reason: `${rolledBack}; the previous version runs again` };
  }
  state.updateRollout(
    { state: 'rolled-back', rollbackOutcome: `${result.outcome}: ${clip(result.reason, 300)}` },
    nowIso(),
  );
  return { stage: 'rolled-back', reason: `${rolledBack}; the rollback's rollout did not complete: ${result.reason}` };
}

function observation(result: RolloutResult) {
  return {
    ...(result.replicas ? { replicas: result.replicas } : {}),
    ...(result.appliedRevision ? { appliedRevision: clip(result.appliedRevision, 200) } : {}),
  };
}
