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
      lines.push(`  ${a.approver} (${a.role}) at ${a.at}${a.comment ? `: ${a.comment}` : ''}`);
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
  return lines.join('\n');
}
