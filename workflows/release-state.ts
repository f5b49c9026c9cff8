/**
 * The state of one release and how it reads in the Temporal UI. The workflow file stays a thin table of handlers
 * over this class. Deterministic: time comes from the workflow clock, passed in as ISO strings.
 */
import {
  approvalProgress,
  describeRequirement,
  durationMs,
  eligibleRoles,
  refusalReason,
  usefulApprovers,
} from './approval';
import type {
  DecideInput,
  Decision,
  Finding,
  GateResult,
  GitOpsCommit,
  NotificationFailure,
  ReleaseConfig,
  ReleaseRequest,
  ReleaseStage,
  ReleaseStatus,
  RetryState,
  RoleRequirement,
  TerminalStage,
  Verdict,
} from '../contract/types';
import { TERMINAL_STAGES } from '../contract/types';
import {
  clip,
  MAX_APPROVER_CHARS,
  MAX_COMMENT_CHARS,
  MAX_FINDINGS_PER_GATE,
  MAX_LOCATION_CHARS,
  MAX_METRICS_PER_GATE,
  MAX_NOTIFICATION_FAILURES,
  MAX_REFUSED,
} from '../contract/limits';

const VERDICT_ICON: Record<Verdict, string> = { pass: '✅ pass', warn: '⚠️ warn', fail: '❌ fail', error: '⛔ error' };

export interface DecisionOutcome {
  accepted: boolean;
  reason?: string;
}

export class ReleaseState {
  readonly status: ReleaseStatus;
  config?: ReleaseConfig;
  /** Roles that gates asked to review (e.g. legal for a license under review), on top of the policy's. */
  readonly extraRequirements: RoleRequirement[] = [];
  private approvalOpen = false;
  private approvalDeadline?: string;
  rejection?: Decision;

  constructor(
    readonly request: ReleaseRequest,
    releaseId: string,
    private readonly gateNames: string[][],
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

  get ended(): boolean {
    return (TERMINAL_STAGES as readonly string[]).includes(this.status.stage);
  }

  /** Decisions count until the release is being committed. */
  get open(): boolean {
    return !this.ended && this.status.stage !== 'gitops' && this.rejection === undefined;
  }

  get approved(): boolean {
    return this.config !== undefined && this.approvalOpen && this.progress().satisfied;
  }

  setStage(stage: ReleaseStage, now: string): void {
    this.status.stage = stage;
    this.status.updatedAt = now;
  }

  end(stage: TerminalStage, reason: string | undefined, now: string): void {
    this.approvalOpen = false;
    delete this.status.awaiting;
    if (reason !== undefined) this.status.reason = reason;
    this.setStage(stage, now);
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

  openApproval(now: string): void {
    if (!this.config) throw new Error('approval opened before the release config was loaded');
    this.approvalOpen = true;
    this.approvalDeadline = new Date(Date.parse(now) + durationMs(this.config.approval.timeout)).toISOString();
    this.setStage('approval', now);
    this.refreshAwaiting();
  }

  setCommit(commit: GitOpsCommit, now: string): void {
    this.status.commit = commit;
    this.status.updatedAt = now;
  }

  /** Applies a decision from a signal or the decide update; refused ones are recorded with why. */
  decide(input: DecideInput, now: string): DecisionOutcome {
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
    const decision: Decision = { ...withComment(input), role: roles[0] as string, roles, at: now };
    if (input.decision === 'reject') {
      this.rejection = decision;
    } else {
      this.status.approvals.push(decision);
    }
    this.status.updatedAt = now;
    this.refreshAwaiting();
    return { accepted: true };
  }

  /** Records a decision that changes nothing, with why. */
  refuse(input: DecideInput, reason: string, now: string): DecisionOutcome {
    const refused = this.status.refused;
    refused.push({ ...withComment(input), at: now, reason: clip(reason) });
    if (refused.length > MAX_REFUSED) {
      // Keep the first ones (how it started) and the latest ones (what is happening now); count the rest.
      refused.splice(MAX_REFUSED / 2, 1);
      this.status.refusedOmitted = (this.status.refusedOmitted ?? 0) + 1;
    }
    this.status.updatedAt = now;
    return { accepted: false, reason };
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
    if (s.manifest) compact.manifest = { ...s.manifest, files: [] };
    return compact;
  }

  /** The Temporal UI's "current details": a markdown table of stages, verdicts and what is awaited from whom. */
  details(): string {
    const s = this.status;
    const rows: string[][] = [];
    for (const phase of this.gateNames) {
      for (const gate of phase) {
        const result = s.gates.find((g) => g.gate === gate);
        const running = s.stage === phase.join('+');
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
    const lines = [
      `**${escapeCell(`${s.model}@${s.version}`)} → ${escapeCell(s.environment)}** · stage **${s.stage}** · policy ${escapeCell(s.policy)}`,
      '',
      '| stage | verdict | detail |',
      '| --- | --- | --- |',
      ...rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`),
    ];
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
      parts.push(`approved by ${s.approvals.map((a) => `${a.approver} (${a.role})`).join(', ')}`);
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

/** The recorded part of a decision, bounded: refused signals arrive unvalidated and may carry anything. */
function withComment(input: DecideInput): Pick<Decision, 'approver' | 'decision' | 'comment'> {
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
