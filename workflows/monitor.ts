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
import type { MonitoringStatus } from '../contract/monitoring';
import type { RolloutStatus, TerminalStage } from '../contract/types';
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
  state.startMonitor(`${workload.kind} ${workload.namespace}/${workload.name}`, nowIso());
  publish();

  const watch = watcher(state, steps) as Watch;

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
      const asked = await askPeople(state, steps, publish, {
        pause: delivery.rollout.pause,
        target: 'rollout',
        event: 'rollout-stalled',
        problem: stalled,
      });
      if (asked.choice === 'keep' && asked.timedOut)
        return {
          stage: 'failed',
          reason: `${stalled}; nobody decided within ${delivery.rollout.pause.timeout}: kept as it is (policy onTimeout: keep)`,
        };
      if (asked.choice === 'keep') continue;
      decidedBy = asked.decidedBy;
    }
    return rollBack(state, steps, publish, { problem: stalled, decidedBy, watch, target: 'rollout' });
  }
}

/**
 * Waits for a `rollback` or `keep` from a person holding one of the pause's roles, until its deadline; then the
 * policy's onTimeout decides.
 */
export async function askPeople(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  args: {
    pause: { roles: string[]; timeout: string; onTimeout: 'rollback' | 'keep' };
    target: 'rollout' | 'monitoring';
    event: 'rollout-stalled' | 'monitoring-breached';
    problem: string;
  },
): Promise<{ choice: 'rollback' | 'keep'; decidedBy: string; timedOut: boolean }> {
  const { pause, target, event, problem } = args;
  const deadline = new Date(Date.now() + durationMs(pause.timeout)).toISOString();
  state.pauseRollout(pause.roles, deadline, pause.onTimeout, nowIso(), target);
  publish();
  const awaiting = target === 'monitoring' ? state.status.monitoring?.awaiting : state.status.rollout?.awaiting;
  const told = steps.notify(event, `${problem}; awaits rollback or keep`, [
    `may decide: ${awaiting?.from.join(', ') || `nobody with ${pause.roles.join('/')}`}`,
    `until ${deadline}, then ${pause.onTimeout}`,
  ]);
  const decided = await condition(() => state.rolloutDecision !== undefined, durationMs(pause.timeout));
  await told;
  const decision = state.rolloutDecision;
  if (!decided || decision === undefined) {
    if (target === 'monitoring') state.updateMonitoring({ awaiting: undefined }, nowIso());
    else state.updateRollout({ awaiting: undefined }, nowIso());
    return {
      choice: pause.onTimeout,
      decidedBy: `policy ${state.request.policy} (no decision within ${pause.timeout})`,
      timedOut: true,
    };
  }
  return { choice: decision.decision, decidedBy: `${decision.approver} (${decision.role})`, timedOut: false };
}

export type Watch = (sha: string, purpose: RolloutWatchInput['purpose'], reconcile: boolean) => Promise<RolloutResult>;

/** Watches a commit's rollout on the environment's cluster; undefined for an environment without delivery. */
export function watcher(state: ReleaseState, steps: Steps): Watch | undefined {
  const { config, request, status } = state;
  const delivery = config?.delivery;
  if (delivery === undefined) return undefined;
  const workload = workloadOf({ request, delivery });
  const timeout = delivery.rollout.timeout;
  return async (sha, purpose, reconcile) => {
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
}

/**
 * Rolls the release back: a revert commit with the rollback trailers, then the rollback's own rollout watched to the
 * end (where the environment is delivered to a cluster). `target` is the status that shows it: the stalled rollout or
 * the breached monitoring window.
 */
export async function rollBack(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  context: { problem: string; decidedBy: string; watch: Watch | undefined; target: 'rollout' | 'monitoring' },
): Promise<MonitorOutcome> {
  const { status, request, config } = state;
  const commit = status.commit;
  if (commit === undefined) return { stage: 'failed', reason: 'internal: rollback without a commit' };
  const { problem, decidedBy, watch, target } = context;
  const update = (change: Partial<RolloutStatus> & Partial<MonitoringStatus>) =>
    target === 'monitoring'
      ? state.updateMonitoring(change as Partial<MonitoringStatus>, nowIso())
      : state.updateRollout(change as Partial<RolloutStatus>, nowIso());
  update({ state: 'rolling-back' });
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
          reason: clip(problem, 500),
          decidedBy,
        },
      ],
      `revert ${commit.sha.slice(0, 12)} (${request.model.name}@${request.model.version} → ${request.environment})`,
      GITOPS_ROUNDS,
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { stage: 'failed', reason: `${problem}; the rollback could not be committed: ${failureMessage(err)}` };
  }
  update({ revert: { sha: revert.commit, decidedBy, reason: clip(problem, 500) } });
  publish();
  const rolledBack = `${problem}; rolled back in ${revert.commit.slice(0, 12)} (decided by ${decidedBy})`;
  if (watch === undefined) {
    update({ state: 'rolled-back' });
    return { stage: 'rolled-back', reason: `${rolledBack}; no cluster to watch the rollback on` };
  }
  const result = await watch(revert.commit, 'rollback', config?.delivery?.requestReconcile ?? true);
  // The rollout row shows what the cluster runs now.
  if (target === 'monitoring' && status.rollout !== undefined) state.updateRollout(observation(result), nowIso());
  if (result.outcome === 'healthy' || result.outcome === 'no-cluster') {
    update({
      state: 'rolled-back',
      rollbackOutcome: result.outcome,
      ...(target === 'rollout' ? observation(result) : {}),
    });
    const after = result.outcome === 'healthy' ? 'the previous version runs again' : clip(result.reason, 300);
    return { stage: 'rolled-back', reason: `${rolledBack}; ${after}` };
  }
  update({ state: 'rolled-back', rollbackOutcome: `${result.outcome}: ${clip(result.reason, 300)}` });
  return { stage: 'rolled-back', reason: `${rolledBack}; the rollback's rollout did not complete: ${result.reason}` };
}

function observation(result: RolloutResult) {
  return {
    ...(result.replicas ? { replicas: result.replicas } : {}),
    ...(result.appliedRevision ? { appliedRevision: clip(result.appliedRevision, 200) } : {}),
  };
}
