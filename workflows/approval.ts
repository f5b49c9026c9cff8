/**
 * The approval policy as pure functions: who may decide, whether a decision counts, and what is still awaited.
 * Deterministic (runs inside the workflow) and unit-tested on its own.
 */
import type { ApprovalRule, Decision, ReleaseConfig, RoleRequirement } from '../contract/types';

/**
 * The approver's roles that count for this environment, in the order the policy lists them, plus roles that a
 * gate asked to review (e.g. legal for a license under review).
 */
export function eligibleRoles(approver: string, config: ReleaseConfig, extra: RoleRequirement[] = []): string[] {
  const held = config.approvers[approver] ?? [];
  const accepted = [...new Set([...config.approval.allowedRoles, ...extra.map((r) => r.role)])];
  return accepted.filter((role) => held.includes(role));
}

/**
 * Why a decision by `approver` must be refused, or undefined when it may count.
 * `open` says whether the release still takes decisions (false once it is committed or ended).
 */
export function refusalReason(
  decision: 'approve' | 'reject',
  approver: string,
  ctx: {
    config: ReleaseConfig;
    approvals: Decision[];
    extra: RoleRequirement[];
    stage: string;
    acceptsApprovals: boolean;
    open: boolean;
  },
): string | undefined {
  if (!ctx.open) return `the release is already ${ctx.stage}; decisions are no longer accepted`;
  const held = ctx.config.approvers[approver];
  if (!held) {
    return `"${approver}" is not an approver in ${ctx.config.approversFile.file}`;
  }
  if (eligibleRoles(approver, ctx.config, ctx.extra).length === 0) {
    const accepted = [...new Set([...ctx.config.approval.allowedRoles, ...ctx.extra.map((r) => r.role)])];
    return (
      `${approver} has roles [${held.join(', ')}] but ${ctx.config.approval.environment} decisions need one of ` +
      `[${accepted.join(', ')}] (policy ${ctx.config.policy.name})`
    );
  }
  if (decision === 'approve') {
    if (!ctx.acceptsApprovals) {
      return `the release is still in stage ${ctx.stage}; approvals open once every gate has passed`;
    }
    const earlier = ctx.approvals.find((a) => a.approver === approver);
    if (earlier) {
      return `${approver} already approved at ${earlier.at}; a second approval by the same person does not count`;
    }
  }
  return undefined;
}

export interface ApprovalProgress {
  satisfied: boolean;
  /** How many more distinct approvals are needed at least. */
  approvalsMissing: number;
  /** Role slots that no approval fills yet. */
  missingRoles: RoleRequirement[];
}

/**
 * Whether the approvals satisfy the rule plus any requirements that gates added (e.g. legal review).
 * Each required role slot must be filled by a distinct approver holding that role: a small bipartite matching,
 * so that an approver with two roles is never counted twice.
 */
export function approvalProgress(
  approvals: Decision[],
  rule: ApprovalRule,
  extra: RoleRequirement[] = [],
): ApprovalProgress {
  const requirements = mergeRequirements([...rule.requiredRoles, ...extra]);
  const slots: RoleRequirement[] = requirements.flatMap((r) => Array.from({ length: r.count }, () => r));
  const slotOwner: (number | undefined)[] = slots.map(() => undefined);

  const tryAssign = (approverIndex: number, seen: boolean[]): boolean => {
    const roles = (approvals[approverIndex] as Decision).roles;
    for (let s = 0; s < slots.length; s++) {
      if (seen[s] || !roles.includes((slots[s] as RoleRequirement).role)) continue;
      seen[s] = true;
      const owner = slotOwner[s];
      if (owner === undefined || tryAssign(owner, seen)) {
        slotOwner[s] = approverIndex;
        return true;
      }
    }
    return false;
  };
  approvals.forEach((_, i) =>
    tryAssign(
      i,
      slots.map(() => false),
    ),
  );

  const missing = new Map<string, RoleRequirement>();
  slots.forEach((slot, s) => {
    if (slotOwner[s] !== undefined) return;
    const entry = missing.get(slot.role) ?? { role: slot.role, count: 0, reason: slot.reason };
    entry.count += 1;
    missing.set(slot.role, entry);
  });
  const unfilled = [...missing.values()].reduce((n, r) => n + r.count, 0);
  const approvalsMissing = Math.max(rule.minApprovers - approvals.length, unfilled, 0);
  return { satisfied: approvalsMissing === 0, approvalsMissing, missingRoles: [...missing.values()] };
}

function mergeRequirements(requirements: RoleRequirement[]): RoleRequirement[] {
  const byRole = new Map<string, RoleRequirement>();
  for (const r of requirements) {
    const existing = byRole.get(r.role);
    if (!existing) byRole.set(r.role, { ...r });
    else if (r.count > existing.count) byRole.set(r.role, { ...r, reason: `${existing.reason}; ${r.reason}` });
    else existing.reason = `${existing.reason}; ${r.reason}`;
  }
  return [...byRole.values()];
}

/** Approvers whose approval would bring the release closer to satisfied right now. */
export function usefulApprovers(approvals: Decision[], config: ReleaseConfig, extra: RoleRequirement[] = []): string[] {
  const now = approvalProgress(approvals, config.approval, extra).approvalsMissing;
  if (now === 0) return [];
  return Object.keys(config.approvers)
    .filter((id) => !approvals.some((a) => a.approver === id))
    .filter((id) => {
      const roles = eligibleRoles(id, config, extra);
      if (roles.length === 0) return false;
      const hypothetical: Decision = { approver: id, role: roles[0] as string, roles, decision: 'approve', at: '' };
      return approvalProgress([...approvals, hypothetical], config.approval, extra).approvalsMissing < now;
    })
    .sort();
}

/**
 * What the UI shows as awaited: "2 approvals from [release-manager, ml-lead], including 1× release-manager; and
 * 1× legal (license llama3 needs review)". Requirements that gates added are listed with their reasons.
 */
export function describeRequirement(rule: ApprovalRule, extra: RoleRequirement[] = []): string {
  const policy = mergeRequirements(rule.requiredRoles);
  const total = Math.max(
    rule.minApprovers,
    policy.reduce((n, r) => n + r.count, 0),
  );
  let text = `${total} approval${total === 1 ? '' : 's'} from [${rule.allowedRoles.join(', ')}]`;
  if (policy.length > 0) text += `, including ${policy.map((r) => `${r.count}× ${r.role}`).join(', ')}`;
  const fromGates = mergeRequirements(extra);
  if (fromGates.length > 0) text += `; and ${fromGates.map((r) => `${r.count}× ${r.role} (${r.reason})`).join(', ')}`;
  return text;
}
