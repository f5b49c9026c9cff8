/**
 * Conditions are judged as Argo Rollouts judges them (EvaluateResult), in CEL: the examples from Argo's
 * documentation, the four combinations of given conditions, NaN, and errors.
 */
import { describe, expect, it } from 'vitest';
import {
  compileCondition,
  conditionProblem,
  evaluateConditions,
} from '../../../activities/monitor/analysis/conditions';

describe('conditions as Argo Rollouts judges them', () => {
  it.each([
    // Argo's documented examples.
    ['result[0] >= 0.95', undefined, [0.97], 'Successful'],
    ['result[0] >= 0.95', undefined, [0.9], 'Failed'],
    ['result < 0.01', undefined, 0.001, 'Successful'],
    ['result < 0.01', undefined, 0.2, 'Failed'],
    ['len(result) == 0', undefined, [], 'Successful'],
    ['len(result) == 0', undefined, [1], 'Failed'],
    // Only a failureCondition: false succeeds, true fails.
    [undefined, 'result[0] > 0.05', [0.01], 'Successful'],
    [undefined, 'result[0] > 0.05', [0.5], 'Failed'],
    // Both: neither true is Inconclusive, failure wins over success.
    ['result[0] < 0.5', 'result[0] > 0.8', [0.6], 'Inconclusive'],
    ['result[0] < 0.5', 'result[0] > 0.8', [0.4], 'Successful'],
    ['result[0] < 0.5', 'result[0] > 0.8', [0.9], 'Failed'],
    ['result[0] < 1.0', 'result[0] > 0.0', [0.5], 'Failed'],
    // Neither: every measurement succeeds.
    [undefined, undefined, [123], 'Successful'],
    // CEL's own size() and macros, int against double.
    ['size(result) == 2 && result.all(x, x < 1)', undefined, [0.1, 0.2], 'Successful'],
    ['result[0] <= 1', undefined, [1], 'Successful'],
    // Maps (the drift and bias results).
    ['!result.datasetDrift', undefined, { datasetDrift: false, driftedShare: 0.1 }, 'Successful'],
    ['!result.datasetDrift', undefined, { datasetDrift: true, driftedShare: 0.6 }, 'Failed'],
    // default() replaces null.
    ['default(result, 0.0) < 1.0', undefined, null, 'Successful'],
  ] as const)('success %s, failure %s on %j → %s', (success, failure, result, phase) => {
    const conditions = {
      ...(success === undefined ? {} : { successCondition: success }),
      ...(failure === undefined ? {} : { failureCondition: failure }),
    };
    expect(evaluateConditions(conditions, result).phase).toBe(phase);
  });

  it('says which condition decided a failure', () => {
    expect(evaluateConditions({ successCondition: 'result < 1.0' }, 2).message).toBe('successCondition is false');
    expect(evaluateConditions({ successCondition: 'result < 1.0', failureCondition: 'result > 1.5' }, 2).message).toBe(
      'failureCondition is true',
    );
  });

  it('compares NaN false with everything, so a NaN neither passes nor fails when both conditions are given', () => {
    expect(evaluateConditions({ successCondition: 'result[0] <= 0.5' }, [NaN]).phase).toBe('Failed');
    expect(
      evaluateConditions({ successCondition: 'result[0] <= 0.5', failureCondition: 'result[0] > 0.5' }, [NaN]).phase,
    ).toBe('Inconclusive');
    expect(evaluateConditions({ successCondition: 'isNaN(result[0])' }, [NaN]).phase).toBe('Successful');
    expect(evaluateConditions({ successCondition: '!isInf(result)' }, Infinity).phase).toBe('Failed');
  });

  it('is an Error when a condition cannot be evaluated, in either condition', () => {
    const outOfRange = evaluateConditions({ successCondition: 'result[0] >= 0.95' }, []);
    expect(outOfRange.phase).toBe('Error');
    expect(outOfRange.message).toMatch(/^successCondition: /);
    const notBool = evaluateConditions({ successCondition: 'true', failureCondition: 'result' }, 3);
    expect(notBool).toEqual({ phase: 'Error', message: 'failureCondition gave number, not true or false' });
  });

  it('refuses at compile time what does not parse, type-check or give a boolean, without repeating it', () => {
    expect(conditionProblem('result[0] >= ')).toMatch(/^does not parse: /);
    expect(conditionProblem('resutl[0] >= 1.0')).toMatch(/^does not type-check: Unknown variable: resutl/);
    expect(conditionProblem('"a" + "b"')).toMatch(/gives string, not true or false/);
    expect(conditionProblem('')).toMatch(/is empty/);
    expect(conditionProblem('result[0] >= 0.95')).toBeUndefined();
    expect(() => compileCondition('x'.repeat(2000))).toThrow(/at most 1024 characters/);
  });
});
