/**
 * How the release runs its steps: one activity call per step with the plan's profile, in visible rounds for hardened
 * releases; the gate phases; the webhooks. Each method changes ReleaseState and publishes, in the same order for every
 * release of one plan version, so that a recorded history replays command for command.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  isCancellation,
  proxyActivities,
  sleep,
  TimeoutFailure,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { FailureType } from '../contract/definitions';
import { durationMs } from '../contract/duration';
import { clip } from '../contract/limits';
import type {
  ArtifactManifest,
  GateInput,
  GateResult,
  ManifestRef,
  NotificationEvent,
  PinnedArtifact,
  ReleaseRequest,
  ReleaseStatus,
  TerminalStage,
} from '../contract/types';
import { nowIso } from './handlers';
import {
  activityOptions,
  GATE_ROUNDS,
  NOTIFY,
  roundBackoffMs,
  STARVED_LIMIT_MS,
  type GateStage,
  type GateStep,
  type PlanActivities,
  type PlanVersion,
  type Profile,
} from './plan';
import type { ReleaseState } from './release-state';

/** Failure types that mean the model itself is bad (fail), rather than that we could not decide (error). */
const FAILING_TYPES: string[] = [FailureType.DigestMismatch, FailureType.UnsafePath, FailureType.EmptyModel];

type Args<K extends keyof PlanActivities> = Parameters<PlanActivities[K]>;
type Result<K extends keyof PlanActivities> = Awaited<ReturnType<PlanActivities[K]>>;

export class Steps {
  private readonly notifier = proxyActivities<PlanActivities>(NOTIFY);
  private gateFailureNotified = false;

  constructor(
    private readonly state: ReleaseState,
    readonly version: PlanVersion,
    private readonly publish: () => void,
  ) {}

  /**
   * Calls `activity` as step `step` with the options of `profile`; for hardened releases in rounds, each failed round
   * shown with its failure and the next retry. A queue that no worker polls does not use up the rounds (it says so,
   * naming the queue) but ends too once the step has waited STARVED_LIMIT_MS.
   */
  async call<K extends keyof PlanActivities>(
    step: string,
    profile: Profile,
    activity: K,
    args: Args<K>,
    summary: string,
    rounds = GATE_ROUNDS,
  ): Promise<Result<K>> {
    const once = (): Promise<Result<K>> => {
      const options = activityOptions(profile, this.version, this.state.config);
      const stub = proxyActivities<PlanActivities>(options)[activity] as unknown as {
        executeWithOptions(o: ActivityOptions, a: Args<K>): Promise<Result<K>>;
      };
      return stub.executeWithOptions({ ...options, summary }, args).catch((err: unknown) => {
        throw starvedOn(err, options.taskQueue ?? workflowInfo().taskQueue);
      });
    };
    if (!this.version.hardened) return once();
    const since = Date.now();
    let failures = 0;
    for (let round = 1; ; round++) {
      try {
        const result = await once();
        if (this.state.status.retrying?.step === step) this.state.clearRetrying(nowIso());
        return result;
      } catch (err) {
        if (isCancellation(err) || isPermanent(err)) throw err;
        if (isStarved(err) ? Date.now() - since >= STARVED_LIMIT_MS : ++failures >= rounds) throw err;
        const wait = roundBackoffMs(failures);
        const now = nowIso();
        const nextRetryAt = new Date(Date.parse(now) + wait).toISOString();
        this.state.setRetrying(
          { step, attempt: round, lastFailure: failureMessage(err), failedAt: now, nextRetryAt },
          now,
        );
        this.publish();
        await sleep(wait);
      }
    }
  }

  /** Loads the release's config snapshot; a failure is the release's failure reason. */
  async loadConfig(): Promise<string | undefined> {
    const { request } = this.state;
    const input = {
      policy: request.policy,
      environment: request.environment,
      model: { name: request.model.name, version: request.model.version },
    };
    try {
      const summary = `load policy ${request.policy} for ${request.environment}`;
      this.state.config = await this.call('config', 'short', 'loadReleaseConfig', [input], summary);
      return undefined;
    } catch (err) {
      if (isCancellation(err)) throw err;
      return `config: ${failureMessage(err)}`;
    }
  }

  /** Runs one phase's gates in parallel and records them; returns why the release stops, if a gate failed. */
  private async runPhase(stage: GateStage, gates: GateStep[]): Promise<string | undefined> {
    this.state.enterPhase(stage, nowIso());
    this.publish();
    const results = await Promise.all(gates.map((gate) => this.runGate(gate)));
    for (const result of results) {
      this.state.recordGate(result, nowIso());
      this.state.extraRequirements.push(...(result.requiredApprovals ?? []));
    }
    this.publish();
    const stopped = results.find((r) => r.verdict === 'fail' || r.verdict === 'error');
    return stopped ? `${stopped.gate} ${stopped.verdict}: ${stopped.summary}` : undefined;
  }

  private async runGate(gate: GateStep): Promise<GateResult> {
    const startedAt = nowIso();
    try {
      if (gate.activity === undefined) return await this.acquire(startedAt);
      const { model } = this.state.request;
      const input = this.gateInput(gate);
      return await this.call(
        gate.name,
        gate.profile,
        gate.activity,
        [input],
        `${gate.name} ${model.name}@${model.version}`,
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      return gateError(gate.name, err, this.state.request.model.source, startedAt);
    }
  }

  /** Acquires the model (and, for RELEASE_PLAN_PATCH releases with an evaluation, its dataset), pinned by digest. */
  private async acquire(startedAt: string): Promise<GateResult> {
    const { model, evaluation } = this.state.request;
    const summary = `acquire ${model.name}@${model.version} from ${model.source}`;
    const manifest = this.call('acquire', 'long', 'acquireModel', [{ model }], summary);
    const dataset =
      this.version.planned && evaluation !== undefined
        ? this.call('dataset', 'long', 'acquireDataset', [datasetInput(evaluation)], `acquire ${evaluation.dataset}`)
        : undefined;
    // Together, so that a failure of either is handled and the other is not left running unobserved.
    const [acquired, pinned] = await Promise.all([manifest, dataset]);
    this.state.recordManifest(acquired as ManifestRef | ArtifactManifest);
    if (pinned !== undefined) this.state.dataset = pinned;
    return { ...acquireResult(acquired, this.state.dataset), startedAt, finishedAt: nowIso() };
  }

  private gateInput(gate: GateStep): GateInput {
    const { config, manifest, dataset } = this.state;
    if (!config || !manifest) throw new Error(`gate ${gate.name} ran before config and acquire`);
    const section = gate.section ?? gate.name;
    const input: GateInput = {
      releaseId: this.state.status.releaseId,
      request: this.state.request,
      manifest,
      policy: config.gatePolicies[section],
      waivers: [
        ...config.waivers.filter((w) => w.gate === gate.name),
        // Granted by the `waive` signal (TRUST_PATCH releases).
        ...(this.state.status.waivers ?? [])
          .filter((w) => w.gate === gate.name)
          .map(({ gate: g, ruleIds, justification, approver, expiresAt }) => ({
            gate: g,
            ruleIds,
            justification,
            approver,
            expiresAt,
          })),
      ],
      // Releases from before the plan passed whole results; they replay with them.
      earlier: this.version.planned ? this.state.earlierGates() : this.state.status.gates,
    };
    if (this.version.planned && section === 'evaluation' && dataset !== undefined) input.dataset = dataset;
    return input;
  }

  /** Judges the named gates again (a waiver was granted for them), replacing their results. */
  async rejudge(phases: { stage: GateStage; gates: GateStep[] }[], names: string[]): Promise<void> {
    const steps = phases.flatMap((p) => p.gates).filter((g) => names.includes(g.name) && g.activity !== undefined);
    const results = await Promise.all(steps.map((gate) => this.runGate(gate)));
    for (const result of results) this.state.recordGate(result, nowIso());
    this.state.refreshExtraRequirements();
    this.publish();
  }

  /**
   * Whether a phase that failed may wait for a `waive` (TRUST_PATCH releases whose policy's `waivers:` holds): every
   * failing gate failed on findings only, all of them waivable and all kept in the status.
   */
  private holdable(stage: GateStage): string[] | undefined {
    if (!this.version.trusted || !this.state.config?.waiverPolicy?.hold) return undefined;
    const failed = this.state.status.gates.filter(
      (g) => this.phaseGates(stage).includes(g.gate) && (g.verdict === 'fail' || g.verdict === 'error'),
    );
    const waivable = failed.every(
      (g) =>
        g.verdict === 'fail' &&
        g.findings.length > 0 &&
        g.metrics.findingsOmitted === undefined &&
        g.findings.every((f) => f.waivable),
    );
    return waivable && failed.length > 0 ? failed.map((g) => g.gate) : undefined;
  }

  private phaseGates(stage: GateStage): string[] {
    return (this.phases ?? []).filter((p) => p.stage === stage).flatMap((p) => p.gates.map((g) => g.name));
  }

  private phases?: { stage: GateStage; gates: GateStep[] }[];

  /**
   * A phase whose gates failed only on waivable findings waits for a `waive` (until the approval timeout); each
   * granted waiver judges its gate again. Returns why the release stops, or undefined once the phase passes.
   */
  private async holdForWaiver(
    phases: { stage: GateStage; gates: GateStep[] }[],
    stage: GateStage,
    stopped: string,
  ): Promise<string | undefined> {
    const config = this.state.config as NonNullable<typeof this.state.config>;
    const deadline = Date.now() + durationMs(config.approval.timeout);
    let reason = stopped;
    for (;;) {
      const gates = this.holdable(stage);
      if (gates === undefined) return reason;
      this.state.hold(gates, reason, new Date(deadline).toISOString(), nowIso());
      this.publish();
      const asked = await condition(() => this.state.rejudgeRequested, Math.max(0, deadline - Date.now()));
      if (!asked) {
        this.state.unhold(nowIso());
        return `${reason}; no waive within ${config.approval.timeout}`;
      }
      await this.rejudge(phases, this.state.takeRejudge());
      const failed = this.state.status.gates.find(
        (g) => this.phaseGates(stage).includes(g.gate) && (g.verdict === 'fail' || g.verdict === 'error'),
      );
      if (failed === undefined) {
        this.state.unhold(nowIso());
        this.publish();
        return undefined;
      }
      reason = `${failed.gate} ${failed.verdict}: ${failed.summary}`;
    }
  }

  /** Runs the gate phases in order; returns why the release stops when a gate failed (after telling the webhooks). */
  async gates(phases: { stage: GateStage; gates: GateStep[] }[]): Promise<string | undefined> {
    this.phases = phases;
    for (const phase of phases) {
      let stopped = await this.runPhase(phase.stage, phase.gates);
      if (stopped !== undefined && this.holdable(phase.stage) !== undefined) {
        this.gateFailureNotified = (await this.notify('gate-failed', `${stopped}; held for a waive`)) > 0;
        stopped = await this.holdForWaiver(phases, phase.stage, stopped);
      }
      if (stopped !== undefined) {
        this.gateFailureNotified = (await this.notify('gate-failed', stopped)) > 0;
        return stopped;
      }
    }
    return undefined;
  }

  /** Ends the release in `stage` and tells the webhooks (a failure they were told of as gate-failed only once). */
  async finish(stage: TerminalStage, reason?: string): Promise<ReleaseStatus> {
    this.state.end(stage, reason, nowIso());
    this.publish();
    if (stage === 'released') {
      const commit = this.state.status.commit;
      const approvals = this.state.status.approvals.map((a) => `${a.approver} (${a.role})`).join(', ');
      await this.notify('released', `committed ${commit?.sha.slice(0, 12) ?? '?'} to ${commit?.branch ?? '?'}`, [
        `approved by ${approvals}`,
      ]);
    } else if (!(stage === 'failed' && this.gateFailureNotified)) {
      await this.notify(stage, reason ?? stage);
    }
    return this.state.status;
  }

  /** Tells the environment's webhooks about `event`; returns how many were told. A failed one is recorded. */
  async notify(event: NotificationEvent, headline: string, details: string[] = []): Promise<number> {
    const { request, config } = this.state;
    const targets = this.version.notifying ? (config?.notifications ?? []).filter((t) => t.events.includes(event)) : [];
    const base = {
      event,
      releaseId: this.state.status.releaseId,
      headline: clip(headline),
      details: details.map((d) => clip(d)),
    };
    const about = { model: request.model.name, version: request.model.version, environment: request.environment };
    await Promise.all(
      targets.map(async (target) => {
        try {
          await this.notifier.notify.executeWithOptions({ ...NOTIFY, summary: `notify ${target.name}: ${event}` }, [
            { ...base, ...about, target },
          ]);
        } catch (err) {
          if (isCancellation(err)) throw err;
          this.state.recordNotificationFailure({
            target: target.name,
            event,
            error: failureMessage(err),
            at: nowIso(),
          });
          this.publish();
        }
      }),
    );
    return targets.length;
  }
}

/** The dataset to acquire, with the digest the request pins it to (when it names one). */
function datasetInput(evaluation: NonNullable<ReleaseRequest['evaluation']>): { source: string; sha256?: string } {
  const { sha256 } = evaluation;
  return sha256 === undefined ? { source: evaluation.dataset } : { source: evaluation.dataset, sha256 };
}

/** The acquire gate's verdict from what acquire returned (a ManifestRef, or a whole manifest for older releases). */
function acquireResult(
  acquired: ManifestRef | ArtifactManifest,
  dataset: PinnedArtifact | undefined,
): Omit<GateResult, 'startedAt' | 'finishedAt'> {
  const legacy = 'files' in acquired;
  const fileCount = legacy ? acquired.files.length : acquired.fileCount;
  // An empty file is never weights: worth a note (a placeholder left behind, or a truncated upload).
  const empty = legacy ? acquired.files.filter((f) => f.size === 0).map((f) => f.path) : (acquired.emptyFiles ?? []);
  const metrics: GateResult['metrics'] = {
    files: fileCount,
    bytes: acquired.totalSize,
    manifestDigest: acquired.manifestDigest,
  };
  let summary = `${fileCount} file(s), ${formatBytes(acquired.totalSize)}, manifest sha256:${acquired.manifestDigest.slice(0, 12)}… at ${acquired.resolvedRevision}`;
  if (empty.length > 0) summary += `; ${empty.length} empty file(s): ${empty.join(', ')}`;
  if (dataset !== undefined) {
    summary += `; dataset sha256:${dataset.sha256.slice(0, 12)}… (${formatBytes(dataset.size)})`;
    metrics.datasetSha256 = dataset.sha256;
  }
  return {
    gate: 'acquire',
    verdict: 'pass',
    summary,
    metrics,
    findings: empty.map((path) => ({
      gate: 'acquire',
      ruleId: 'EmptyFile',
      severity: 'info' as const,
      location: path,
      message: `${path} is empty (0 bytes): check that the upload or export finished`,
      waivable: true,
    })),
  };
}

/** A gate that threw: `fail` when the failure says the model is bad, `error` when the gate could not decide. */
function gateError(gate: string, err: unknown, location: string, startedAt: string): GateResult {
  const type = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
  const verdict = type && FAILING_TYPES.includes(type) ? 'fail' : 'error';
  return {
    gate,
    verdict,
    summary: failureMessage(err),
    metrics: {},
    findings: [
      {
        gate,
        ruleId: type ?? 'GateError',
        severity: verdict === 'fail' ? 'high' : 'medium',
        location,
        message: failureMessage(err),
        waivable: false,
      },
    ],
    startedAt,
    finishedAt: nowIso(),
  };
}

/** A schedule-to-start timeout, told by the queue nobody took the activity from. */
class StarvedFailure extends Error {
  constructor(
    readonly queue: string,
    readonly activity: string,
    readonly failure: ActivityFailure,
  ) {
    super(
      `no worker polls task queue "${queue}": ${activity} was not picked up in time; start a worker on that queue (or check that the workers' task queue settings match)`,
    );
    this.name = 'StarvedFailure';
  }
}

function starvedOn(err: unknown, queue: string): unknown {
  const starved =
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === 'SCHEDULE_TO_START';
  return starved ? new StarvedFailure(queue, err.activityType, err) : err;
}

/** No worker started the activity within its schedule-to-start timeout. */
function isStarved(err: unknown): boolean {
  return err instanceof StarvedFailure;
}

/** A failure that no retry can change: a non-retryable ApplicationFailure from the activity. */
function isPermanent(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable === true;
}

export function failureMessage(err: unknown): string {
  if (err instanceof StarvedFailure) return clip(err.message);
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    const activity = err.activityType;
    if (err.cause.timeoutType === 'HEARTBEAT') return `${activity} stopped heartbeating (its worker died or hung)`;
    return `${activity} timed out (${err.cause.timeoutType ?? 'timeout'})`;
  }
  if (err instanceof ActivityFailure && err.cause) return clip(err.cause.message);
  return clip(err instanceof Error ? err.message : String(err));
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}
