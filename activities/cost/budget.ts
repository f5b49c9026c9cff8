/**
 * The budget gate: a release's monthly cost against the budgets of its team and cost center. Under the soft limit
 * passes; between soft and hard warns and asks the review role (e.g. finops) for an approval; over hard fails.
 * Every budget that applies is checked and the strictest outcome wins. Pure.
 */
import type { BudgetLimit, CostPolicy } from './policy';
import type { RoleRequirement } from '../../contract/types';

export interface BudgetCheck {
  /** `team nlp`, `cost center cc-1234` or `default budget`. */
  scope: string;
  soft: number;
  hard: number;
  verdict: 'pass' | 'warn' | 'fail';
  reason: string;
  requiredApproval?: RoleRequirement;
}

export interface BudgetOutcome {
  verdict: 'pass' | 'warn' | 'fail';
  checks: BudgetCheck[];
  requiredApprovals: RoleRequirement[];
  /** One sentence for the summary. */
  reason: string;
}

const RANK = { pass: 0, warn: 1, fail: 2 } as const;

/** One budget: monthly ≤ soft → pass; soft < monthly ≤ hard → warn with the review role; > hard → fail. */
export function budgetVerdict(monthly: number, limit: BudgetLimit, reviewRole: string, scope: string): BudgetCheck {
  const base = { scope, soft: limit.soft, hard: limit.hard };
  const cost = usd(monthly);
  if (monthly > limit.hard) {
    return {
      ...base,
      verdict: 'fail',
      reason: `${cost}/month exceeds the hard limit of ${usd(limit.hard)} for ${scope}`,
    };
  }
  if (monthly > limit.soft) {
    const reason = `${cost}/month exceeds the soft limit of ${usd(limit.soft)} for ${scope} (hard ${usd(limit.hard)})`;
    const role = limit.reviewRole ?? reviewRole;
    return { ...base, verdict: 'warn', reason, requiredApproval: { role, count: 1, reason: `cost: ${reason}` } };
  }
  return {
    ...base,
    verdict: 'pass',
    reason: `${cost}/month is within the soft limit of ${usd(limit.soft)} for ${scope}`,
  };
}

/** Checks every budget that applies to the release's team and cost center (or the default budget). */
export function evaluateBudgets(
  monthly: number,
  owner: { team?: string; costCenter?: string },
  policy: Pick<CostPolicy, 'budgets' | 'reviewRole' | 'unbudgeted'>,
): BudgetOutcome {
  const { teams, costCenters, default: fallback } = policy.budgets;
  const checks: BudgetCheck[] = [];
  if (owner.team !== undefined && Object.hasOwn(teams, owner.team)) {
    checks.push(budgetVerdict(monthly, teams[owner.team] as BudgetLimit, policy.reviewRole, `team ${owner.team}`));
  }
  if (owner.costCenter !== undefined && Object.hasOwn(costCenters, owner.costCenter)) {
    checks.push(
      budgetVerdict(
        monthly,
        costCenters[owner.costCenter] as BudgetLimit,
        policy.reviewRole,
        `cost center ${owner.costCenter}`,
      ),
    );
  }
  if (checks.length === 0 && fallback)
    checks.push(budgetVerdict(monthly, fallback, policy.reviewRole, 'the default budget'));
  if (checks.length === 0) {
    const who = [owner.team && `team ${owner.team}`, owner.costCenter && `cost center ${owner.costCenter}`]
      .filter(Boolean)
      .join(' / ');
    const reason = `no budget covers ${who || 'a release without team or cost center'}`;
    const approvals =
      policy.unbudgeted === 'warn' ? [{ role: policy.reviewRole, count: 1, reason: `cost: ${reason}` }] : [];
    return { verdict: policy.unbudgeted, checks, requiredApprovals: approvals, reason };
  }
  const worst = checks.reduce((a, b) => (RANK[b.verdict] > RANK[a.verdict] ? b : a));
  const approvals = new Map<string, RoleRequirement>();
  for (const c of checks)
    if (c.requiredApproval && !approvals.has(c.requiredApproval.role))
      approvals.set(c.requiredApproval.role, c.requiredApproval);
  return {
    verdict: worst.verdict,
    checks,
    requiredApprovals: worst.verdict === 'warn' ? [...approvals.values()] : [],
    reason: worst.reason,
  };
}

/** `$1,234.50` */
export function usd(amount: number): string {
  return `$${amount.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** Small amounts (per-request prices) with four decimals: `$0.0035`. */
export function usdFine(amount: number): string {
  return amount >= 1 ? usd(amount) : `$${amount.toFixed(4)}`;
}
