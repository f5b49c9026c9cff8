/**
 * The state of one release and how it reads in the Temporal UI. The workflow file stays a thin table of handlers
 * over this class. Deterministic: time comes from the workflow clock, passed in as ISO strings.
 */
import { approvalProgress, describeRequirement, eligibleRoles, refusalReason, usefulApprovers } from './approval';
import { durationMs } from '../contract/duration';
import type { GateStage } from './plan';
import type {
  ArtifactManifest,
  DecideInput,
  Decision,
  EarlierGate,
  Finding,
  GateResult,
  GitOpsCommit,
  ManifestRef,
  NotificationFailure,
  PinnedArtifact,
  RefusedDecision,
  RolloutDecision,
  RolloutDecisionInput,
  RolloutStatus,
  ReleaseConfig,
  ReleaseRequest,
  GrantedWaiver,
  ReleaseStatus,
  RetryState,
  SignedBy,
  WaiveInput,
  RoleRequirement,
  TerminalStage,
  Verdict,
} from '../contract/types';
import { TERMINAL_STAGES } from '../contract/types';
import {
  emptyTally,
  tally,
  type Measurement,
  type MetricPhase,
  type MetricTally,
  type MonitoringResume,
  type MonitoringStatus,
  type MonitorMetric,
  type MonitorPolicy,
  type PauseAwaiting,
  type PauseDecision,
} from '../contract/monitoring';
import {
  clip,
  MAX_APPROVER_CHARS,
  MAX_COMMENT_CHARS,
  MAX_FINDINGS_PER_GATE,
  MAX_LOCATION_CHARS,
  MAX_METRICS_PER_GATE,
  MAX_NOTIFICATION_FAILURES,
  MAX_REFUSED,
  MAX_WAIVERS,
} from '../contract/limits';

const VERDICT_ICON: Record<Verdict, string> = { pass: '✅ pass', warn: '⚠️ warn', fail: '❌ fail', error: '⛔ error' };

export interface DecisionOutcome {
  accepted: boolean;
  reason?: string;
}

/**
 * Where a release is: loading its config, a gate phase (GATE_STAGES of the plan), awaiting approval, committing, or
 * ended. Only ReleaseState's transitions change it.
 */
export type Stage = 'config' | GateStage | 'approval' | 'gitops' | 'monitor' | 'monitoring' | TerminalStage;

/** A phase as the state shows it: its stage and its gates' names. */
export interface PhaseView {
  stage: GateStage;
  gates: string[];
}

export class ReleaseState {
  readonly status: ReleaseStatus;
  config?: ReleaseConfig;
  /** Roles that gates asked to review (e.g. legal for a license under review), on top of the policy's. */
  readonly extraRequirements: RoleRequirement[] = [];
  private approvalOpen = false;
  private approvalDeadline?: string;
  private current: Stage = 'config';
  private retryAsked = false;
  private rolloutChoice?: RolloutDecision;
  rejection?: Decision;
  /** The evaluation dataset as acquired with the model (RELEASE_PLAN_PATCH releases with an evaluation). */
  dataset?: PinnedArtifact;

  constructor(
    readonly request: ReleaseRequest,
    releaseId: string,
    private readonly phases: PhaseView[],
    now: string,
  ) {
    this.status = {
      releaseId,
      model: request.model.name,
      version: request.model.version,
      environment: request.environment,
      policy: request.policy,
      stage: 'config',
      gates: [],
      approvals: [],
      refused: [],
      startedAt: now,
      updatedAt: now,
    };
  }

  get stage(): Stage {
    return this.current;
  }

  get ended(): boolean {
    return (TERMINAL_STAGES as readonly string[]).includes(this.current);
  }

  /** Decisions count until the release is being committed. */
  get open(): boolean {
    return (
      !this.ended &&
      this.current !== 'gitops' &&
      this.current !== 'monitor' &&
      this.current !== 'monitoring' &&
      this.rejection === undefined
    );
  }

  /** The acquired model as the release carries it: by digest, or the whole manifest for releases from before. */
  get manifest(): ManifestRef | ArtifactManifest | undefined {
    return this.status.manifest;
  }

  get approved(): boolean {
    return this.config !== undefined && this.approvalOpen && this.progress().satisfied;
  }

  private moveTo(stage: Stage, now: string): void {
    this.current = stage;
    this.status.stage = stage;
    this.status.updatedAt = now;
  }

  /** The gates of `stage` start (in the order of the plan; a phase never comes back). */
  enterPhase(stage: GateStage, now: string): void {
    if (this.current !== 'config' && !this.phases.some((p) => p.stage === this.current))
      throw new Error(`internal: phase ${stage} entered from stage ${this.current}`);
    this.moveTo(stage, now);
  }

  /** Approved: the release is being committed to the GitOps repository. */
  startCommit(now: string): void {
    if (this.current !== 'approval') throw new Error(`internal: commit started from stage ${this.current}`);
    this.moveTo('gitops', now);
  }

  /** Committed: the release watches its rollout (DELIVERY_PATCH releases). */
  startMonitor(workload: string | undefined, now: string): void {
    if (this.current !== 'gitops') throw new Error(`internal: monitor started from stage ${this.current}`);
    this.status.rollout = { state: 'watching', watches: 0, decisions: [], ...(workload ? { workload } : {}) };
    this.moveTo('monitor', now);
  }

  /**
   * The rollout is healthy (or there is no cluster to watch): the live model is analysed for the policy's window.
   * Each metric's first measurement is due after its initialDelay.
   */
  startMonitoring(policy: MonitorPolicy, now: string): void {
    if (this.current !== 'monitor' && this.current !== 'gitops')
      throw new Error(`internal: monitoring started from stage ${this.current}`);
    const start = Date.parse(now);
    this.status.monitoring = {
      state: 'watching',
      window: policy.window,
      startedAt: now,
      endsAt: new Date(start + durationMs(policy.window)).toISOString(),
      metrics: policy.metrics.map((m) => ({
        ...emptyTally(m.name),
        nextAt: new Date(start + (m.initialDelay === undefined ? 0 : durationMs(m.initialDelay))).toISOString(),
      })),
      kept: [],
      decisions: [],
      continuedAsNew: 0,
    };
    this.moveTo('monitoring', now);
  }

  /** The monitoring window's status (it exists once startMonitoring ran). */
  get monitoring(): MonitoringStatus {
    const m = this.status.monitoring;
    if (m === undefined) throw new Error('internal: monitoring read before it started');
    return m;
  }

  /** One measurement of `metric`, tallied as Argo Rollouts does; the next one is due an interval later. */
  recordMeasurement(metric: MonitorMetric, measurement: Measurement, now: string): MetricTally {
    const m = this.monitoring;
    const index = m.metrics.findIndex((t) => t.name === metric.name);
    const before = m.metrics[index] ?? emptyTally(metric.name);
    const bounded: Measurement = {
      ...measurement,
      value: clip(measurement.value, 200),
      ...(measurement.message === undefined ? {} : { message: clip(measurement.message, 500) }),
    };
    const after = tally(metric, before, bounded);
    if (after.message !== undefined) after.message = clip(after.message, 500);
    if (after.phase === 'Running' && metric.interval !== undefined) {
      const due = Math.max(Date.parse(before.nextAt ?? now) + durationMs(metric.interval), Date.parse(now));
      after.nextAt = new Date(due).toISOString();
    } else delete after.nextAt;
    m.metrics[index < 0 ? m.metrics.length : index] = after;
    this.status.updatedAt = now;
    return after;
  }

  updateMonitoring(change: Partial<MonitoringStatus>, now: string): void {
    Object.assign(this.monitoring, change);
    this.status.updatedAt = now;
  }

  /**
   * The next run of a release that continued as new during its window: the status, config and dataset it carried,
   * in the `monitoring` stage.
   */
  static resumed(
    resume: MonitoringResume,
    request: ReleaseRequest,
    releaseId: string,
    phases: PhaseView[],
    now: string,
  ): ReleaseState {
    const state = new ReleaseState(request, releaseId, phases, now);
    Object.assign(state.status, resume.status, { updatedAt: now });
    state.config = resume.config;
    if (resume.dataset !== undefined) state.dataset = resume.dataset;
    state.current = 'monitoring';
    state.status.stage = 'monitoring';
    return state;
  }

  /** What the next run carries when the release continues as new (findings stay in the evidence in Git). */
  resumeInput(): MonitoringResume {
    const status = this.compactStatus();
    delete status.served;
    delete status.pending;
    return {
      status,
      config: this.config as ReleaseConfig,
      ...(this.dataset === undefined ? {} : { dataset: this.dataset }),
    };
  }

  /** Changes what the rollout status says (its state, the last observation, a revert). */
  updateRollout(change: Partial<RolloutStatus>, now: string): void {
    const rollout = this.status.rollout;
    if (rollout === undefined) throw new Error('internal: rollout updated before the monitor started');
    Object.assign(rollout, change);
    if (change.reason !== undefined) rollout.reason = clip(change.reason);
    this.status.updatedAt = now;
  }

  /**
   * A stalled rollout (or, with `target` monitoring, a breached window) waits for a `rollback` or `keep` from one of
   * `roles` until `deadline`.
   */
  pauseRollout(
    roles: string[],
    deadline: string,
    onTimeout: 'rollback' | 'keep',
    now: string,
    target: 'rollout' | 'monitoring' = 'rollout',
  ): void {
    const config = this.config as ReleaseConfig;
    const from = Object.entries(config.approvers)
      .filter(([, r]) => r.some((role) => roles.includes(role)))
      .map(([id]) => id)
      .sort();
    this.rolloutChoice = undefined;
    const awaiting = { roles, from, deadline, onTimeout };
    if (target === 'monitoring') this.updateMonitoring({ state: 'paused', awaiting }, now);
    else this.updateRollout({ state: 'paused', awaiting }, now);
  }

  /** What a `rollback` or `keep` decides now: the breached window or the stalled rollout that is paused, if any. */
  private pausedFor(): { awaiting: PauseAwaiting; decisions: PauseDecision[] } | undefined {
    const monitoring = this.status.monitoring;
    if (monitoring?.state === 'paused' && monitoring.awaiting !== undefined)
      return { awaiting: monitoring.awaiting, decisions: monitoring.decisions };
    const rollout = this.status.rollout;
    if (rollout?.state === 'paused' && rollout.awaiting !== undefined)
      return { awaiting: rollout.awaiting, decisions: rollout.decisions };
    return undefined;
  }

  private clearAwaiting(): void {
    if (this.status.monitoring?.state === 'paused') delete this.status.monitoring.awaiting;
    else if (this.status.rollout !== undefined) delete this.status.rollout.awaiting;
  }

  /** The decision that ended the current pause, if any. */
  get rolloutDecision(): RolloutDecision | undefined {
    return this.rolloutChoice;
  }

  /** Why a `rollback` or `keep` cannot count now (nothing paused, or a role the pause does not await). */
  rolloutRefusal(input: Pick<RolloutDecisionInput, 'approver'>, decision: 'rollback' | 'keep'): string | undefined {
    const paused = this.pausedFor();
    if (paused === undefined)
      return `a ${decision} counts only while a stalled rollout or a breached monitoring window waits for people; the release is in stage ${this.current}`;
    const { awaiting } = paused;
    const roles = (this.config?.approvers[input.approver] ?? []).filter((r) => awaiting.roles.includes(r));
    if (roles.length === 0)
      return `${clip(input.approver, MAX_APPROVER_CHARS)} holds none of the roles that decide a stalled rollout (${awaiting.roles.join(', ')})`;
    return undefined;
  }

  /**
   * A `rollback` or `keep`: counted when the release is paused and the approver holds an awaited role, with its proof
   * (signature or unsigned, TRUST_PAUSES_PATCH releases); otherwise, or with `refusal`, recorded as refused with why.
   */
  decideRollout(
    input: RolloutDecisionInput,
    decision: 'rollback' | 'keep',
    now: string,
    refusal?: string,
    proof?: { signed: SignedBy } | { unsigned: true },
  ): DecisionOutcome {
    const refuse = (reason: string) =>
      this.recordRefused({ ...withComment({ ...input, decision }), at: now, reason }, now);
    const why = refusal ?? this.rolloutRefusal(input, decision);
    const paused = this.pausedFor();
    if (why !== undefined || paused === undefined) return refuse(why ?? 'nothing is paused');
    const roles = (this.config?.approvers[input.approver] ?? []).filter((r) => paused.awaiting.roles.includes(r));
    const made: RolloutDecision = {
      approver: clip(input.approver, MAX_APPROVER_CHARS),
      role: roles[0] as string,
      decision,
      at: now,
      ...(input.comment === undefined ? {} : { comment: clip(input.comment, MAX_COMMENT_CHARS) }),
      ...proof,
    };
    this.rolloutChoice = made;
    paused.decisions.push(made);
    this.clearAwaiting();
    this.status.updatedAt = now;
    return { accepted: true };
  }

  end(stage: TerminalStage, reason: string | undefined, now: string): void {
    this.clearRetrying(now);
    this.approvalOpen = false;
    delete this.status.awaiting;
    if (reason !== undefined) this.status.reason = reason;
    this.moveTo(stage, now);
  }

  /** What acquire returned: a ManifestRef, or for releases from before, the whole ArtifactManifest. */
  recordManifest(manifest: ManifestRef | ArtifactManifest): void {
    this.status.manifest = manifest;
  }

  /** Gates that ran so far as a later gate may read them: verdicts and typed outputs, no findings or metrics. */
  earlierGates(): EarlierGate[] {
    return this.status.gates.map(({ gate, verdict, throughput, deployment }) => {
      const earlier: EarlierGate = { gate, verdict };
      if (throughput !== undefined) earlier.throughput = throughput;
      if (deployment !== undefined) earlier.deployment = deployment;
      return earlier;
    });
  }

  recordGate(result: GateResult, now: string): void {
    const bounded = boundedGateResult(result);
    this.status.gates = [...this.status.gates.filter((g) => g.gate !== result.gate), bounded];
    this.status.updatedAt = now;
  }

  /** A step failed and is retried (`nextRetryAt`) or waits for a `retry` signal (`waitingFor`). */
  setRetrying(retry: RetryState, now: string): void {
    this.status.retrying = { ...retry, lastFailure: clip(retry.lastFailure) };
    this.status.updatedAt = now;
  }

  /** A notification that failed after its retries: the latest MAX_NOTIFICATION_FAILURES are kept. */
  recordNotificationFailure(failure: NotificationFailure): void {
    const kept = [...(this.status.notificationFailures ?? []), { ...failure, error: clip(failure.error) }];
    this.status.notificationFailures = kept.slice(-MAX_NOTIFICATION_FAILURES);
    this.status.updatedAt = failure.at;
  }

  clearRetrying(now: string): void {
    if (this.status.retrying === undefined) return;
    delete this.status.retrying;
    this.status.updatedAt = now;
  }

  /** A `retry` signal: it counts only while the release waits for one (its status shows `retrying.waitingFor`). */
  requestRetry(): boolean {
    if (this.status.retrying?.waitingFor === undefined) return false;
    this.retryAsked = true;
    return true;
  }

  /** Whether a retry was asked for since awaitRetry. */
  get retryRequested(): boolean {
    return this.retryAsked;
  }

  /** Starts a wait for a new `retry` signal. */
  awaitRetry(): void {
    this.retryAsked = false;
  }

  openApproval(now: string): void {
    if (!this.config) throw new Error('approval opened before the release config was loaded');
    this.approvalOpen = true;
    this.approvalDeadline = new Date(Date.parse(now) + durationMs(this.config.approval.timeout)).toISOString();
    this.moveTo('approval', now);
    this.refreshAwaiting();
  }

  setCommit(commit: GitOpsCommit, now: string): void {
    this.status.commit = commit;
    this.status.updatedAt = now;
  }

  /** Applies a decision from a signal or the decide update; refused ones are recorded with why. */
  /**
   * `proof` (TRUST_PATCH releases): the verified signature the decision carried, or that it counts unsigned where the
   * policy allows; recorded on the decision and in the evidence.
   */
  decide(input: DecideInput, now: string, proof?: { signed: SignedBy } | { unsigned: true }): DecisionOutcome {
    const reason = this.config
      ? refusalReason(input.decision, input.approver, {
          config: this.config,
          approvals: this.status.approvals,
          extra: this.extraRequirements,
          stage: this.status.stage,
          acceptsApprovals: this.approvalOpen,
          open: this.open,
        })
      : `the release is still in stage ${this.status.stage}; its policy is not loaded yet`;
    if (reason !== undefined) return this.refuse(input, reason, now);
    const config = this.config as ReleaseConfig;
    const roles = eligibleRoles(input.approver, config, this.extraRequirements);
    const decision: Decision = { ...withComment(input), role: roles[0] as string, roles, at: now, ...proof };
    if (input.decision === 'reject') {
      this.rejection = decision;
    } else {
      this.status.approvals.push(decision);
    }
    this.status.updatedAt = now;
    this.refreshAwaiting();
    return { accepted: true };
  }

  private rejudge = new Set<string>();

  /** Gates a granted waiver asks to judge again. */
  get rejudgeRequested(): boolean {
    return this.rejudge.size > 0;
  }

  /** The gates to judge again, once: the set is emptied. */
  takeRejudge(): string[] {
    const gates = [...this.rejudge].sort();
    this.rejudge.clear();
    return gates;
  }

  /** Gates failed only on waivable findings: the release waits for a `waive` until `until`. */
  hold(gates: string[], reason: string, until: string, now: string): void {
    this.status.held = { gates, reason: clip(reason), until };
    this.status.updatedAt = now;
  }

  unhold(now: string): void {
    delete this.status.held;
    this.status.updatedAt = now;
  }

  /** Why a `waive` cannot count now (stage, policy, gate, role, expiry); undefined when it may. */
  waiveRefusal(input: WaiveInput, now: string): string | undefined {
    const policy = this.config?.waiverPolicy;
    if (this.config === undefined || policy === undefined)
      return `policy ${this.request.policy} has no waivers: section, so the waive signal counts nowhere; accepted risks go in config/waivers.yaml`;
    if (this.status.held === undefined && !(this.approvalOpen && this.current === 'approval'))
      return `a waive counts while the release awaits approval or waits at a failed gate; it is in stage ${this.current}`;
    if ((this.status.waivers?.length ?? 0) >= MAX_WAIVERS)
      return `the release already holds ${MAX_WAIVERS} waivers, the most one release may; put lasting accepted risks in config/waivers.yaml`;
    if (!this.status.gates.some((g) => g.gate === input.gate))
      return `gate ${clip(input.gate, 32)} has not run in this release (ran: ${this.status.gates.map((g) => g.gate).join(', ')})`;
    const allowed = policy.roles[input.gate] ?? policy.roles['*'] ?? [];
    const roles = (this.config.approvers[input.approver] ?? []).filter((r) => allowed.includes(r));
    if (roles.length === 0)
      return `${clip(input.approver, MAX_APPROVER_CHARS)} holds none of the roles that may waive ${input.gate} findings (${allowed.join(', ')})`;
    const expires = Date.parse(input.expiresAt);
    const latest = Date.parse(now) + policy.maxDays * 86_400_000;
    if (!(expires > Date.parse(now))) return `expiresAt ${input.expiresAt} is not in the future`;
    if (expires > latest)
      return `expiresAt ${input.expiresAt} is later than the policy's maximum of ${policy.maxDays} days (${new Date(latest).toISOString()})`;
    return undefined;
  }

  /** A waive that counts: recorded (with its signature or as unsigned), and its gate judged again. */
  grantWaiver(input: WaiveInput, proof: { signed: SignedBy } | { unsigned: true }, now: string): void {
    const policy = this.config?.waiverPolicy;
    const allowed = policy?.roles[input.gate] ?? policy?.roles['*'] ?? [];
    const role = (this.config?.approvers[input.approver] ?? []).find((r) => allowed.includes(r)) as string;
    const granted: GrantedWaiver = {
      gate: input.gate,
      ruleIds: input.ruleIds.map((r) => clip(r, 128)),
      justification: clip(input.justification, MAX_COMMENT_CHARS),
      approver: clip(input.approver, MAX_APPROVER_CHARS),
      expiresAt: input.expiresAt,
      role,
      at: now,
      ...(input.comment === undefined ? {} : { comment: clip(input.comment, MAX_COMMENT_CHARS) }),
      ...proof,
    };
    this.status.waivers = [...(this.status.waivers ?? []), granted];
    this.rejudge.add(input.gate);
    this.status.updatedAt = now;
  }

  /** A waive that does not count, recorded with why. */
  refuseWaive(input: { approver: string; gate?: string; ruleIds?: string[] }, reason: string, now: string): void {
    const what = input.gate
      ? `${clip(input.gate, 32)}: ${(input.ruleIds ?? []).map((r) => clip(r, 64)).join(', ')}`
      : undefined;
    this.recordRefused(
      {
        approver: clip(input.approver, MAX_APPROVER_CHARS),
        decision: 'waive',
        ...(what ? { comment: what } : {}),
        at: now,
        reason: clip(reason),
      },
      now,
    );
  }

  /** The roles a later gate asked for, as the current gate results say (after a gate was judged again). */
  refreshExtraRequirements(): void {
    this.extraRequirements.splice(
      0,
      this.extraRequirements.length,
      ...this.status.gates.flatMap((g) => g.requiredApprovals ?? []),
    );
    this.refreshAwaiting();
  }

  /** Digests of the signed payloads already counted: the same signed decision never counts twice. */
  signedPayloads(): string[] {
    const counted: { signed?: SignedBy }[] = [
      ...this.status.approvals,
      ...(this.rejection ? [this.rejection] : []),
      ...(this.status.waivers ?? []),
      ...(this.status.rollout?.decisions ?? []),
      ...(this.status.monitoring?.decisions ?? []),
    ];
    return counted.flatMap((d) => (d.signed ? [d.signed.payloadDigest] : []));
  }

  /** Records a decision that changes nothing, with why. */
  refuse(input: DecideInput, reason: string, now: string): DecisionOutcome {
    return this.recordRefused({ ...withComment(input), at: now, reason }, now);
  }

  private recordRefused(decision: RefusedDecision, now: string): DecisionOutcome {
    const { reason } = decision;
    const refused = this.status.refused;
    refused.push({ ...decision, reason: clip(reason) });
    if (refused.length > MAX_REFUSED) {
      // Keep the first ones (how it started) and the latest ones (what is happening now); count the rest.
      refused.splice(MAX_REFUSED / 2, 1);
      this.status.refusedOmitted = (this.status.refusedOmitted ?? 0) + 1;
    }
    this.status.updatedAt = now;
    return { accepted: false, reason };
  }

  /** Why the release ended as rejected, in the rejecter's words. */
  rejectedReason(): string {
    const r = this.rejection;
    return r ? `rejected by ${r.approver} (${r.role}): ${r.comment ?? 'no reason given'}` : 'rejected';
  }

  progress() {
    return approvalProgress(this.status.approvals, (this.config as ReleaseConfig).approval, this.extraRequirements);
  }

  private refreshAwaiting(): void {
    if (!this.config || !this.approvalOpen) return;
    const progress = this.progress();
    if (progress.satisfied) {
      delete this.status.awaiting;
      return;
    }
    this.status.awaiting = {
      description: describeRequirement(this.config.approval, this.extraRequirements),
      from: usefulApprovers(this.status.approvals, this.config, this.extraRequirements),
      missingRoles: progress.missingRoles,
      approvalsMissing: progress.approvalsMissing,
      deadline: this.approvalDeadline as string,
    };
  }

  /**
   * The status without the per-file manifest and the findings (counted instead): small enough to keep on the server
   * as the release's memo after every change, for readers when no worker can answer the status query.
   */
  compactStatus(): ReleaseStatus {
    const s = this.status;
    const compact: ReleaseStatus = {
      ...s,
      gates: s.gates.map((g) => ({ ...g, findings: [], metrics: { ...g.metrics, findings: g.findings.length } })),
    };
    if (s.manifest && 'files' in s.manifest) compact.manifest = { ...s.manifest, files: [] };
    return compact;
  }

  /** The Temporal UI's "current details": a markdown table of stages, verdicts and what is awaited from whom. */
  details(): string {
    const s = this.status;
    const rows: string[][] = [];
    for (const phase of this.phases) {
      for (const gate of phase.gates) {
        const result = s.gates.find((g) => g.gate === gate);
        const running = this.current === phase.stage;
        rows.push([
          gate,
          result ? VERDICT_ICON[result.verdict] : running ? '⏳ running' : this.ended ? '· not run' : '· pending',
          result?.summary ?? '',
        ]);
      }
    }
    rows.push(['approval', this.approvalCell(), this.approvalDetail()]);
    rows.push([
      'gitops',
      s.commit ? '✅ committed' : s.stage === 'gitops' ? '⏳ committing' : this.ended ? '· not run' : '· pending',
      s.commit ? `${s.commit.sha.slice(0, 12)} on ${s.commit.branch}` : '',
    ]);
    if (s.held)
      rows.push([
        'waiver',
        '⏸️ held',
        `${s.held.reason}; awaits a waive of ${s.held.gates.join(', ')} until ${s.held.until}`,
      ]);
    for (const w of s.waivers ?? [])
      rows.push([
        `waiver ${w.gate}`,
        '✅ granted',
        `${w.ruleIds.join(', ')} by ${w.approver} (${w.role})${w.signed ? ` signed ${w.signed.fingerprint}` : ' unsigned'} until ${w.expiresAt}: ${w.justification}`,
      ]);
    if (s.rollout) rows.push(['monitor', ROLLOUT_ICON[s.rollout.state], rolloutDetail(s.rollout)]);
    if (s.monitoring) rows.push(['monitoring', MONITORING_ICON[s.monitoring.state], monitoringDetail(s.monitoring)]);
    const lines = [
      `**${escapeCell(`${s.model}@${s.version}`)} → ${escapeCell(s.environment)}** · stage **${s.stage}** · policy ${escapeCell(s.policy)}`,
      '',
      '| stage | verdict | detail |',
      '| --- | --- | --- |',
      ...rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`),
    ];
    if (s.monitoring && s.monitoring.metrics.length > 0) {
      lines.push(
        '',
        `**Monitoring window** ${escapeCell(s.monitoring.window)} · ${s.monitoring.startedAt} → ${s.monitoring.endsAt}`,
        '',
        '| metric | phase | last value | successful | failed | inconclusive | error | next |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        ...s.monitoring.metrics.map(
          (t) =>
            `| ${[
              t.name,
              `${PHASE_ICON[t.phase]}${s.monitoring?.kept.includes(t.name) ? ' (kept)' : ''}`,
              t.last?.value ?? '',
              String(t.successful),
              String(t.failed),
              String(t.inconclusive),
              String(t.error),
              t.nextAt ?? '',
            ]
              .map(escapeCell)
              .join(' | ')} |`,
        ),
      );
    }
    if (s.reason) lines.push('', `**Outcome:** ${s.stage}: ${escapeCell(s.reason)}`);
    if (s.retrying) {
      const r = s.retrying;
      const next = r.nextRetryAt ? `next try at ${r.nextRetryAt}` : `waiting for ${r.waitingFor ?? 'a retry signal'}`;
      lines.push(
        '',
        `**Retrying ${escapeCell(r.step)}** · attempt ${r.attempt} failed at ${r.failedAt}: ${escapeCell(r.lastFailure)} · ${escapeCell(next)}`,
      );
    }
    if (s.notificationFailures?.length) {
      lines.push('', '**Notifications not delivered**', '');
      for (const n of s.notificationFailures)
        lines.push(`- ${escapeCell(`${n.target} (${n.event}) at ${n.at}: ${n.error}`)}`);
    }
    if (s.refused.length > 0) {
      lines.push('', '**Refused decisions**', '');
      for (const r of s.refused) lines.push(`- ${escapeCell(`${r.approver} (${r.decision}) at ${r.at}: ${r.reason}`)}`);
      if (s.refusedOmitted) lines.push(`- … and ${s.refusedOmitted} more, not kept`);
    }
    return lines.join('\n');
  }

  private approvalCell(): string {
    const s = this.status;
    if (this.rejection) return '❌ rejected';
    if (s.approvals.length > 0 && this.config && this.progress().satisfied) return '✅ approved';
    if (s.stage === 'approval') return '⏳ awaiting';
    if (s.stage === 'expired') return '⛔ expired';
    return this.ended ? '· not run' : '· pending';
  }

  private approvalDetail(): string {
    const s = this.status;
    const parts: string[] = [];
    if (s.approvals.length > 0)
      parts.push(`approved by ${s.approvals.map((a) => `${a.approver} (${a.role})${signedNote(a)}`).join(', ')}`);
    if (this.rejection)
      parts.push(`rejected by ${this.rejection.approver}: ${this.rejection.comment ?? 'no reason given'}`);
    if (s.awaiting) {
      const who = s.awaiting.from.length > 0 ? s.awaiting.from.join(', ') : 'nobody in approvers.yaml can';
      parts.push(
        `awaiting ${s.awaiting.approvalsMissing} more (needs ${s.awaiting.description}) from: ${who}; until ${s.awaiting.deadline}`,
      );
    }
    return parts.join('; ');
  }
}

const ROLLOUT_ICON: Record<RolloutStatus['state'], string> = {
  watching: '⏳ watching',
  paused: '⏸️ paused',
  'rolling-back': '↩️ rolling back',
  healthy: '✅ healthy',
  stalled: '❌ stalled',
  'rolled-back': '↩️ rolled back',
  'no-cluster': '· no cluster',
};

const MONITORING_ICON: Record<MonitoringStatus['state'], string> = {
  watching: '⏳ watching',
  paused: '⏸️ paused',
  passed: '✅ passed',
  'rolling-back': '↩️ rolling back',
  'rolled-back': '↩️ rolled back',
  recorded: '❌ breached (recorded)',
};

const PHASE_ICON: Record<MetricPhase, string> = {
  Running: '⏳ Running',
  Successful: '✅ Successful',
  Failed: '❌ Failed',
  Inconclusive: '❔ Inconclusive',
  Error: '⛔ Error',
};

/** The monitoring row's detail: the window, the breach, the pause, the decisions, the revert and the evidence. */
function monitoringDetail(m: MonitoringStatus): string {
  const parts: string[] = [`window ${m.window} until ${m.endsAt}`];
  if (m.breach) parts.push(`breach: ${m.breach.metric} ${m.breach.phase}: ${m.breach.message}`);
  if (m.awaiting)
    parts.push(
      `awaiting rollback or keep from: ${m.awaiting.from.join(', ') || `nobody with ${m.awaiting.roles.join('/')}`}; until ${m.awaiting.deadline}, then ${m.awaiting.onTimeout}`,
    );
  for (const d of m.decisions)
    parts.push(`${d.decision} by ${d.approver} (${d.role})${signedMark(d)}${d.comment ? `: ${d.comment}` : ''}`);
  if (m.revert) parts.push(`reverted in ${m.revert.sha.slice(0, 12)} (${m.revert.decidedBy})`);
  if (m.rollbackOutcome) parts.push(`rollback: ${m.rollbackOutcome}`);
  if (m.evidence) parts.push(`evidence ${m.evidence.path} in ${m.evidence.commit.slice(0, 12)}`);
  if (m.continuedAsNew > 0) parts.push(`continued as new ${m.continuedAsNew}×`);
  return parts.join('; ');
}

/** A pause decision's proof for the details: the key's fingerprint, or unsigned (TRUST_PAUSES_PATCH releases). */
function signedMark(d: PauseDecision): string {
  if (d.signed) return ` signed ${d.signed.fingerprint}`;
  return d.unsigned ? ' unsigned' : '';
}

/** The monitor row's detail: the workload, replicas, the reason, the pause and the revert. */
function rolloutDetail(r: RolloutStatus): string {
  const parts: string[] = [];
  if (r.workload) parts.push(r.workload);
  if (r.replicas) parts.push(`${r.replicas.ready}/${r.replicas.desired} ready, ${r.replicas.updated} updated`);
  if (r.appliedRevision) parts.push(`applied ${r.appliedRevision}`);
  if (r.reason) parts.push(r.reason);
  if (r.awaiting)
    parts.push(
      `awaiting rollback or keep from: ${r.awaiting.from.join(', ') || `nobody with ${r.awaiting.roles.join('/')}`}; until ${r.awaiting.deadline}, then ${r.awaiting.onTimeout}`,
    );
  for (const d of r.decisions)
    parts.push(`${d.decision} by ${d.approver} (${d.role})${signedMark(d)}${d.comment ? `: ${d.comment}` : ''}`);
  if (r.revert) parts.push(`reverted in ${r.revert.sha.slice(0, 12)} (${r.revert.decidedBy})`);
  if (r.rollbackOutcome) parts.push(`rollback: ${r.rollbackOutcome}`);
  return parts.join('; ');
}

/** How a decision was made: signed with which key, or unsigned (nothing for releases from before signatures). */
function signedNote(d: Decision): string {
  if (d.signed) return ` signed ${d.signed.keyType} ${d.signed.fingerprint}`;
  return d.unsigned ? ' unsigned' : '';
}

/** The recorded part of a decision, bounded: refused signals arrive unvalidated and may carry anything. */
function withComment<D extends RefusedDecision['decision']>(input: {
  approver: string;
  decision: D;
  comment?: string;
}): { approver: string; decision: D; comment?: string } {
  const approver = clip(input.approver, MAX_APPROVER_CHARS);
  return input.comment === undefined
    ? { approver, decision: input.decision }
    : { approver, decision: input.decision, comment: clip(input.comment, MAX_COMMENT_CHARS) };
}

/** A gate result as the status keeps it: texts clipped, findings and metrics capped (the evidence keeps all). */
function boundedGateResult(result: GateResult): GateResult {
  const findings = result.findings.slice(0, MAX_FINDINGS_PER_GATE).map(boundedFinding);
  const metricEntries = Object.entries(result.metrics).slice(0, MAX_METRICS_PER_GATE);
  const bounded: GateResult = {
    ...result,
    summary: clip(result.summary),
    findings,
    metrics: Object.fromEntries(metricEntries.map(([k, v]) => [clip(k, 64), typeof v === 'string' ? clip(v, 256) : v])),
  };
  if (result.findings.length > findings.length) {
    bounded.metrics.findingsOmitted = result.findings.length - findings.length;
  }
  return bounded;
}

function boundedFinding(finding: Finding): Finding {
  return {
    ...finding,
    ruleId: clip(finding.ruleId, 128),
    location: clip(finding.location, MAX_LOCATION_CHARS),
    message: clip(finding.message),
  };
}

/** Keeps user-provided text (comments, reasons) from breaking the table or turning into markdown links. */
function escapeCell(text: string): string {
  // `$` too: the Temporal UI reads `$…$` as math (a cost of $73.54/month … $0.00 would turn into a formula).
  return text.replace(/([\\|[\]*_`<>$])/g, '\\$1').replace(/\n/g, ' ');
}
