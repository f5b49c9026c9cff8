/**
 * The engine's own metrics, emitted from workflow code through the SDK's workflow metric meter: they leave the
 * workflow sandbox through a sink that the SDK skips while replaying, so a release replayed on another worker never
 * counts twice, and they reach the same Prometheus endpoint as the SDK's metrics (MREL_METRICS_ADDRESS). The SDK adds
 * `namespace`, `taskQueue` and `workflowType` to every one (its own metrics spell them `task_queue`, `workflow_type`).
 *
 * Deterministic: no I/O, and time only from the workflow's clock (the values are computed during replay too, and
 * simply not sent). Labels are bounded: environments, model names, stages, gates and verdicts are few; a release id
 * or version never becomes a label.
 */
import { metricMeter } from '@temporalio/workflow';
import { TERMINAL_STAGES, type GateResult, type ReleaseStatus } from '../contract/types';

/** Every metric the engine exports, by name (the dashboard and the alert rules use only these and the SDK's own). */
export const ENGINE_METRICS = {
  releasesStarted: 'modelrelease_releases_started_total',
  releasesEnded: 'modelrelease_releases_ended_total',
  releaseDuration: 'modelrelease_release_duration_seconds',
  stageDuration: 'modelrelease_stage_duration_seconds',
  stageChanged: 'modelrelease_release_stage_changed_timestamp_seconds',
  gateVerdicts: 'modelrelease_gate_verdicts_total',
  gateDuration: 'modelrelease_gate_duration_seconds',
  approvalWait: 'modelrelease_approval_wait_seconds',
  rollbacks: 'modelrelease_rollbacks_total',
} as const;

/**
 * Histogram buckets in seconds, from a quick gate to a week-long approval wait: the SDK's default buckets are made for
 * milliseconds. Keyed by metric name, as the Prometheus exporter's histogramBucketOverrides wants them.
 */
const SECONDS_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600, 86_400, 259_200, 604_800];
export const ENGINE_HISTOGRAM_BUCKETS: Record<string, number[]> = Object.fromEntries(
  [
    ENGINE_METRICS.releaseDuration,
    ENGINE_METRICS.stageDuration,
    ENGINE_METRICS.gateDuration,
    ENGINE_METRICS.approvalWait,
  ].map((name) => [name, SECONDS_BUCKETS]),
);

type Outcome = (typeof TERMINAL_STAGES)[number];

/** How an approval wait ended, by the stage the release moved to from `approval`. */
const APPROVAL_RESULTS: Partial<Record<string, 'approved' | 'rejected' | 'expired'>> = {
  gitops: 'approved',
  rejected: 'rejected',
  expired: 'expired',
};

const seconds = (ms: number): number => Math.max(0, ms) / 1000;

/** A release of `model` to `environment` has started. */
export function releaseStarted(environment: string, model: string): void {
  metricMeter.createCounter(ENGINE_METRICS.releasesStarted, '1', 'Releases started').add(1, { environment, model });
}

/** A release that started at `startedAtMs` has ended in `outcome` (released, rejected, expired, failed, rolled-back). */
export function releaseEnded(
  outcome: Outcome,
  environment: string,
  model: string,
  startedAtMs: number,
  nowMs: number,
): void {
  metricMeter
    .createCounter(ENGINE_METRICS.releasesEnded, '1', 'Releases ended, by outcome')
    .add(1, { environment, model, outcome });
  metricMeter
    .createHistogram(ENGINE_METRICS.releaseDuration, 'float', 's', 'Time from start to end of a release')
    .record(seconds(nowMs - startedAtMs), { environment, outcome });
}

/**
 * The release moved to `stage` at `atMs`. A gauge per model, environment and stage holds when: the stage whose
 * timestamp is the latest of its model and environment is where the release is, which lets an alert say "no stage
 * change for hours" across any number of workers (a worker that lost the release to another keeps older values).
 */
export function stageChanged(stage: string, environment: string, model: string, atMs: number): void {
  metricMeter
    .createGauge(
      ENGINE_METRICS.stageChanged,
      'float',
      's',
      'When the release of this model to this environment entered this stage (Unix seconds)',
    )
    .set(atMs / 1000, { environment, model, stage });
}

/** The release spent `ms` in `stage` (config, a gate phase such as scan+license, approval, gitops). */
export function stageLeft(stage: string, environment: string, ms: number): void {
  metricMeter
    .createHistogram(ENGINE_METRICS.stageDuration, 'float', 's', 'Time a release spent in a stage')
    .record(seconds(ms), { environment, stage });
}

/** A gate judged the release: `verdict` (pass, warn, fail, error) after `ms`. */
export function gateJudged(gate: string, verdict: GateResult['verdict'], environment: string, ms: number): void {
  metricMeter.createCounter(ENGINE_METRICS.gateVerdicts, '1', 'Gate verdicts').add(1, { environment, gate, verdict });
  metricMeter
    .createHistogram(ENGINE_METRICS.gateDuration, 'float', 's', 'Time a gate took to reach its verdict')
    .record(seconds(ms), { environment, gate, verdict });
}

/** The release waited `ms` for its approvers, and the wait ended as `result` (approved, rejected or expired). */
export function approvalWaited(result: 'approved' | 'rejected' | 'expired', environment: string, ms: number): void {
  metricMeter
    .createHistogram(ENGINE_METRICS.approvalWait, 'float', 's', 'Time a release waited for its approvals')
    .record(seconds(ms), { environment, result });
}

/** A released model was rolled back in `environment` (the monitoring stage's revert). */
export function rollback(environment: string, model: string): void {
  metricMeter.createCounter(ENGINE_METRICS.rollbacks, '1', 'Releases rolled back').add(1, { environment, model });
}

/**
 * Turns what a release publishes into the metrics above: call `observe(status)` wherever the workflow publishes its
 * status. It notices the first call (started), each stage change (time in the stage left, approval wait), each new
 * gate result (verdict and duration) and the end (outcome and total time). Times come from the workflow clock.
 */
export class ReleaseMetrics {
  private stage: string | undefined;
  private stageSinceMs = 0;
  private startedAtMs = 0;
  /** Gate results already counted, by gate and finish time (a gate's result is recorded once per run). */
  private readonly judged = new Set<string>();
  /** Strictly increasing, so that two stages entered in one workflow task never hold the same timestamp. */
  private lastChangeMs = 0;

  constructor(
    private readonly environment: string,
    private readonly model: string,
  ) {}

  observe(status: Pick<ReleaseStatus, 'stage' | 'gates'>, nowMs: number = Date.now()): void {
    if (this.stage === undefined) {
      this.startedAtMs = nowMs;
      releaseStarted(this.environment, this.model);
    }
    for (const gate of status.gates) {
      const key = `${gate.gate}@${gate.finishedAt}`;
      if (this.judged.has(key)) continue;
      this.judged.add(key);
      gateJudged(gate.gate, gate.verdict, this.environment, Date.parse(gate.finishedAt) - Date.parse(gate.startedAt));
    }
    if (status.stage === this.stage) return;
    const previous = this.stage;
    if (previous !== undefined) {
      stageLeft(previous, this.environment, nowMs - this.stageSinceMs);
      const result = previous === 'approval' ? APPROVAL_RESULTS[status.stage] : undefined;
      if (result !== undefined) approvalWaited(result, this.environment, nowMs - this.stageSinceMs);
    }
    this.stage = status.stage;
    this.stageSinceMs = nowMs;
    this.lastChangeMs = Math.max(nowMs, this.lastChangeMs + 1);
    stageChanged(status.stage, this.environment, this.model, this.lastChangeMs);
    const outcome = TERMINAL_STAGES.find((s) => s === status.stage);
    if (outcome !== undefined) releaseEnded(outcome, this.environment, this.model, this.startedAtMs, nowMs);
    // The monitor stage reverted the release's commit: counted apart, for the rollback alert and dashboard panel.
    if (outcome === 'rolled-back') rollback(this.environment, this.model);
  }
}
