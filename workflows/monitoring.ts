/**
 * The `monitoring` stage (MONITORING_PATCH releases whose policy has a `monitor:` section): after a healthy rollout the
 * live model is measured for the policy's window, each metric on its own interval (Argo Rollouts' analysis: count,
 * initialDelay, failureLimit, inconclusiveLimit, consecutiveErrorLimit). A breach rolls back, pauses for people or is
 * only recorded, as the policy says; an Inconclusive metric always asks people. The window runs on workflow timers,
 * continues as new when the history grows, and its results are committed beside the release's evidence when it ends.
 */
import { continueAsNew, isCancellation, sleep, workflowInfo } from '@temporalio/workflow';
import { workloadOf } from '../contract/delivery';
import { clip } from '../contract/limits';
import type {
  Measurement,
  MeasureInput,
  MetricTally,
  MonitoringResult,
  MonitorMetric,
  MonitorPolicy,
  ReleaseLabels,
} from '../contract/monitoring';
import { evaluationBaseline } from './evaluation-baseline';
import { nowIso } from './handlers';
import { askPeople, rollBack, watcher, type MonitorOutcome } from './monitor';
import { GITOPS_ROUNDS, MONITOR_HISTORY_BYTES, MONITOR_HISTORY_EVENTS, MONITOR_ROUNDS } from './plan';
import type { ReleaseState } from './release-state';
import { failureMessage, type Steps } from './steps';

const BREACHING = new Set(['Failed', 'Error', 'Inconclusive']);

/**
 * Runs (or, in a run that continued as new, resumes) the monitoring window. `before` is how the rollout ended, whose
 * reason the release keeps.
 */
export async function monitorWindow(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  before?: MonitorOutcome,
): Promise<MonitorOutcome> {
  const policy = state.config?.monitor as MonitorPolicy;
  if (state.status.monitoring === undefined) {
    state.startMonitoring(policy, nowIso());
    publish();
  }
  const labels = releaseLabels(state);
  const baseline = evaluationBaseline(state.status.gates, state.request, state.dataset);
  const limit = policy.continueAsNewAfter ?? MONITOR_HISTORY_EVENTS;

  for (;;) {
    const monitoring = state.monitoring;
    const running = monitoring.metrics.filter((t) => t.phase === 'Running' && t.nextAt !== undefined);
    const endsAt = Date.parse(monitoring.endsAt);
    const nextAt = Math.min(...running.map((t) => Date.parse(t.nextAt as string)));
    if (running.length === 0 || nextAt >= endsAt) {
      if (Date.now() < endsAt && running.length > 0) await sleep(endsAt - Date.now());
      return conclude(state, steps, publish, 'passed', before);
    }
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > limit || info.historySize > MONITOR_HISTORY_BYTES) {
      state.updateMonitoring({ continuedAsNew: monitoring.continuedAsNew + 1 }, nowIso());
      publish();
      await continueAsNew(state.request, state.resumeInput());
    }
    if (nextAt > Date.now()) await sleep(nextAt - Date.now());
    const due = running.filter((t) => Date.parse(t.nextAt as string) <= Date.now());
    const measured = await Promise.all(
      due.map(async (t) => {
        const metric = policy.metrics.find((m) => m.name === t.name) as MonitorMetric;
        const input: MeasureInput = {
          metric,
          labels,
          windowStart: monitoring.startedAt,
          index: t.count + 1,
          ...(baseline !== undefined && !('prometheus' in metric.provider) ? { baseline } : {}),
        };
        return { metric, measurement: await measure(steps, input) };
      }),
    );
    let breach: MetricTally | undefined;
    for (const { metric, measurement } of measured) {
      const after = state.recordMeasurement(metric, measurement, nowIso());
      if (breach === undefined && BREACHING.has(after.phase) && !state.monitoring.kept.includes(after.name))
        breach = after;
    }
    publish();
    if (breach === undefined) continue;
    const outcome = await onBreach(state, steps, publish, policy, breach);
    if (outcome !== undefined) return outcome;
  }
}

/** One measurement; a step that cannot run at all (no worker, a bug) is an Error measurement, never the release's end. */
async function measure(steps: Steps, input: MeasureInput): Promise<Measurement> {
  const startedAt = nowIso();
  try {
    return await steps.call(
      'monitoring',
      'long',
      'measureMetric',
      [input],
      `measure ${input.metric.name} (#${input.index})`,
      MONITOR_ROUNDS,
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { phase: 'Error', value: 'error', message: clip(failureMessage(err), 500), startedAt, finishedAt: nowIso() };
  }
}

/**
 * A metric breached: roll back, record, or ask people (an Inconclusive metric always asks). Returns the release's
 * outcome, or undefined when people (or the pause's default) kept the model: the window goes on without that metric.
 */
async function onBreach(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  policy: MonitorPolicy,
  breach: MetricTally,
): Promise<MonitorOutcome | undefined> {
  const phase = breach.phase as 'Failed' | 'Error' | 'Inconclusive';
  const message = clip(breach.message ?? breach.last?.value ?? phase, 300);
  const problem = `monitoring breached: ${breach.name} ${phase} after ${breach.count} measurement(s): ${message}`;
  state.updateMonitoring({ breach: { metric: breach.name, phase, message, at: nowIso() } }, nowIso());
  publish();
  const action = phase === 'Inconclusive' ? 'pause' : policy.onBreach;
  if (action === 'record') {
    state.updateMonitoring({ state: 'recorded' }, nowIso());
    return conclude(state, steps, publish, 'breached', {
      stage: 'failed',
      reason: `${problem}; the policy only records it: nothing was rolled back`,
    });
  }
  let decidedBy = `policy ${state.request.policy} (onBreach: rollback)`;
  if (action === 'pause') {
    const asked = await askPeople(state, steps, publish, {
      pause: policy.pause,
      target: 'monitoring',
      event: 'monitoring-breached',
      problem,
    });
    if (asked.choice === 'keep') {
      state.updateMonitoring({ state: 'watching', kept: [...state.monitoring.kept, breach.name] }, nowIso());
      publish();
      return undefined;
    }
    decidedBy = asked.decidedBy;
  }
  const outcome = await rollBack(state, steps, publish, {
    problem,
    decidedBy,
    watch: watcher(state, steps),
    target: 'monitoring',
  });
  return conclude(state, steps, publish, 'breached', outcome);
}

/** Ends the window: its results committed as evidence, and the release's outcome. */
async function conclude(
  state: ReleaseState,
  steps: Steps,
  publish: () => void,
  outcome: MonitoringResult['outcome'],
  after?: MonitorOutcome,
): Promise<MonitorOutcome> {
  const monitoring = state.monitoring;
  const measurements = monitoring.metrics.reduce((n, t) => n + t.count, 0);
  if (outcome === 'passed') state.updateMonitoring({ state: 'passed' }, nowIso());
  publish();
  const passed = `monitoring window ${monitoring.window} passed: ${monitoring.metrics.length} metric(s), ${measurements} measurement(s)${monitoring.kept.length > 0 ? `, breaches kept by people: ${monitoring.kept.join(', ')}` : ''}`;
  const result: MonitoringResult = {
    outcome,
    ...(monitoring.breach
      ? {
          breach: {
            metric: monitoring.breach.metric,
            phase: monitoring.breach.phase,
            message: monitoring.breach.message,
          },
        }
      : {}),
    metrics: monitoring.metrics,
    startedAt: monitoring.startedAt,
    finishedAt: nowIso(),
  };
  const final: MonitorOutcome =
    outcome === 'passed'
      ? { stage: 'released', reason: after?.reason ? `${after.reason}; ${passed}` : passed }
      : (after ?? { stage: 'failed', reason: 'monitoring breached' });
  const { request, status, config } = state;
  const commit = status.commit;
  if (commit === undefined || config === undefined) return final;
  try {
    const evidence = await steps.call(
      'monitoring-evidence',
      'short',
      'commitMonitoringEvidence',
      [
        {
          releaseId: status.releaseId,
          model: request.model.name,
          version: request.model.version,
          environment: request.environment,
          commit: commit.sha,
          policy: { name: config.policy.name, digest: config.policy.digest },
          window: monitoring.window,
          result,
          outcome: clip(final.reason ?? final.stage, 1000),
          ...(monitoring.decisions.length > 0 ? { decisions: monitoring.decisions.slice(0, 20) } : {}),
        },
      ],
      `commit the monitoring results of ${request.model.name}@${request.model.version} → ${request.environment}`,
      GITOPS_ROUNDS,
    );
    state.updateMonitoring(
      { evidence: { commit: evidence.commit, path: evidence.path, sha256: evidence.sha256 } },
      nowIso(),
    );
    return final;
  } catch (err) {
    if (isCancellation(err)) throw err;
    return {
      ...final,
      reason: `${final.reason ?? final.stage}; the monitoring results could not be committed: ${failureMessage(err)}`,
    };
  }
}

function releaseLabels(state: ReleaseState): ReleaseLabels {
  const { request, status, config } = state;
  const manifest = status.manifest;
  const digest = manifest === undefined ? '' : manifest.manifestDigest;
  const labels: ReleaseLabels = {
    releaseId: status.releaseId,
    model: request.model.name,
    version: request.model.version,
    environment: request.environment,
    manifestDigest: digest.startsWith('sha256:') || digest === '' ? digest : `sha256:${digest}`,
  };
  if (config?.delivery !== undefined) {
    const workload = workloadOf({ request, delivery: config.delivery });
    labels.namespace = workload.namespace;
    labels.workload = workload.name;
  }
  return labels;
}
