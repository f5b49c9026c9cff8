/** The budget gate's three outcomes, and which budgets apply to a release. */
import { describe, expect, it } from 'vitest';
import { budgetVerdict, evaluateBudgets } from '../../activities/cost/budget';
import { riskPremium } from '../../activities/cost/risk';
import { costPolicySchema } from '../../activities/cost/policy';
import { earlierGate } from './fixtures';

const limit = { soft: 1000, hard: 3000 };

describe('budgetVerdict', () => {
  it('passes under the soft limit (and at it)', () => {
    expect(budgetVerdict(999.99, limit, 'finops', 'team nlp')).toMatchObject({ verdict: 'pass' });
    expect(budgetVerdict(1000, limit, 'finops', 'team nlp')).toEqual({
      scope: 'team nlp',
      soft: 1000,
      hard: 3000,
      verdict: 'pass',
      reason: '$1,000.00/month is within the soft limit of $1,000.00 for team nlp',
    });
  });

  it('warns between soft and hard and asks the review role for one approval', () => {
    const check = budgetVerdict(1500, limit, 'finops', 'team nlp');
    expect(check.verdict).toBe('warn');
    expect(check.requiredApproval).toEqual({
      role: 'finops',
      count: 1,
      reason: 'cost: $1,500.00/month exceeds the soft limit of $1,000.00 for team nlp (hard $3,000.00)',
    });
    // A budget may name its own reviewer.
    expect(budgetVerdict(1500, { ...limit, reviewRole: 'cfo-office' }, 'finops', 'x').requiredApproval?.role).toBe(
      'cfo-office',
    );
  });

  it('fails over the hard limit, with no approval that could let it through', () => {
    const check = budgetVerdict(3000.01, limit, 'finops', 'cost center cc-1');
    expect(check).toMatchObject({
      verdict: 'fail',
      reason: '$3,000.01/month exceeds the hard limit of $3,000.00 for cost center cc-1',
    });
    expect(check.requiredApproval).toBeUndefined();
  });
});

describe('evaluateBudgets', () => {
  const policy = costPolicySchema.parse({
    budgets: {
      teams: { nlp: { soft: 1000, hard: 3000 } },
      costCenters: { 'cc-1': { soft: 500, hard: 800 } },
      default: { soft: 100, hard: 200 },
    },
  });

  it('checks team and cost center and keeps the strictest outcome', () => {
    const outcome = evaluateBudgets(900, { team: 'nlp', costCenter: 'cc-1' }, policy);
    expect(outcome.checks.map((c) => [c.scope, c.verdict])).toEqual([
      ['team nlp', 'pass'],
      ['cost center cc-1', 'fail'],
    ]);
    expect(outcome.verdict).toBe('fail');
    expect(outcome.requiredApprovals).toEqual([]);
  });

  it('falls back to the default budget for an owner without one', () => {
    expect(evaluateBudgets(150, { team: 'vision' }, policy)).toMatchObject({
      verdict: 'warn',
      requiredApprovals: [{ role: 'finops', count: 1 }],
      checks: [{ scope: 'the default budget' }],
    });
  });

  it('treats an unbudgeted release as the policy says', () => {
    const none = costPolicySchema.parse({ unbudgeted: 'warn' });
    expect(evaluateBudgets(10, { team: 'vision' }, none)).toMatchObject({
      verdict: 'warn',
      reason: 'no budget covers team vision',
      requiredApprovals: [{ role: 'finops', count: 1, reason: 'cost: no budget covers team vision' }],
    });
    expect(evaluateBudgets(10, {}, costPolicySchema.parse({})).verdict).toBe('pass');
  });
});

describe('riskPremium', () => {
  const rp = costPolicySchema.parse({}).riskPremium;

  it('costs more for warn and missing evidence than for passing evidence', () => {
    const allPass = ['scan', 'license', 'fairness', 'robustness', 'explain'].map((g) => earlierGate(g, 'pass'));
    const strong = riskPremium(allPass, 'production', rp);
    // $25,000 × (1 + 0.5 + 1 + 1 + 0.5) × 0.001
    expect(strong.monthly).toBeCloseTo(100, 10);
    const weak = riskPremium([earlierGate('scan', 'pass'), earlierGate('fairness', 'warn')], 'production', rp);
    // scan pass 25, fairness warn 250, license missing 375, robustness missing 750, explain missing 375
    expect(weak.monthly).toBeCloseTo(25 + 250 + 375 + 750 + 375, 10);
    expect(weak.terms.find((t) => t.gate === 'robustness')).toMatchObject({ state: 'missing', probability: 0.03 });
  });

  it('scales with the environment exposure', () => {
    expect(riskPremium([], 'staging', rp).monthly).toBeCloseTo(0.1 * riskPremium([], 'production', rp).monthly, 10);
    expect(riskPremium([], 'dev', rp).monthly).toBe(0);
    expect(riskPremium([], 'eu-prod', rp).exposure).toBe(1);
  });
});
