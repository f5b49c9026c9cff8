/**
 * The fairness gate's computation with a model: predict every row in batches, add each batch to the confusion counts
 * per group, then report. The counts are the whole state, so a checkpoint is small and a resumed run continues at
 * the first row not yet counted.
 */
import * as tf from '@tensorflow/tfjs';
import type { FairnessPolicy } from './policy';
import { betweenBatches, resumable, workKey, type RunControl } from './control';
import { addRows, emptyGroupCounts, fairnessReport, reportColumns, type FairnessReport } from './fairness-report';
import type { PreparedEvaluation } from './prepare';
import { predictClasses } from './robustness';

export interface FairnessRun {
  report: FairnessReport;
  rows: number;
  /** Rows predicted per second in this attempt (the model's inference throughput on this backend). */
  throughputRowsPerSecond: number;
  /** The first row this attempt computed (0 unless it resumed from a checkpoint). */
  resumedFromRow: number;
}

/** Predicts every row, counts outcomes per group, and reports (see fairnessReport). */
export async function runFairness(
  prep: PreparedEvaluation,
  policy: FairnessPolicy,
  control: RunControl = {},
): Promise<FairnessRun> {
  const { table, spec, model } = prep;
  const columns = reportColumns(table.groups, policy.intersections);
  const key = workKey(['fairness', prep.modelId, table.dataset.sha256, spec, policy]);
  const rowsTotal = table.rows;
  const width = table.columns.length;
  const counts = emptyGroupCounts(columns);
  let row = 0;
  const resume = resumable(control, key, 'predict');
  if (resume) {
    const saved = (resume.state as { counts?: number[][] }).counts;
    if (saved && saved.length === counts.length && saved.every((c, k) => c.length === counts[k]!.length)) {
      saved.forEach((c, k) => counts[k]!.set(c));
      row = resume.rowsDone;
    }
  }
  const resumedFromRow = row;
  const batchRows = control.batchRows ?? 4096;
  const yTrue = new Uint8Array(table.rows);
  for (let r = 0; r < table.rows; r++) yTrue[r] = table.labels[r] === spec.favorableIndex ? 1 : 0;
  const yPred = new Uint8Array(table.rows);
  let predictMs = 0;
  while (row < rowsTotal) {
    await betweenBatches(control.signal);
    const end = Math.min(rowsTotal, row + batchRows);
    const started = performance.now();
    const x = tf.tensor2d(table.x.subarray(row * width, end * width), [end - row, width]);
    const classes = predictClasses(model, x, spec.threshold);
    x.dispose();
    predictMs += performance.now() - started;
    for (let i = 0; i < classes.length; i++) yPred[row + i] = classes[i] === spec.favorableIndex ? 1 : 0;
    addRows(counts, columns, yTrue, yPred, row, end);
    row = end;
    control.onCheckpoint?.({
      key,
      phase: 'predict',
      rowsDone: row,
      rowsTotal,
      state: { counts: counts.map((c) => Array.from(c)) },
    });
  }
  const report = fairnessReport(columns, counts, {
    minGroupSize: policy.minGroupSize,
    intersections: policy.intersections,
    privileged: policy.privileged,
    bootstrap: policy.bootstrap,
    confidence: policy.confidence,
  });
  const predicted = rowsTotal - resumedFromRow;
  return {
    report,
    rows: rowsTotal,
    throughputRowsPerSecond: predicted > 0 && predictMs > 0 ? (predicted / predictMs) * 1000 : 0,
    resumedFromRow,
  };
}
