/**
 * The gates once more on the WebAssembly backend (the fallback where no native TensorFlow is built): same verdicts,
 * same closed-form attack, and the backend recorded.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createEvaluationActivities, type BackendInfo } from '../../activities/evaluate';
import { loadClassifier } from '../../activities/evaluate/model';
import { attackBatch } from '../../activities/evaluate/robustness';
import { gateInput, pinDataset, storeModel, test, trainFixtures, useBackend, type TrainedFixtures } from './fixtures';
import { linearModel } from './models';

let backend: BackendInfo;
let models: TrainedFixtures;

beforeAll(async () => {
  backend = await useBackend('wasm');
  models = await trainFixtures(2000);
});
afterAll(() => models.close());

describe('on the wasm backend', () => {
  test('the biased model fails fairness, the fair one passes, and wasm is recorded', async ({ storeRoot, store }) => {
    expect(backend.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const { evaluateFairness, evaluateRobustness } = createEvaluationActivities({ store, backend });
    const biased = await evaluateFairness(
      gateInput(await storeModel(models.biased.dir, storeRoot), models.biased.data, {
        dataset: await pinDataset(storeRoot, models.biased.data),
      }),
    );
    const fair = gateInput(await storeModel(models.fair.dir, storeRoot, 'fair'), models.fair.data, {
      dataset: await pinDataset(storeRoot, models.fair.data),
    });
    expect(biased.verdict).toBe('fail');
    expect((await evaluateFairness(fair)).verdict).toBe('pass');
    const robustness = await evaluateRobustness(fair);
    expect(robustness.verdict).toBe('pass');
    expect(robustness.metrics.backend).toBe('wasm');
    // The typed output the cost gate prices from names the backend it was measured on.
    expect(robustness.throughput).toEqual({ unit: 'rows', perSecond: expect.any(Number), backend: 'wasm' });
    expect(robustness.throughput!.perSecond).toBeGreaterThan(0);
  });

  test('FGSM on a linear model equals the closed form', async () => {
    const w = [0.5, -2, 1];
    const model = await loadClassifier(await linearModel(w, -0.2));
    const x = [[0.1, 0.2, 0.3]];
    const adv = attackBatch(
      model,
      tf.tensor2d(x),
      tf.tensor1d([0], 'int32'),
      { attack: 'fgsm', epsilon: 0.25, steps: 1 },
      {
        mask: tf.tensor1d([1, 1, 1]),
        lower: tf.tensor1d([-5, -5, -5]),
        upper: tf.tensor1d([5, 5, 5]),
      },
    );
    // Label 0: the loss gradient is p·w, so each input moves by ε·sign(w).
    Array.from(adv.dataSync()).forEach((v, j) => expect(v).toBeCloseTo(x[0]![j]! + 0.25 * Math.sign(w[j]!), 6));
  });
});
