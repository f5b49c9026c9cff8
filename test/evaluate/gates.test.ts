/**
 * The three gates on real tfjs models read from the artifact store: a model trained on biased labels fails
 * fairness and is flagged by explain, the fair one passes; attacks match their closed forms on linear models.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createEvaluationActivities, type BackendInfo } from '../../activities/evaluate';
import { loadClassifier } from '../../activities/evaluate/model';
import { attackBatch } from '../../activities/evaluate/robustness';
import type { FairnessReport } from '../../activities/evaluate/fairness-report';
import type { RobustnessReport } from '../../activities/evaluate/run-robustness';
import { toCsv } from '../../scripts/credit-data';
import {
  gateInput,
  pinDataset,
  readGateEvidence,
  storeModel,
  test,
  trainFixtures,
  useBackend,
  type TrainedFixtures,
} from './fixtures';
import { linearModel, writeGraphModel } from './models';

let backend: BackendInfo;
let models: TrainedFixtures;

beforeAll(async () => {
  backend = await useBackend();
  models = await trainFixtures();
});
afterAll(() => models.close());

describe('fairness gate', () => {
  test('the model trained on biased labels fails; the fair one passes', async ({ tmp, storeRoot, store }) => {
    const { evaluateFairness } = createEvaluationActivities({ store, backend });

    // The dataset is pinned in the store as a release does; the gate reads that copy, not the file it came from.
    const copy = join(tmp, 'biased.csv');
    await writeFile(copy, await readFile(models.biased.data));
    const pinned = await pinDataset(storeRoot, copy);
    await rm(copy);
    const biased = await evaluateFairness(
      gateInput(await storeModel(models.biased.dir, storeRoot), copy, { dataset: pinned }),
    );
    expect(biased.verdict).toBe('fail');
    expect(biased.findings).toContainEqual(
      expect.objectContaining({ ruleId: 'fairness.demographicParityDifference', location: 'group', severity: 'high' }),
    );
    expect(biased.metrics['group.demographicParityDifference']).toBeGreaterThan(0.3);

    const fair = await evaluateFairness(
      gateInput(await storeModel(models.fair.dir, storeRoot, 'fair'), models.fair.data),
    );
    expect(fair.summary).toMatch(/within bounds/);
    expect(fair.verdict).toBe('pass');
    expect(fair.metrics['group.demographicParityDifference']).toBeLessThan(0.05);

    for (const result of [biased, fair]) {
      expect(result.metrics.backend).toBe(backend.name);
      expect(result.metrics.throughputRowsPerSecond).toBeGreaterThan(0);
      expect(result.annotations).toEqual({ 'bias-drift-threshold': '0.05' });
    }
    const evidence = await readGateEvidence<FairnessReport>(store, biased);
    expect(evidence).toMatchObject({ gate: 'fairness', verdict: 'fail', summary: biased.summary });
    expect(evidence.report.backend.name).toBe(backend.name);
    expect(evidence.report.dataset).toMatchObject({ source: pinned.source, sha256: pinned.sha256, bytes: pinned.size });
    // No host path: neither the store's copy nor the worker's file is named.
    expect(evidence.report.dataset).not.toHaveProperty('path');
    expect(JSON.stringify(evidence)).not.toContain(storeRoot);
    expect(evidence.report.report.attributes['group&sex']!.groups).toHaveProperty('a&f');
    expect(evidence.findings.length).toBe(biased.findings.length);
  });

  test('the policy can judge the point estimate instead of the conservative interval end', async ({
    storeRoot,
    store,
  }) => {
    const { evaluateFairness } = createEvaluationActivities({ store, backend });
    const manifest = await storeModel(models.fair.dir, storeRoot);
    const { metrics } = await evaluateFairness(gateInput(manifest, models.fair.data));
    // The largest difference over every attribute and intersection is the one a bound meets first.
    const point = Math.max(
      ...Object.entries(metrics)
        .filter(([k]) => k.endsWith('.demographicParityDifference') && !k.startsWith('judged.'))
        .map(([, v]) => Number(v)),
    );
    const bound = { demographicParityDifference: { max: point + 0.002 } };
    const judged = (judge: string) =>
      evaluateFairness(gateInput(manifest, models.fair.data, { policy: { fairness: { judge, bounds: bound } } }));
    expect((await judged('point')).verdict).toBe('pass');
    expect((await judged('ci')).verdict).toBe('fail');
  });

  test('a dataset problem is an error verdict naming column and row, never a pass', async ({
    tmp,
    storeRoot,
    store,
  }) => {
    const rows = models.fair.rows.slice(0, 50).map((r) => ({ ...r }));
    (rows[9] as Record<string, unknown>).income = 'n/a';
    const data = join(tmp, 'broken.csv');
    await writeFile(data, toCsv(rows));
    const { evaluateFairness, evaluateRobustness } = createEvaluationActivities({ store, backend });
    const manifest = await storeModel(models.fair.dir, storeRoot);
    const dataset = await pinDataset(storeRoot, data);
    for (const [gate, name] of [
      [evaluateFairness, 'fairness'],
      [evaluateRobustness, 'robustness'],
    ] as const) {
      const result = await gate(gateInput(manifest, data, { dataset }));
      expect(result.verdict).toBe('error');
      // The position, never the cell's content: a dataset could be any file the worker can read.
      expect(result.summary).toContain('column income row 10: the value is not a number');
      expect(result.summary).not.toContain('n/a');
      // A gate that cannot decide says so with one finding no waiver can cover.
      expect(result.findings).toEqual([
        expect.objectContaining({ ruleId: `${name}.cannot-evaluate`, severity: 'high', waivable: false }),
      ]);
    }
    const noLabel = await evaluateFairness(gateInput(manifest, models.fair.data, { evaluation: { label: 'outcome' } }));
    expect(noLabel.verdict).toBe('error');
    expect(noLabel.summary).toContain('column outcome: not in the CSV header');
  });
});

describe('graph models', () => {
  test('are read from the store like layers models; features come from metadata or the request', async ({
    tmp,
    storeRoot,
    store,
  }) => {
    // A graph model of logistic regression on income and debt_ratio (standardised by hand below), no metadata.
    const dir = join(tmp, 'graph');
    await writeGraphModel(dir, [1.2, -2.5], 0.1);
    const manifest = await storeModel(dir, storeRoot, 'graph');
    const { evaluateFairness, evaluateRobustness } = createEvaluationActivities({ store, backend });

    const bare = await evaluateFairness(gateInput(manifest, models.fair.data));
    expect(bare.verdict).toBe('error');
    expect(bare.summary).toContain("features is missing: give it in the model's userDefinedMetadata.features");

    const features = [
      { name: 'income', mean: 50, std: 15 },
      { name: 'debt_ratio', mean: 0.35, std: 0.15 },
    ];
    const input = gateInput(manifest, models.fair.data, { evaluation: { features } });
    const fairness = await evaluateFairness(input);
    expect(fairness.verdict).toBe('pass');
    const robustness = await evaluateRobustness(input);
    expect(robustness.metrics.movableColumns).toBe(2);
    expect(Number(robustness.metrics.adversarialAccuracy)).toBeLessThan(Number(robustness.metrics.cleanAccuracy));
  });
});

describe('explain gate', () => {
  test('warns when the protected attribute or a proxy of it is among the top features', async ({
    storeRoot,
    store,
  }) => {
    const { explainModel } = createEvaluationActivities({ store, backend });
    const run = async (m: { dir: string; data: string }) =>
      explainModel(
        gateInput(await storeModel(m.dir, storeRoot), m.data, { policy: { explainability: { maxRows: 1500 } } }),
      );

    const biased = await run(models.biased);
    expect(biased.verdict).toBe('warn');
    expect(biased.findings).toContainEqual(
      expect.objectContaining({ ruleId: 'explain.protected-attribute', location: 'group' }),
    );

    const proxy = await run(models.proxy);
    expect(proxy.verdict).toBe('warn');
    expect(proxy.findings).toContainEqual(expect.objectContaining({ ruleId: 'explain.proxy', location: 'zip_score' }));
    expect(proxy.findings[0]!.message).toMatch(/predicts the protected attribute group \(AUC 0\.\d+/);

    const fair = await run(models.fair);
    expect(fair.verdict).toBe('pass');
    expect(fair.metrics.top1).toBe('income');
  });
});

describe('robustness gate', () => {
  test('fails below the minimum adversarial accuracy at the judged epsilon, and reports per group', async ({
    storeRoot,
    store,
  }) => {
    const { evaluateRobustness } = createEvaluationActivities({ store, backend });
    const manifest = await storeModel(models.fair.dir, storeRoot);
    const policy = (min: number) => ({
      robustness: { attack: 'pgd', epsilons: [0.05, 0.5], epsilon: 0.5, minAdversarialAccuracy: min, maxRows: 1000 },
    });
    const strict = await evaluateRobustness(gateInput(manifest, models.fair.data, { policy: policy(0.99) }));
    expect(strict.verdict).toBe('fail');
    expect(strict.findings[0]).toMatchObject({ ruleId: 'robustness.adversarial-accuracy', location: 'epsilon=0.5' });
    const adv = Number(strict.metrics.adversarialAccuracy);
    expect(adv).toBeLessThan(Number(strict.metrics.cleanAccuracy));
    // A larger radius never helps the model.
    expect(Number(strict.metrics['adversarialAccuracy@0.05'])).toBeGreaterThanOrEqual(adv);

    const lenient = await evaluateRobustness(gateInput(manifest, models.fair.data, { policy: policy(0.1) }));
    expect(lenient.verdict).toBe('pass');
    const evidence = await readGateEvidence<RobustnessReport>(store, lenient);
    const at = evidence.report.report.epsilons[1]!;
    expect(Object.keys(at.groups.group!).sort()).toEqual(['a', 'b']);
    expect(evidence.report.report.movableColumns).toEqual(['income', 'debt_ratio', 'tenure']);
  });
});

describe('attacks', () => {
  const w = [0.8, -1.5, 0.0, 2.0];
  const b = 0.1;
  // Column 2 has zero weight (sign 0: never moves); column 3 is not movable (say, protected).
  const mask = tf.tensor1d([1, 1, 1, 0]);
  const lower = tf.tensor1d([-1, -1, -1, -1]);
  const upper = tf.tensor1d([1, 1, 1, 1]);
  const xs = [
    [0.2, 0.3, -0.5, 1],
    [0.95, -0.9, 0.1, -1],
    [-0.4, 0.0, 0.7, 0],
  ];
  const labels = [1, 0, 1];

  /** FGSM on logistic regression: the loss gradient is (p − y)·w, so x' = clip(x + ε·sign((p − y)·w)·mask). */
  function closedForm(epsilon: number): number[][] {
    return xs.map((x, i) => {
      const p = 1 / (1 + Math.exp(-(x.reduce((a, v, j) => a + v * w[j]!, 0) + b)));
      return x.map((v, j) => {
        const moved = v + epsilon * Math.sign((p - labels[i]!) * w[j]!) * [1, 1, 1, 0][j]!;
        return Math.min(1, Math.max(-1, moved));
      });
    });
  }

  test('FGSM on a linear model equals the closed-form perturbation (layers and graph models)', async ({ tmp }) => {
    const layers = await loadClassifier(await linearModel(w, b));
    const graph = await loadClassifier(tf.io.fromMemory(await writeGraphModel(join(tmp, 'graph'), w, b)));
    for (const model of [layers, graph]) {
      for (const epsilon of [0.1, 0.3]) {
        const adv = attackBatch(
          model,
          tf.tensor2d(xs),
          tf.tensor1d(labels, 'int32'),
          { attack: 'fgsm', epsilon, steps: 1 },
          {
            mask,
            lower,
            upper,
          },
        );
        const got = adv.arraySync() as number[][];
        const want = closedForm(epsilon);
        got.forEach((row, i) =>
          row.forEach((v, j) => expect(v, `${model.kind} ε=${epsilon} [${i}][${j}]`).toBeCloseTo(want[i]![j]!, 6)),
        );
      }
    }
  });

  test('PGD stays within ε and the bounds, and on a linear model reaches the FGSM corner', async () => {
    const model = await loadClassifier(await linearModel(w, b));
    const epsilon = 0.3;
    const adv = attackBatch(
      model,
      tf.tensor2d(xs),
      tf.tensor1d(labels, 'int32'),
      { attack: 'pgd', epsilon, steps: 10 },
      {
        mask,
        lower,
        upper,
      },
    ).arraySync() as number[][];
    const want = closedForm(epsilon);
    adv.forEach((row, i) =>
      row.forEach((v, j) => {
        expect(Math.abs(v - xs[i]![j]!)).toBeLessThanOrEqual(epsilon + 1e-6);
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
        expect(v).toBeCloseTo(want[i]![j]!, 5);
      }),
    );
  });
});
