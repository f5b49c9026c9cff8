/**
 * Global feature attributions: integrated gradients (or gradient × input) of the favorable-class probability, and
 * permutation importance (accuracy lost when a feature's values are shuffled across rows). Plus proxy detection: how
 * well each feature on its own predicts a protected attribute (one-vs-rest ROC AUC).
 */
import * as tf from '@tensorflow/tfjs';
import type { Classifier } from './model';
import type { SeededRandom } from './random';

export type AttributionMethod = 'integratedGradients' | 'gradientTimesInput';

/**
 * Sum over the batch of |attribution| per input column. Integrated gradients integrates the gradient along the
 * straight path from `baseline` to each row (Riemann midpoint rule with `steps` points) and multiplies by
 * (x − baseline); gradient × input multiplies the gradient at x by (x − baseline).
 */
export function attributionBatch(
  model: Classifier,
  x: tf.Tensor2D,
  baseline: tf.Tensor1D,
  favorableIndex: number,
  method: AttributionMethod,
  steps: number,
): Float64Array {
  const sums = tf.tidy(() => {
    const target = (input: tf.Tensor) =>
      tf.sum(model.probabilities(input as tf.Tensor2D).slice([0, favorableIndex], [-1, 1]));
    const gradient = tf.grad(target);
    const delta = tf.sub(x, baseline);
    let avgGrad: tf.Tensor;
    if (method === 'gradientTimesInput') {
      avgGrad = gradient(x);
    } else {
      let total: tf.Tensor = tf.zerosLike(x);
      for (let k = 0; k < steps; k++) {
        const alpha = (k + 0.5) / steps;
        const g = gradient(tf.add(baseline, tf.mul(delta, alpha)));
        const next = tf.add(total, g);
        total.dispose();
        g.dispose();
        total = next;
      }
      avgGrad = tf.div(total, steps);
    }
    return tf.sum(tf.abs(tf.mul(avgGrad, delta)), 0);
  });
  const out = Float64Array.from(sums.dataSync());
  sums.dispose();
  return out;
}

/** Accuracy of the model on rows with the given input columns' values permuted by `order`. */
export function permutedAccuracy(
  predict: (x: Float32Array, rows: number) => Uint8Array,
  x: Float32Array,
  width: number,
  labels: Uint8Array,
  columns: readonly number[],
  order: Uint32Array,
): number {
  const rows = labels.length;
  const copy = Float32Array.from(x);
  for (let r = 0; r < rows; r++) {
    const src = order[r]! * width;
    const dst = r * width;
    for (const c of columns) copy[dst + c] = x[src + c]!;
  }
  const predicted = predict(copy, rows);
  let correct = 0;
  for (let r = 0; r < rows; r++) if (predicted[r] === labels[r]) correct++;
  return correct / rows;
}

/** A random permutation of 0..n−1 from the seeded generator. */
export function permutation(n: number, rng: SeededRandom): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}

/**
 * ROC AUC of `score` for telling rows of group `g` from the rest, made symmetric (max(AUC, 1 − AUC)): 0.5 means the
 * score says nothing about membership, 1 that it separates the group perfectly. Ties get average ranks.
 */
export function groupAuc(score: Float64Array, codes: Int32Array, g: number): number {
  const n = score.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let positives = 0;
  let rankSum = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && score[order[j + 1]!] === score[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (codes[order[k]!] === g) {
        positives++;
        rankSum += avgRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  const auc = (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
  return Math.max(auc, 1 - auc);
}

/**
 * How well one feature predicts a protected attribute: the best one-vs-rest AUC over its groups. A one-hot feature
 * (several columns) is scored by the group's share among rows with the same category (target encoding), the best
 * ranking any classifier of that feature alone could make.
 */
export function proxyStrength(
  x: Float32Array,
  width: number,
  columns: readonly number[],
  codes: Int32Array,
  groups: number,
): number {
  const rows = codes.length;
  const raw = new Float64Array(rows);
  if (columns.length === 1) {
    const c = columns[0]!;
    for (let r = 0; r < rows; r++) raw[r] = x[r * width + c]!;
  } else {
    for (let r = 0; r < rows; r++) {
      let hot = 0;
      for (let k = 0; k < columns.length; k++) if (x[r * width + columns[k]!]! > 0.5) hot = k;
      raw[r] = hot;
    }
  }
  let best = 0;
  for (let g = 0; g < groups; g++) {
    const score = columns.length === 1 ? raw : targetEncode(raw, codes, g, columns.length);
    const auc = groupAuc(score, codes, g);
    if (Number.isFinite(auc) && auc > best) best = auc;
    // Two groups are one comparison seen from both sides.
    if (groups === 2) break;
  }
  return best;
}

function targetEncode(category: Float64Array, codes: Int32Array, g: number, categories: number): Float64Array {
  const hits = new Float64Array(categories);
  const totals = new Float64Array(categories);
  for (let r = 0; r < category.length; r++) {
    totals[category[r]!]! += 1;
    if (codes[r] === g) hits[category[r]!]! += 1;
  }
  return category.map((c) => hits[c]! / totals[c]!);
}
