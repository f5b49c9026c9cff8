/**
 * The `evaluation:` section of a policy file: bounds for the fairness, robustness and explainability gates. Every
 * field has a default, so an empty (or missing) section gives a working gate; errors name the field and what to do.
 */
import { BETWEEN_GROUP_METRICS } from './fairness';
import { z } from 'zod';
import { zodProblems } from '../../contract/problems';

/** A bound on one metric: it must stay within [min, max] (either side may be open). */
const boundSchema = z
  .object({
    min: z.number({ error: 'min must be a number' }).optional(),
    max: z.number({ error: 'max must be a number' }).optional(),
  })
  .strict()
  .refine((b) => b.min !== undefined || b.max !== undefined, { error: 'give min, max or both' })
  .refine((b) => b.min === undefined || b.max === undefined || b.min <= b.max, { error: 'min must not exceed max' });

export type MetricBound = z.infer<typeof boundSchema>;

const METRIC_NAMES = BETWEEN_GROUP_METRICS;

const fairnessSchema = z
  .object({
    /**
     * Bounds per between-group metric. Defaults: the "four-fifths rule" on disparate impact (judged only with a
     * privileged group) and 0.1 on the demographic parity and equalized odds differences.
     */
    bounds: z
      .partialRecord(z.enum(METRIC_NAMES, { error: `use one of ${METRIC_NAMES.join(', ')}` }), boundSchema)
      .default({
        demographicParityDifference: { max: 0.1 },
        equalizedOddsDifference: { max: 0.1 },
        disparateImpact: { min: 0.8 },
      }),
    /** Groups with fewer rows are "insufficient data": left out of the comparisons, and reported. */
    minGroupSize: z
      .number()
      .int('minGroupSize must be a whole number of rows')
      .min(1, 'minGroupSize must be at least 1')
      .default(30),
    /** What an insufficient-data group does to the verdict: a warn, a fail, or an error (the gate cannot decide). */
    insufficientData: z
      .enum(['warn', 'fail', 'error'], { error: 'insufficientData must be warn, fail or error' })
      .default('warn'),
    /** Judge the point estimate, or the conservative end of the bootstrap confidence interval. */
    judge: z.enum(['point', 'ci'], { error: 'judge must be point or ci' }).default('ci'),
    confidence: z
      .number()
      .gt(0, 'confidence must be in (0, 1), e.g. 0.95')
      .lt(1, 'confidence must be in (0, 1), e.g. 0.95')
      .default(0.95),
    bootstrap: z
      .object({
        resamples: z
          .number()
          .int()
          .min(0, 'resamples must be ≥ 0 (0 turns the intervals off)')
          .max(100_000)
          .default(1000),
        seed: z.number().int('seed must be an integer').default(20240601),
      })
      .strict()
      .default({ resamples: 1000, seed: 20240601 }),
    /** Also compare the intersections of the protected attributes (e.g. sex&race). */
    intersections: z.boolean().default(true),
    /** The privileged value per protected attribute, for AIF360's metrics (e.g. { sex: male }). */
    privileged: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  })
  .strict();

const robustnessSchema = z
  .object({
    attack: z.enum(['fgsm', 'pgd'], { error: 'attack must be fgsm or pgd' }).default('pgd'),
    /** The L∞ radii to report, in the model's input space (after preprocessing: standard deviations when standardised). */
    epsilons: z
      .array(z.number().positive('every epsilon must be > 0'))
      .min(1, 'list at least one epsilon')
      .default([0.05, 0.1, 0.2]),
    /** The radius the gate judges; must be one of epsilons. */
    epsilon: z.number().positive('epsilon must be > 0').default(0.1),
    steps: z.number().int().min(1, 'steps must be at least 1').max(1000).default(10),
    /** PGD step size; default 2.5·ε / steps. */
    stepSize: z.number().positive('stepSize must be > 0').optional(),
    minAdversarialAccuracy: z.number().min(0).max(1, 'minAdversarialAccuracy is a fraction in [0, 1]').default(0.6),
    /** Largest tolerated gap in adversarial accuracy between groups (a fairness finding when exceeded). */
    maxGroupGap: z.number().min(0).max(1).default(0.1),
    /** Rows attacked (a seeded sample of the dataset when larger). */
    maxRows: z.number().int().min(1).default(20_000),
    seed: z.number().int().default(20240601),
  })
  .strict()
  .refine((r) => r.epsilons.includes(r.epsilon), {
    error: 'epsilon must be one of epsilons (the judged radius is also reported)',
    path: ['epsilon'],
  });

const explainabilitySchema = z
  .object({
    method: z
      .enum(['integratedGradients', 'gradientTimesInput'], {
        error: 'method must be integratedGradients or gradientTimesInput',
      })
      .default('integratedGradients'),
    /** Integration points of integrated gradients. */
    steps: z.number().int().min(1).max(512).default(32),
    /** A protected attribute or proxy among this many top features is a warn. */
    topK: z.number().int().min(1, 'topK must be at least 1').default(3),
    /** A feature whose one-vs-rest AUC for a protected group reaches this is a proxy of it. */
    proxyThreshold: z.number().min(0.5, 'proxyThreshold is an AUC in [0.5, 1]').max(1).default(0.8),
    permutationRepeats: z.number().int().min(1).max(100).default(3),
    maxRows: z.number().int().min(1).default(5000),
    seed: z.number().int().default(20240601),
  })
  .strict();

export const evaluationPolicySchema = z
  .object({
    /** A request without an `evaluation` block (dataset, label, protected attributes) is refused at the door. */
    required: z.boolean().default(false),
    fairness: fairnessSchema.default(fairnessSchema.parse({})),
    robustness: robustnessSchema.default(robustnessSchema.parse({})),
    explainability: explainabilitySchema.default(explainabilitySchema.parse({})),
    /** The monitoring threshold for bias drift in production, annotated on the Deployment. */
    biasDriftThreshold: z
      .number()
      .min(0)
      .max(1, 'biasDriftThreshold is a difference in rates, in [0, 1]')
      .default(0.05),
  })
  .strict();

export type EvaluationPolicy = z.output<typeof evaluationPolicySchema>;
export type FairnessPolicy = EvaluationPolicy['fairness'];
export type RobustnessPolicy = EvaluationPolicy['robustness'];
export type ExplainabilityPolicy = EvaluationPolicy['explainability'];

/**
 * Validates a policy's `evaluation:` section (undefined → all defaults). Throws an Error whose lines name each bad
 * field, prefixed with `source` (e.g. "config/policies/prod.yaml: evaluation.fairness.minGroupSize: …").
 */
export function parseEvaluationPolicy(section: unknown, source = 'policy'): EvaluationPolicy {
  const parsed = evaluationPolicySchema.safeParse(section ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => {
    if (i.code !== 'unrecognized_keys') return i;
    const known = i.path.at(-1) === 'bounds' ? ` (metrics: ${METRIC_NAMES.join(', ')})` : '';
    return { path: i.path, message: `unknown field(s) ${i.keys.join(', ')}; remove or fix the spelling${known}` };
  });
  throw new Error(
    zodProblems({ issues }, 'evaluation')
      .map((problem) => `${source}: ${problem}`)
      .join('\n'),
  );
}

/** Problems of a policy's `evaluation:` section, one line each naming the field (empty when it is valid). */
export function evaluationPolicyProblems(section: unknown): string[] {
  try {
    parseEvaluationPolicy(section, 'policy');
    return [];
  } catch (err) {
    return (err as Error).message.split('\n').map((line) => line.replace(/^policy: /, ''));
  }
}
