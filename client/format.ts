/** Terminal rendering of a ReleaseStatus for the CLI. */
import type { ReleaseStatus } from '../workflows/types';

export function renderStatus(s: ReleaseStatus): string {
  const lines = [
    `${s.model}@${s.version} → ${s.environment}   stage: ${s.stage}   policy: ${s.policy}`,
    `release id: ${s.releaseId}`,
  ];
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
  if (s.refused.length > 0) {
    lines.push('refused decisions:');
    for (const r of s.refused) lines.push(`  ${r.approver} (${r.decision}) at ${r.at}: ${r.reason}`);
  }
  if (s.commit) {
    lines.push(`gitops commit: ${s.commit.sha} on ${s.commit.branch} of ${s.commit.repository}`);
  }
  return lines.join('\n');
}
