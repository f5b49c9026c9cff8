/**
 * The robustness gate's computation: attack a seeded sample of rows at every ε of the policy, batch by batch, and
 * count clean and adversarial correctness overall and per group. Deterministic (no random start), so a resumed
 * run gives the same answer as an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs';
import type { RobustnessPolicy } from './policy';
import { betweenBatches, resumable, workKey, type RunControl } from './control';
import type { PreparedEvaluation } from './prepare';
import { SeededRandom } from './random';
import {
  addCounts,
  attackBatch,
  emptyCounts,
  predictClasses,
  robustnessRates,
  type RobustnessCounts,
} from './robustness';

type Rates = ReturnType<typeof robustnessRates>;

export interface EpsilonResult extends Rates {
  epsilon: number;
  /** Per protected attribute, per group. */
  groups: Record<string, Record<string, Rates>>;
}

export interface RobustnessReport {
  attack: 'fgsm' | 'pgd';
  steps: number;
  stepSize?: number;
  /** Rows attacked, and how many the dataset had. */
  rows: number;
  datasetRows: number;
  movableColumns: string[];
  epsilons: EpsilonResult[];
}

export interface RobustnessRun {
  report: RobustnessReport;
  throughputRowsPerSecond: number;
  resumedFromRow: number;
}

interface State {
  overall: RobustnessCounts[];
  /** [epsilon][attribute][group] */
  groups: RobustnessCounts[][][];
}

/** Indexes of a seeded sample of `k` of `n` rows, in ascending order (all rows when k ≥ n). */
export function sampleRows(n: number, k: number, seed: number): Uint32Array {
  const all = new Uint32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  if (k >= n) return all;
  const rng = new SeededRandom(seed);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    const t = all[i]!;
    all[i] = all[j]!;
    all[j] = t;
  }
  return all.subarray(0, k).sort();
}

export async function runRobustness(
  prep: PreparedEvaluation,
  policy: RobustnessPolicy,
  control: RunControl = {},
): Promise<RobustnessRun> {
  const { table, spec, model } = prep;
  const width = table.columns.length;
  const rowsIdx = sampleRows(table.rows, policy.maxRows, policy.seed);
  const n = rowsIdx.length;
  const key = workKey(['robustness', prep.modelId, table.dataset.sha256, spec, policy]);
  const mask = Float32Array.from(table.columns, (c) => (c.movable ? 1 : 0));
  const bounds = {
    mask: tf.tensor1d(mask),
    lower: tf.tensor1d(table.lower),
    upper: tf.tensor1d(table.upper),
  };
  const fresh = (): State => ({
    overall: policy.epsilons.map(() => emptyCounts()),
    groups: policy.epsilons.map(() => table.groups.map((g) => g.values.map(() => emptyCounts()))),
  });
  let state = fresh();
  let done = 0;
  const resume = resumable(control, key, 'attack');
  if (resume) {
    state = structuredClone(resume.state as State);
    done = resume.rowsDone;
  }
  const resumedFromRow = done;
  const batchRows = control.batchRows ?? 1024;
  let attackMs = 0;
  try {
    while (done < n) {
      await betweenBatches(control.signal);
      const end = Math.min(n, done + batchRows);
      const size = end - done;
      const xs = new Float32Array(size * width);
      const labels = new Int32Array(size);
      for (let i = 0; i < size; i++) {
        const r = rowsIdx[done + i]!;
        xs.set(table.x.subarray(r * width, (r + 1) * width), i * width);
        labels[i] = table.labels[r]!;
      }
      const started = performance.now();
      const x = tf.tensor2d(xs, [size, width]);
      const y = tf.tensor1d(labels, 'int32');
      const clean = predictClasses(model, x, spec.threshold);
      policy.epsilons.forEach((epsilon, e) => {
        const adv = attackBatch(
          model,
          x,
          y,
          { attack: policy.attack, epsilon, steps: policy.steps, stepSize: policy.stepSize },
          bounds,
        );
        const adversarial = predictClasses(model, adv, spec.threshold);
        adv.dispose();
        for (let i = 0; i < size; i++) {
          const r = rowsIdx[done + i]!;
          addCounts(state.overall[e]!, labels[i]!, clean[i]!, adversarial[i]!);
          table.groups.forEach((g, k) =>
            addCounts(state.groups[e]![k]![g.codes[r]!]!, labels[i]!, clean[i]!, adversarial[i]!),
          );
        }
      });
      x.dispose();
      y.dispose();
      attackMs += performance.now() - started;
      done = end;
      // A copy: the SDK may serialise a throttled heartbeat later, when the live counts are further along.
      control.onCheckpoint?.({ key, phase: 'attack', rowsDone: done, rowsTotal: n, state: structuredClone(state) });
    }
  } finally {
    bounds.mask.dispose();
    bounds.lower.dispose();
    bounds.upper.dispose();
  }
  const epsilons: EpsilonResult[] = policy.epsilons.map((epsilon, e) => ({
    epsilon,
    ...robustnessRates(state.overall[e]!),
    groups: Object.fromEntries(
      table.groups.map((g, k) => [
        g.name,
        Object.fromEntries(
          g.values
            .map((v, code) => [v, state.groups[e]![k]![code]!] as const)
            .filter(([, c]) => c.rows > 0)
            .map(([v, c]) => [v, robustnessRates(c)]),
        ),
      ]),
    ),
  }));
  const attacked = n - resumedFromRow;
  return {
    report: {
      attack: policy.attack,
      steps: policy.attack === 'pgd' ? policy.steps : 1,
      ...(policy.attack === 'pgd' && policy.stepSize !== undefined ? { stepSize: policy.stepSize } : {}),
      rows: n,
      datasetRows: table.rows,
      movableColumns: table.columns.filter((c) => c.movable).map((c) => c.feature),
      epsilons,
    },
    throughputRowsPerSecond: attacked > 0 && attackMs > 0 ? (attacked / attackMs) * 1000 : 0,
    resumedFromRow,
  };
}
