/**
 * The `cost:` section of a release policy: capacity headroom, SLO defaults, where and how capacity is bought,
 * forecasting, the risk premium, and budgets per team and cost center with soft and hard limits.
 *
 * Every field has a default, so a policy without a `cost:` section still prices releases (and enforces no budget).
 */
import { z } from 'zod';
import { zodProblems } from '../../contract/problems';

const ROLE = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'roles are lower-case names from approvers.yaml (e.g. finops)');
const money = (what: string) =>
  z.number({ message: `must be a number (${what})` }).nonnegative(`must be ≥ 0 (${what})`);
const probability = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');

export const budgetLimitSchema = z
  .object({
    /** Monthly cost (USD) above which a release needs the review role's approval. */
    soft: money('USD per month'),
    /** Monthly cost (USD) above which a release fails. */
    hard: money('USD per month'),
    /** Who reviews a release between soft and hard; defaults to the section's reviewRole. */
    reviewRole: ROLE.optional(),
  })
  .strict()
  .refine((b) => b.soft <= b.hard, { message: 'soft must be ≤ hard; raise hard or lower soft', path: ['soft'] });

export const riskPremiumSchema = z
  .object({
    /** Expected cost (USD) of one incident caused by a bad model in production: rollback, remediation, harm. */
    incidentCost: money('USD per incident').default(25_000),
    /**
     * Monthly probability that a gate's area causes an incident, by the gate's verdict (`missing`: the gate did not
     * run for this release). Weak evidence costs more.
     */
    monthlyIncidentProbability: z
      .object({
        pass: probability.default(0.001),
        warn: probability.default(0.01),
        fail: probability.default(0.1),
        error: probability.default(0.03),
        missing: probability.default(0.03),
      })
      .strict()
      .prefault({}),
    /** The gates whose evidence counts, and each one's weight. */
    gates: z
      .record(z.string().min(1), z.number().nonnegative())
      .default({ scan: 1, license: 0.5, fairness: 1, robustness: 1, explain: 0.5 }),
    /** Exposure per environment (production 1; others less); an environment not listed uses `defaultExposure`. */
    environmentExposure: z
      .record(z.string().min(1), z.number().nonnegative())
      .default({ production: 1, staging: 0.1, dev: 0 }),
    defaultExposure: z.number().nonnegative().default(1),
  })
  .strict();

export const costPolicySchema = z
  .object({
    /** Capacity above the forecast peak: 0.3 serves peak × 1.3. */
    headroom: z.number().min(0, 'must be ≥ 0 (0.3 = 30% above peak)').max(10).default(0.3),
    slo: z
      .object({
        /** Latency objective when the request declares none. */
        latencyMs: z.number().positive().default(500),
        /** The percentile the objective is about (0.95 = p95). */
        percentile: z.number().gt(0.5, 'must be > 0.5 (e.g. 0.95)').lt(1, 'must be < 1').default(0.95),
      })
      .strict()
      .prefault({}),
    /** Memory per replica = loaded weights × overheadFactor + runtimeOverheadGiB (+ KV cache for language models). */
    overheadFactor: z.number().min(1, 'must be ≥ 1 (weights need at least their own size)').default(1.2),
    runtimeOverheadGiB: z.number().nonnegative().default(1),
    /** Concurrent sequences a language-model replica holds KV cache for. */
    kvCacheSequences: z.number().int().positive().default(4),
    minReplicas: z.number().int().min(1).default(1),
    maxReplicas: z.number().int().min(1).default(64),
    purchase: z.enum(['on-demand', 'spot'], { message: 'must be on-demand or spot' }).default('on-demand'),
    /** Restrict the catalog: providers and regions allowed (empty = all). */
    providers: z.array(z.string().min(1)).default([]),
    regions: z.array(z.string().min(1)).default([]),
    forecast: z
      .object({
        season: z.enum(['auto', 'daily', 'weekly'], { message: 'must be auto, daily or weekly' }).default('auto'),
        /** How far ahead the capacity peak is taken. */
        horizonDays: z.number().positive().max(366).default(30),
        /** Share of the history held out to measure the forecast's error. */
        holdoutFraction: z.number().gt(0).lt(0.5).default(0.2),
        /**
         * A held-out sMAPE (0..1 scale) above this adds a finding that the forecast is unreliable. sMAPE rather than
         * MAPE: MAPE explodes on the near-zero hours of quiet nights, which matter least for capacity.
         */
        maxSmape: z.number().positive().max(1).default(0.15),
      })
      .strict()
      .prefault({}),
    riskPremium: riskPremiumSchema.prefault({}),
    /** What budgets are compared with: total cost of ownership (compute + storage + risk premium) or compute only. */
    budgetBasis: z.enum(['tco', 'compute'], { message: 'must be tco or compute' }).default('tco'),
    /** Default reviewer between soft and hard limits. */
    reviewRole: ROLE.default('finops'),
    budgets: z
      .object({
        teams: z.record(z.string().min(1), budgetLimitSchema).default({}),
        costCenters: z.record(z.string().min(1), budgetLimitSchema).default({}),
        /** Applies to releases whose team and cost center have no budget of their own. */
        default: budgetLimitSchema.optional(),
      })
      .strict()
      .prefault({}),
    /** Verdict for a release that no budget covers. */
    unbudgeted: z.enum(['pass', 'warn', 'fail'], { message: 'must be pass, warn or fail' }).default('pass'),
    sprawl: z
      .object({
        /** Replicas more than this many times the forecast need are flagged. */
        overprovisionFactor: z.number().gt(1).default(2),
        /** An endpoint whose mean request rate stays below this (requests/s) is idle. */
        idleRequestsPerSecond: z.number().nonnegative().default(0.01),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((p) => p.minReplicas <= p.maxReplicas, {
    message: 'minReplicas must be ≤ maxReplicas',
    path: ['minReplicas'],
  });

export type CostPolicy = z.infer<typeof costPolicySchema>;
export type BudgetLimit = z.infer<typeof budgetLimitSchema>;

/** Validates a policy's `cost:` section (undefined = all defaults); returns problems prefixed with `cost.`. */
export function parseCostPolicy(raw: unknown): { policy: CostPolicy } | { problems: string[] } {
  const parsed = costPolicySchema.safeParse(raw ?? {});
  if (parsed.success) return { policy: parsed.data };
  return { problems: zodProblems(parsed.error, 'cost') };
}

/** The roles a cost policy names, so the policy loader can check them against approvers.yaml. */
export function costPolicyRoles(policy: CostPolicy): string[] {
  const { teams, costCenters, default: fallback } = policy.budgets;
  const roles = [policy.reviewRole];
  for (const b of [...Object.values(teams), ...Object.values(costCenters), ...(fallback ? [fallback] : [])]) {
    if (b.reviewRole) roles.push(b.reviewRole);
  }
  return [...new Set(roles)];
}
