/**
 * The policy's evaluation: section: every field has a default, and every mistake is named by its field.
 */
import { describe, expect, test } from 'vitest';
import { evaluationPolicyProblems, parseEvaluationPolicy } from '../../activities/evaluate/policy';

describe('evaluation policy section', () => {
  test('a missing section gives working defaults', () => {
    const policy = parseEvaluationPolicy(undefined);
    expect(policy.fairness.bounds).toEqual({
      demographicParityDifference: { max: 0.1 },
      equalizedOddsDifference: { max: 0.1 },
      disparateImpact: { min: 0.8 },
    });
    expect(policy.fairness).toMatchObject({ minGroupSize: 30, judge: 'ci', bootstrap: { resamples: 1000 } });
    expect(policy.robustness).toMatchObject({ attack: 'pgd', epsilon: 0.1, minAdversarialAccuracy: 0.6 });
    expect(policy.explainability.topK).toBe(3);
    expect(policy.biasDriftThreshold).toBe(0.05);
  });

  test('each problem names its field and says what to do', () => {
    expect(
      evaluationPolicyProblems({
        fairness: { minGroupSize: 0, bounds: { demographicParity: { max: 0.1 }, disparateImpact: {} } },
        robustness: { epsilons: [0.05], epsilon: 0.2 },
        explain: {},
      }),
    ).toEqual([
      'evaluation.fairness.bounds.disparateImpact: give min, max or both',
      expect.stringMatching(
        /^evaluation\.fairness\.bounds: unknown field\(s\) demographicParity; remove or fix the spelling \(metrics: demographicParityDifference, /,
      ),
      'evaluation.fairness.minGroupSize: minGroupSize must be at least 1',
      'evaluation.robustness.epsilon: epsilon must be one of epsilons (the judged radius is also reported)',
      'evaluation: unknown field(s) explain; remove or fix the spelling',
    ]);
    expect(evaluationPolicyProblems({ fairness: { judge: 'point' } })).toEqual([]);
  });
});
