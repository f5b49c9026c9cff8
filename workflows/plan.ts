/**
 * The release plan: which gates run in which phase and when, how each step's activity is retried (its profile), and
 * on which task queue it runs. Data, read by the workflow; deterministic.
 *
 * Releases keep the plan they started with: each change of the plan is a patch id below, and a release replays with
 * the profiles and phases of the patches its history carries.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import type { EvaluationActivities } from '../activities/evaluate';
import { EVALUATION_TASK_QUEUE } from '../contract/definitions';
import { durationMs } from '../contract/duration';
import type { GateInput, GateResult, ReleaseConfig, ReleaseRequest } from '../contract/types';

/** Releases started before the content gates existed replay with acquire only (see test/histories). */
export const CONTENT_GATES_PATCH = 'content-gates-v1';
/**
 * Releases started with HARDENING_PATCH run every activity in rounds: a round is one activity call with a few quick
 * attempts; between rounds the release shows the attempt, the last failure and the next retry in its status and the
 * UI's details. Heartbeats every few seconds (workers/keep-alive.ts) against a short heartbeat timeout mean that an
 * activity lost with its worker is retried within seconds; the schedule-to-start timeout turns "no worker polls this
 * queue" into a visible round instead of a silent wait.
 */
export const HARDENING_PATCH = 'hardening-v1';
/** Releases started with NOTIFICATIONS_PATCH tell the policy's webhooks what happens. */
export const NOTIFICATIONS_PATCH = 'notifications-v1';
/**
 * Releases started with RELEASE_PLAN_PATCH: the manifest travels by digest, the evaluation dataset is acquired and
 * pinned with the model, evaluation runs on the queue the workers were configured with, the request is checked with
 * the schema frozen for this patch, and the GitOps commit carries the evidence bundle.
 */
export const RELEASE_PLAN_PATCH = 'release-plan-v1';

/**
 * Releases started with DELIVERY_PATCH watch their rollout after the commit (the `monitor` stage): they end released
 * only once the commit is applied and the rollout healthy, and a stalled rollout is rolled back or paused per policy.
 */
export const DELIVERY_PATCH = 'delivery-v1';
/**
 * Releases started with MONITORING_PATCH analyse the live model for the policy's `monitor:` window after a healthy
 * rollout (the `monitoring` stage), continuing as new when the history grows.
 */
export const MONITORING_PATCH = 'monitoring-v1';
/**
 * Releases started with TRUST_PATCH verify the SSH signature a decision carries (the key's fingerprint recorded), and
 * count an unsigned one only where the environment's policy allows it (marked unsigned).
 */
export const TRUST_PATCH = 'trust-v1';
/**
 * Releases started with TRUST_PAUSES_PATCH verify the `rollback` and `keep` of a paused rollout or monitoring window
 * by their SSH signatures too, as approvals are.
 */
export const TRUST_PAUSES_PATCH = 'trust-pauses-v1';

/** Which plan a release runs: the patches its history carries (all of them for a new release). */
export interface PlanVersion {
  hardened: boolean;
  notifying: boolean;
  contentGates: boolean;
  /** RELEASE_PLAN_PATCH: manifest by digest, pinned dataset, configured queues, evidence bundle. */
  planned: boolean;
  /** DELIVERY_PATCH: the rollout is watched after the commit. */
  delivering: boolean;
  /** MONITORING_PATCH: the live model is analysed for the policy's window. */
  monitoring: boolean;
  /** TRUST_PATCH: decisions are verified by their SSH signatures. */
  trusted?: boolean;
  /** TRUST_PAUSES_PATCH: so are the rollback and keep decisions of a pause. */
  signedPauses?: boolean;
}

/** How a step's activity is retried. Each has a hardened counterpart (rounds of a few quick attempts). */
export type Profile = 'short' | 'long' | 'evaluation' | 'watch';

/** Short, retried activities: config loading and the GitOps commit. */
const SHORT: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
};
/** Long, heartbeating activities that move model bytes. */
const LONG: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
};
/** Evaluation activities: on the evaluation task queue, long, heartbeating, resumable. */
const EVALUATION: ActivityOptions = {
  taskQueue: EVALUATION_TASK_QUEUE,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
};

const RETRY_IN_ROUND = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 };
/** How long a step waits for a worker before the round counts as starved (ReleaseConfig can shorten it). */
export const SCHEDULE_TO_START = '2 minutes';
const H_SHORT: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  scheduleToStartTimeout: SCHEDULE_TO_START,
  heartbeatTimeout: '15s',
  retry: RETRY_IN_ROUND,
};
const H_LONG: ActivityOptions = { ...H_SHORT, startToCloseTimeout: '6 hours' };
const H_EVALUATION: ActivityOptions = {
  taskQueue: EVALUATION_TASK_QUEUE,
  startToCloseTimeout: '2 hours',
  scheduleToStartTimeout: SCHEDULE_TO_START,
  // TensorFlow kernels can hold the event loop for a few seconds between heartbeats.
  heartbeatTimeout: '30s',
  retry: RETRY_IN_ROUND,
};

/**
 * The rollout watch: it waits on Kubernetes watches and ends itself at the policy's rollout timeout, so its own
 * timeout is only a backstop; a worker lost mid-watch is noticed by the heartbeat timeout, and the next attempt resumes
 * from the heartbeat (the first start's deadline, the last resourceVersion).
 */
const H_WATCH: ActivityOptions = { ...H_SHORT, startToCloseTimeout: '12 hours' };

const PROFILES: Record<Profile, { base: ActivityOptions; hardened: ActivityOptions }> = {
  short: { base: SHORT, hardened: H_SHORT },
  watch: { base: H_WATCH, hardened: H_WATCH },
  long: { base: LONG, hardened: H_LONG },
  evaluation: { base: EVALUATION, hardened: H_EVALUATION },
};

/** The notify activity: short, a few retries; a webhook that keeps failing is recorded, never fatal. */
export const NOTIFY: ActivityOptions = {
  startToCloseTimeout: '30s',
  scheduleToStartTimeout: '2 minutes',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 6 },
};

/** Rounds before a step gives up (gates: error verdict; gitops: waits for a `retry` signal). */
export const GATE_ROUNDS = 8;
export const GITOPS_ROUNDS = 5;
/** Rounds of the rollout watch and the revert before the release gives up on watching (it is committed by then). */
export const MONITOR_ROUNDS = 5;
/**
 * A release in its monitoring window continues as new once its history holds this many events (or the server
 * suggests it, or it passes MONITOR_HISTORY_BYTES); the policy's `monitor.continueAsNewAfter` may lower it.
 */
export const MONITOR_HISTORY_EVENTS = 10_000;
export const MONITOR_HISTORY_BYTES = 20 * 1024 * 1024;
export const ROUND_BACKOFF_MS = { first: 10_000, max: 5 * 60_000 };
/** How long a step waits for a worker to take it (rounds of schedule-to-start timeouts) before it fails. */
export const STARVED_LIMIT_MS = 24 * 3_600_000;

/** The wait before round `failures + 1`: doubling from ROUND_BACKOFF_MS.first up to its max. */
export function roundBackoffMs(failures: number): number {
  return Math.min(ROUND_BACKOFF_MS.first * 2 ** (Math.max(failures, 1) - 1), ROUND_BACKOFF_MS.max);
}

/**
 * The options one step's activity call runs with: `profile` as the release began (base or hardened), and for
 * RELEASE_PLAN_PATCH releases the evaluation queue and schedule-to-start timeout that the workers were configured with
 * (ReleaseConfig), so that MREL_EVALUATION_TASK_QUEUE moves the evaluation steps along with their worker.
 */
export function activityOptions(
  profile: Profile,
  version: PlanVersion,
  config?: Pick<ReleaseConfig, 'taskQueues' | 'scheduleToStartTimeout'>,
): ActivityOptions {
  const { base, hardened } = PROFILES[profile];
  if (!version.hardened) return base;
  if (!version.planned || config === undefined) return hardened;
  const options: ActivityOptions = { ...hardened };
  if (config.scheduleToStartTimeout !== undefined && config.scheduleToStartTimeout !== '')
    options.scheduleToStartTimeout = durationMs(config.scheduleToStartTimeout);
  if (profile === 'evaluation' && config.taskQueues?.evaluation) options.taskQueue = config.taskQueues.evaluation;
  return options;
}

/** Every activity a release schedules, by its name. */
export type PlanActivities = ReleaseActivities & EvaluationActivities;
/** Gate activities: `(input: GateInput) => Promise<GateResult>` on the release or the evaluation worker. */
export type GateActivityName = {
  [K in keyof PlanActivities]: PlanActivities[K] extends (input: GateInput) => Promise<GateResult> ? K : never;
}[keyof PlanActivities];

/** One gate of the plan. Gates in one phase run in parallel; a fail or error stops the release. */
export interface GateStep {
  name: string;
  /** The activity that judges; absent for acquire, which the workflow turns into its gate result itself. */
  activity?: GateActivityName;
  profile: Profile;
  /** The policy section the gate reads (its own name by default; the evaluation gates share `evaluation`). */
  section?: string;
  /** Whether the gate applies to this release (default: always). Decided at start, from the request. */
  when?: (request: ReleaseRequest) => boolean;
}

const hasEvaluation = (request: ReleaseRequest): boolean => request.evaluation !== undefined;
const evaluationGate = (name: string, activity: GateActivityName): GateStep => ({
  name,
  activity,
  profile: 'evaluation',
  section: 'evaluation',
  when: hasEvaluation,
});

/** The gate pipeline, phase by phase. Adding a gate is one entry here (and its stage name in GATE_STAGES). */
const PHASES: readonly (readonly GateStep[])[] = [
  [{ name: 'acquire', profile: 'long' }],
  [
    { name: 'scan', activity: 'scanModel', profile: 'long' },
    { name: 'license', activity: 'checkLicense', profile: 'long' },
    // The inference image and its dependencies, when the request names the image it ships in.
    { name: 'image', activity: 'scanImage', profile: 'long', when: (r) => r.image !== undefined },
  ],
  // Measured against the curated dataset the request names (the policy can require one at the door).
  [
    evaluationGate('fairness', 'evaluateFairness'),
    evaluationGate('robustness', 'evaluateRobustness'),
    evaluationGate('explain', 'explainModel'),
  ],
  // Last: it reads the throughput the evaluation measured and prices the other gates' verdicts as risk.
  [{ name: 'cost', activity: 'estimateCost', profile: 'long' }],
];

/** The stage a release is in while a phase runs: its gates' names joined by `+`, every combination `when` allows. */
export const GATE_STAGES = [
  'acquire',
  'scan+license',
  'scan+license+image',
  'fairness+robustness+explain',
  'cost',
] as const;
export type GateStage = (typeof GATE_STAGES)[number];

/** The phases that apply to `request`, each with its stage name. */
export function phasesFor(request: ReleaseRequest, version: PlanVersion): { stage: GateStage; gates: GateStep[] }[] {
  const phases = version.contentGates ? PHASES : PHASES.slice(0, 1);
  return phases
    .map((phase) => phase.filter((gate) => gate.when?.(request) ?? true))
    .filter((gates) => gates.length > 0)
    .map((gates) => ({ stage: gateStage(gates.map((g) => g.name).join('+')), gates }));
}

function gateStage(name: string): GateStage {
  const stage = GATE_STAGES.find((s) => s === name);
  if (stage === undefined) throw new Error(`internal: phase ${name} has no stage in GATE_STAGES`);
  return stage;
}
