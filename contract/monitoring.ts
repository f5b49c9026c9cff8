/**
 * The shapes of post-deploy analysis (the `monitoring` stage): the policy's `monitor:` section resolved per
 * environment, one measurement of one metric, and the tally that decides a metric's phase with Argo Rollouts'
 * meaning of `count`, `failureLimit`, `inconclusiveLimit` and `consecutiveErrorLimit`. Pure data and pure functions:
 * the workflow imports this file.
 */
import type { PinnedArtifact, ReleaseConfig, ReleaseStatus, SignedBy } from './types';

/** Argo Rollouts' measurement phases: what one measurement concluded. */
export type MeasurementPhase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';
/** A metric's phase once its measurements are tallied (Running until it concludes). */
export type MetricPhase = 'Running' | MeasurementPhase;

/** Where a metric's value comes from. */
export type MetricProvider =
  | {
      prometheus: {
        /** Prometheus' base URL (http or https; an allowed host, see activities/monitor/analysis). */
        address: string;
        /** PromQL with `{{args.<name>}}` placeholders; the release's labels are args too (see releaseArgs). */
        query: string;
        /** Per query (a duration; default 30s). */
        timeout?: string;
      };
    }
  | {
      /** Data drift between the inference log and the evaluation dataset the release pinned (per-feature overrides). */
      drift: { columns?: string[]; categorical?: string[]; overrides?: Record<string, unknown>; minRows?: number };
    }
  | {
      /** Bias drift: selection rate per group from predictions, fairness metrics where feedback exists. */
      bias: { metrics?: string[]; minRows?: number; resamples?: number; confidence?: number };
    };

/** One metric of the `monitor:` section, templates expanded and defaults filled in. */
export interface MonitorMetric {
  name: string;
  provider: MetricProvider;
  /** The policy's `args` (values are strings, as in Argo Rollouts). */
  args: Record<string, string>;
  /** Time between measurements (a duration); absent: one measurement. */
  interval?: string;
  /** How many measurements; absent with an interval: until the window ends. */
  count?: number;
  /** Wait this long after the window opens before the first measurement (a duration; default 0s). */
  initialDelay?: string;
  /** Expressions over `result` (a safe expression language, never eval). */
  successCondition?: string;
  failureCondition?: string;
  /** Argo defaults: failureLimit 0, inconclusiveLimit 0, consecutiveErrorLimit 4. */
  failureLimit: number;
  inconclusiveLimit: number;
  consecutiveErrorLimit: number;
}

export type BreachAction = 'rollback' | 'pause' | 'record';

/** The `monitor:` section for one environment, resolved with defaults. */
export interface MonitorPolicy {
  /** How long the live model is watched after a healthy rollout (a duration, e.g. 24h). */
  window: string;
  metrics: MonitorMetric[];
  /** What a breach (a Failed or Error metric; Inconclusive always pauses) leads to. */
  onBreach: BreachAction;
  /** The pause path: who may send `rollback` / `keep`, how long the release waits, and what happens then. */
  pause: { roles: string[]; timeout: string; onTimeout: 'rollback' | 'keep' };
  /** History events per run before the release continues as new during the window (default 10,000). */
  continueAsNewAfter?: number;
}

/** The release's labels every query may use as `{{args.<name>}}` (policy args of the same name win). */
export interface ReleaseLabels {
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  /** The workload serving it (Deployment or InferenceService), when delivered to a cluster. */
  namespace?: string;
  workload?: string;
  /** `sha256:<hex>` of the model manifest the gates judged. */
  manifestDigest: string;
}

export function releaseArgs(labels: ReleaseLabels): Record<string, string> {
  return {
    releaseId: labels.releaseId,
    model: labels.model,
    version: labels.version,
    environment: labels.environment,
    namespace: labels.namespace ?? '',
    workload: labels.workload ?? '',
    manifestDigest: labels.manifestDigest,
  };
}

/** What the evaluation gate found, for the bias provider (from the release's gate results, bounded). */
export interface EvaluationBaseline {
  /** The evaluation dataset, pinned by sha256 in the artifact store. */
  dataset?: { sha256: string; size: number; source: string };
  label?: string;
  protected: string[];
  favorable?: string | number | boolean;
  /** The fairness gate's metrics by name (e.g. demographicParityDifference), as recorded in its result. */
  fairness: Record<string, number>;
  /** Selection rate per group in evaluation, keyed `<attribute>=<value>`, when the gate recorded them. */
  selectionRates?: Record<string, number>;
  /** The Deployment's `bias-drift-threshold` annotation (a difference in rates); absent: 0.05. */
  biasDriftThreshold: number;
}

/** The fairness gate's between-group metrics (activities/evaluate/fairness.ts BETWEEN_GROUP_METRICS; a test keeps them equal). */
export const FAIRNESS_METRIC_NAMES = [
  'demographicParityDifference',
  'demographicParityRatio',
  'equalOpportunityDifference',
  'equalOpportunityRatio',
  'equalizedOddsDifference',
  'equalizedOddsRatio',
  'statisticalParityDifference',
  'disparateImpact',
  'averageOddsDifference',
] as const;

/** Input of the `measureMetric` activity: one measurement of one metric. */
export interface MeasureInput {
  metric: MonitorMetric;
  labels: ReleaseLabels;
  /** When the window opened (ISO); drift and bias read the inference log from then on. */
  windowStart: string;
  /** Which measurement this is (1-based), for messages. */
  index: number;
  baseline?: EvaluationBaseline;
}

/** One measurement, bounded (it lands in history and status). */
export interface Measurement {
  phase: MeasurementPhase;
  /** A short rendering of the result for tables (≤ 200 characters). */
  value: string;
  /** The provider's result as JSON, bounded (≤ 8 KiB serialized); what the conditions saw. */
  result?: unknown;
  /** Why (an error, an inconclusive result, the condition that failed); ≤ 500 characters. */
  message?: string;
  startedAt: string;
  finishedAt: string;
}

/** A metric's running tally (Argo's MetricResult): what status and the UI show per metric. */
export interface MetricTally {
  name: string;
  phase: MetricPhase;
  count: number;
  successful: number;
  failed: number;
  inconclusive: number;
  error: number;
  consecutiveError: number;
  /** The latest measurement. */
  last?: Measurement;
  message?: string;
  /** When the next measurement is due (ISO); absent once the metric concluded. */
  nextAt?: string;
}

export function emptyTally(name: string): MetricTally {
  return { name, phase: 'Running', count: 0, successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0 };
}

/**
 * Adds one measurement to a metric's tally and decides its phase as Argo Rollouts does: Failed when failures exceed
 * failureLimit, Inconclusive when inconclusives exceed inconclusiveLimit, Error when consecutive errors exceed
 * consecutiveErrorLimit, Successful once `count` measurements are taken (or after the only one, without an interval).
 */
export function tally(metric: MonitorMetric, before: MetricTally, m: Measurement): MetricTally {
  const t: MetricTally = { ...before, count: before.count + 1, last: m };
  if (m.phase === 'Successful') t.successful++;
  if (m.phase === 'Failed') t.failed++;
  if (m.phase === 'Inconclusive') t.inconclusive++;
  if (m.phase === 'Error') {
    t.error++;
    t.consecutiveError++;
  } else t.consecutiveError = 0;
  t.phase = phaseOf(metric, t);
  if (m.message !== undefined) t.message = m.message;
  return t;
}

export function phaseOf(metric: MonitorMetric, t: MetricTally): MetricPhase {
  if (t.failed > metric.failureLimit) return 'Failed';
  if (t.inconclusive > metric.inconclusiveLimit) return 'Inconclusive';
  if (t.consecutiveError > metric.consecutiveErrorLimit) return 'Error';
  const planned = metric.count ?? (metric.interval === undefined ? 1 : undefined);
  if (planned !== undefined && t.count >= planned) return 'Successful';
  return 'Running';
}

/** What the monitoring window concluded. */
export interface MonitoringResult {
  outcome: 'passed' | 'breached';
  /** The metric that breached and how (Failed, Error or Inconclusive). */
  breach?: { metric: string; phase: MeasurementPhase; message: string };
  metrics: MetricTally[];
  startedAt: string;
  finishedAt: string;
}

/** Input of `commitMonitoringEvidence`: the window's results, committed beside the release's evidence. */
export interface MonitoringEvidenceInput {
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  /** The release's commit the window watched. */
  commit: string;
  policy: { name: string; digest: string };
  window: string;
  result: MonitoringResult;
  /** What followed: kept, rolled back (with the revert commit), paused and decided, or recorded. */
  outcome: string;
  /** The people's `rollback` / `keep` on a pause of the window, with their signatures; absent when none. */
  decisions?: PauseDecision[];
}

/** A person's `rollback` or `keep` on a paused release (a stalled rollout or a breached window). */
export interface PauseDecision {
  approver: string;
  role: string;
  decision: 'rollback' | 'keep';
  comment?: string;
  at: string;
  /** The SSH signature the release verified (TRUST_PAUSES_PATCH releases). */
  signed?: SignedBy;
  /** Counted without a signature, where the environment's policy allows unsigned decisions. */
  unsigned?: true;
}

/** While paused: who may decide, until when, and what happens then. */
export interface PauseAwaiting {
  roles: string[];
  from: string[];
  deadline: string;
  onTimeout: 'rollback' | 'keep';
}

/** The `monitoring` stage as status, the UI and the memo show it. */
export interface MonitoringStatus {
  /**
   * watching: measurements run on their intervals; paused: a breach waits for people; then how it ended: passed
   * (the window closed without a breach, or every metric concluded), rolling-back / rolled-back, recorded (a breach
   * the policy only records), kept (people kept a breached model: the window goes on without that metric).
   */
  state: 'watching' | 'paused' | 'passed' | 'rolling-back' | 'rolled-back' | 'recorded';
  window: string;
  startedAt: string;
  endsAt: string;
  metrics: MetricTally[];
  /** Metrics whose breach people kept: they no longer breach the window. */
  kept: string[];
  breach?: { metric: string; phase: MeasurementPhase; message: string; at: string };
  awaiting?: PauseAwaiting;
  decisions: PauseDecision[];
  /** The revert commit of a rollback. */
  revert?: { sha: string; decidedBy: string; reason: string };
  rollbackOutcome?: string;
  /** The window's results, committed beside the release's evidence when it ended. */
  evidence?: { commit: string; path: string; sha256: string };
  /** How many times the release continued as new during the window (a fresh history each time). */
  continuedAsNew: number;
}

/**
 * What a release carries into its next run when it continues as new during the monitoring window: the status (without
 * the findings, which the evidence in Git keeps), the resolved config, the pinned dataset.
 */
export interface MonitoringResume {
  status: ReleaseStatus;
  config: ReleaseConfig;
  dataset?: PinnedArtifact;
}
