/**
 * Adversarial robustness under L∞ attacks: FGSM (one signed-gradient step of size ε) and PGD (projected steps of
 * size α, kept within ε of the input). Gradients come from tf.grad of the cross-entropy loss. Only movable columns
 * (continuous, mutable, not protected) change; every column stays within the bounds seen in the data.
 */
import * as tf from '@tensorflow/tfjs';
import type { Classifier } from './model';

export type AttackName = 'fgsm' | 'pgd';

export interface AttackConfig {
  attack: AttackName;
  epsilon: number;
  /** PGD iterations (FGSM: ignored). */
  steps: number;
  /** PGD step size α; defaults to 2.5·ε / steps (Madry et al.). */
  stepSize?: number;
}

/** Per-input-column constraints of an attack. */
export interface AttackBounds {
  /** 1 for columns the attack may move, 0 for the others. */
  mask: Float32Array;
  lower: Float32Array;
  upper: Float32Array;
}

/**
 * What the attack climbs: minus the probability of the true class. Its gradient is the cross-entropy's divided by
 * that probability, a positive number per row, so its sign (all FGSM and L∞ PGD use) is the same, and it saves the
 * log and the clipping that cross-entropy needs.
 */
function loss(model: Classifier, x: tf.Tensor2D, yOneHot: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.sum(tf.mul(model.probabilities(x), yOneHot))) as tf.Scalar;
}

/**
 * The adversarial version of a batch. `labels` are class indexes (0/1). Returns a new tensor; the caller disposes it.
 */
export function attackBatch(
  model: Classifier,
  x: tf.Tensor2D,
  labels: tf.Tensor1D,
  config: AttackConfig,
  bounds: { mask: tf.Tensor1D; lower: tf.Tensor1D; upper: tf.Tensor1D },
): tf.Tensor2D {
  return tf.tidy(() => {
    const yOneHot = tf.oneHot(labels, 2).toFloat() as tf.Tensor2D;
    const gradient = tf.grad((input: tf.Tensor) => loss(model, input as tf.Tensor2D, yOneHot));
    const step = (current: tf.Tensor2D, scaledMask: tf.Tensor): tf.Tensor2D =>
      tf.add(current, tf.mul(tf.sign(gradient(current)), scaledMask)) as tf.Tensor2D;
    if (config.attack === 'fgsm') {
      return tf.minimum(
        tf.maximum(step(x, tf.mul(bounds.mask, config.epsilon)), bounds.lower),
        bounds.upper,
      ) as tf.Tensor2D;
    }
    const alpha = config.stepSize ?? (2.5 * config.epsilon) / config.steps;
    const alphaMask = tf.mul(bounds.mask, alpha);
    // The ε-ball around x intersected with the data bounds: one projection per step.
    const low = tf.maximum(tf.sub(x, config.epsilon), bounds.lower);
    const high = tf.minimum(tf.add(x, config.epsilon), bounds.upper);
    let adv = x;
    for (let i = 0; i < config.steps; i++) {
      const next = tf.minimum(tf.maximum(step(adv, alphaMask), low), high) as tf.Tensor2D;
      if (adv !== x) adv.dispose();
      adv = next;
    }
    return adv;
  });
}

/** The predicted class index of each row: classes[1] when its probability reaches the threshold. */
export function predictClasses(model: Classifier, x: tf.Tensor2D, threshold: number): Uint8Array {
  return tf.tidy(() => {
    const p1 = model.probabilities(x).slice([0, 1], [-1, 1]).reshape([-1]);
    return Uint8Array.from(tf.greaterEqual(p1, threshold).dataSync());
  });
}

/** Counts for one ε (overall and per group): rows, clean-correct, adversarially correct, and successful attacks. */
export interface RobustnessCounts {
  rows: number;
  cleanCorrect: number;
  adversarialCorrect: number;
  /** Clean-correct rows that the attack flipped. */
  flipped: number;
}

export function emptyCounts(): RobustnessCounts {
  return { rows: 0, cleanCorrect: 0, adversarialCorrect: 0, flipped: 0 };
}

export function addCounts(c: RobustnessCounts, label: number, clean: number, adversarial: number): void {
  c.rows++;
  if (clean === label) c.cleanCorrect++;
  if (adversarial === label) c.adversarialCorrect++;
  if (clean === label && adversarial !== label) c.flipped++;
}

/** Clean accuracy, adversarial accuracy and attack success rate (flipped / clean-correct) from counts. */
export function robustnessRates(c: RobustnessCounts): {
  rows: number;
  cleanAccuracy: number;
  adversarialAccuracy: number;
  attackSuccessRate: number;
} {
  return {
    rows: c.rows,
    cleanAccuracy: c.cleanCorrect / c.rows,
    adversarialAccuracy: c.adversarialCorrect / c.rows,
    attackSuccessRate: c.cleanCorrect === 0 ? 0 : c.flipped / c.cleanCorrect,
  };
}
