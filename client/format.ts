/** Terminal rendering of a ReleaseStatus for the CLI. */
import type { ReleaseStatus } from '../contract/types';

export function renderStatus(s: ReleaseStatus): string {
  const lines = [
    `${s.model}@${s.version} → ${s.environment}   stage: ${s.stage}   policy: ${s.policy}`,
    `release id: ${s.releaseId}`,
  ];
  if (s.served) lines.push(`note: ${s.served.reason}`);
  if (s.reason) lines.push(`reason: ${s.reason}`);
  if (s.gates.length > 0) {
    lines.push('gates:');
    for (const g of s.gates) lines.push(`  ${g.gate.padEnd(10)} ${g.verdict.padEnd(6)} ${g.summary}`);
  }
  if (s.approvals.length > 0) {
    lines.push('approvals:');
    for (const a of s.approvals)
      lines.push(`  ${a.approver} (${a.role}) at ${a.at}${proof(a)}${a.comment ? `: ${a.comment}` : ''}`);
  }
  if (s.held) {
    lines.push(`held: ${s.held.reason}; awaits a waive of ${s.held.gates.join(', ')} until ${s.held.until}`);
  }
  if (s.waivers?.length) {
    lines.push('waivers:');
    for (const w of s.waivers) {
      lines.push(
        `  ${w.gate}: ${w.ruleIds.join(', ')} by ${w.approver} (${w.role}) at ${w.at}${proof(w)}, until ${w.expiresAt}: ${w.justification}`,
      );
    }
  }
  if (s.awaiting) {
    lines.push(
      `awaiting: ${s.awaiting.approvalsMissing} more approval(s); needs ${s.awaiting.description}`,
      `  from: ${s.awaiting.from.join(', ') || '(nobody in approvers.yaml can give it)'}`,
      `  deadline: ${s.awaiting.deadline}`,
    );
  }
  if (s.retrying) {
    const r = s.retrying;
    lines.push(
      `retrying ${r.step}: attempt ${r.attempt} failed at ${r.failedAt}: ${r.lastFailure}`,
      r.nextRetryAt ? `  next try: ${r.nextRetryAt}` : `  waiting for: ${r.waitingFor ?? 'a retry signal'}`,
    );
  }
  for (const p of s.pending ?? []) {
    if (p.attempt <= 1 && !p.lastFailure) continue;
    lines.push(
      `activity ${p.activity}: ${p.state}, attempt ${p.attempt}${p.lastFailure ? `, last failure: ${p.lastFailure}` : ''}${p.nextRetryAt ? `, next retry ${p.nextRetryAt}` : ''}`,
    );
  }
  for (const n of s.notificationFailures ?? []) {
    lines.push(`notification not delivered: ${n.target} (${n.event}) at ${n.at}: ${n.error}`);
  }
  if (s.refused.length > 0) {
    lines.push('refused decisions:');
    for (const r of s.refused) lines.push(`  ${r.approver} (${r.decision}) at ${r.at}: ${r.reason}`);
    if (s.refusedOmitted) lines.push(`  … and ${s.refusedOmitted} more, not kept`);
  }
  if (s.commit) {
    lines.push(`gitops commit: ${s.commit.sha} on ${s.commit.branch} of ${s.commit.repository}`);
  }
  if (s.rollout) lines.push(...renderRollout(s));
  if (s.monitoring) lines.push(...renderMonitoring(s));
  return lines.join('\n');
}

/** How a decision was proven: the signing key's fingerprint, or that it was counted unsigned. */
function proof(d: { signed?: { fingerprint: string }; unsigned?: true }): string {
  if (d.signed) return `, signed ${d.signed.fingerprint}`;
  return d.unsigned ? ', unsigned' : '';
}

/** The monitoring window: one line per metric (phase, last value, tallies, next measurement), the breach, decisions. */
function renderMonitoring(s: ReleaseStatus): string[] {
  const m = s.monitoring;
  if (!m) return [];
  const lines = [`monitoring: ${m.state}, window ${m.window} from ${m.startedAt} until ${m.endsAt}`];
  const width = Math.max(6, ...m.metrics.map((t) => t.name.length));
  lines.push(`  ${'metric'.padEnd(width)}  ${'phase'.padEnd(12)}  ok  fail  inc  err  last value`);
  for (const t of m.metrics) {
    const phase = `${t.phase}${m.kept.includes(t.name) ? '*' : ''}`;
    const counts = `${String(t.successful).padStart(2)}  ${String(t.failed).padStart(4)}  ${String(t.inconclusive).padStart(3)}  ${String(t.error).padStart(3)}`;
    lines.push(
      `  ${t.name.padEnd(width)}  ${phase.padEnd(12)}  ${counts}  ${t.last?.value ?? '-'}${t.nextAt ? `   (next ${t.nextAt})` : ''}`,
    );
    if (t.message && t.phase !== 'Running' && t.phase !== 'Successful') lines.push(`    ${t.message}`);
  }
  if (m.kept.length > 0) lines.push(`  * kept by people after a breach: ${m.kept.join(', ')}`);
  if (m.breach) lines.push(`  breach: ${m.breach.metric} ${m.breach.phase} at ${m.breach.at}: ${m.breach.message}`);
  if (m.awaiting) {
    lines.push(
      `  awaiting: rollback or keep from ${m.awaiting.from.join(', ') || `(nobody with ${m.awaiting.roles.join('/')})`}`,
      `  deadline: ${m.awaiting.deadline}, then ${m.awaiting.onTimeout}`,
    );
  }
  for (const d of m.decisions)
    lines.push(
      `  ${d.decision} by ${d.approver} (${d.role}) at ${d.at}${proof(d)}${d.comment ? `: ${d.comment}` : ''}`,
    );
  if (m.revert) lines.push(`  reverted in ${m.revert.sha} (decided by ${m.revert.decidedBy})`);
  if (m.rollbackOutcome) lines.push(`  rollback's rollout: ${m.rollbackOutcome}`);
  if (m.evidence) lines.push(`  evidence: ${m.evidence.path} in ${m.evidence.commit}`);
  if (m.continuedAsNew > 0) lines.push(`  continued as new ${m.continuedAsNew} time(s)`);
  return lines;
}

/** The monitor's view: what is watched, its progress (the watch's heartbeat while it runs), pauses and rollbacks. */
function renderRollout(s: ReleaseStatus): string[] {
  const r = s.rollout;
  if (!r) return [];
  const lines = [
    `rollout: ${r.state}${r.workload ? ` (${r.workload})` : ''}${r.watches > 1 ? `, watch ${r.watches}` : ''}`,
  ];
  const watching = (s.pending ?? []).find((p) => p.activity === 'watchRollout');
  const progress = watching?.progress as
    | {
        phase?: string;
        message?: string;
        replicas?: { desired: number; updated: number; ready: number; available: number };
      }
    | undefined;
  const replicas = progress?.replicas ?? r.replicas;
  if (replicas)
    lines.push(
      `  replicas: ${replicas.ready}/${replicas.desired} ready, ${replicas.updated} updated, ${replicas.available} available`,
    );
  if (progress?.message) lines.push(`  now: ${progress.phase ?? ''} ${progress.message}`.trimEnd());
  if (r.appliedRevision) lines.push(`  applied: ${r.appliedRevision}`);
  if (r.reason) lines.push(`  ${r.reason}`);
  if (r.awaiting) {
    lines.push(
      `  awaiting: rollback or keep from ${r.awaiting.from.join(', ') || `(nobody with ${r.awaiting.roles.join('/')})`}`,
      `  deadline: ${r.awaiting.deadline}, then ${r.awaiting.onTimeout}`,
    );
  }
  for (const d of r.decisions)
    lines.push(
      `  ${d.decision} by ${d.approver} (${d.role}) at ${d.at}${proof(d)}${d.comment ? `: ${d.comment}` : ''}`,
    );
  if (r.revert) lines.push(`  reverted in ${r.revert.sha} (decided by ${r.revert.decidedBy})`);
  if (r.rollbackOutcome) lines.push(`  rollback's rollout: ${r.rollbackOutcome}`);
  return lines;
}
