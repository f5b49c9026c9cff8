/**
 * The explain gate's computation on a seeded sample of rows: gradient attributions (batch by batch), permutation
 * importance (feature by feature), and how strongly each feature predicts each protected attribute.
 */
import * as tf from '@tensorflow/tfjs';
import type { ExplainabilityPolicy } from './policy';
import { betweenBatches, resumable, workKey, type RunControl } from './control';
import { attributionBatch, permutation, permutedAccuracy, proxyStrength, type AttributionMethod } from './explain';
import type { PreparedEvaluation } from './prepare';
import { SeededRandom } from './random';
import { predictClasses } from './robustness';
import { sampleRows } from './run-robustness';

/** A feature with less than this share of the attributions is not ranked. */
const MIN_ATTRIBUTION_SHARE = 0.01;

export interface FeatureExplanation {
  feature: string;
  /** Share of the total mean |attribution| (sums to 1 over the features). */
  attribution: number;
  /** Mean accuracy lost when the feature's values are shuffled, and its standard deviation over the repeats. */
  permutationImportance: number;
  permutationStd: number;
  protected: boolean;
  /** The protected attribute this feature predicts best, when its AUC reaches the policy's proxy threshold. */
  proxyOf?: { attribute: string; auc: number };
  /** Best one-vs-rest AUC of this feature for each protected attribute it is not. */
  proxyAuc: Record<string, number>;
}

export interface ExplainReport {
  method: AttributionMethod;
  rows: number;
  baselineAccuracy: number;
  features: FeatureExplanation[];
  topByAttribution: string[];
  topByPermutation: string[];
}

export interface ExplainRun {
  report: ExplainReport;
  throughputRowsPerSecond: number;
  resumedFromRow: number;
}

export async function runExplain(
  prep: PreparedEvaluation,
  policy: ExplainabilityPolicy,
  control: RunControl = {},
): Promise<ExplainRun> {
  const { table, spec, model } = prep;
  const width = table.columns.length;
  const rowsIdx = sampleRows(table.rows, policy.maxRows, policy.seed);
  const n = rowsIdx.length;
  const x = new Float32Array(n * width);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = rowsIdx[i]!;
    x.set(table.x.subarray(r * width, (r + 1) * width), i * width);
    labels[i] = table.labels[r]!;
  }
  const key = workKey(['explain', prep.modelId, table.dataset.sha256, spec, policy]);
  const features = spec.features.map((f) => ({
    name: f.name,
    columns: table.columns.flatMap((c, j) => (c.feature === f.name ? [j] : [])),
  }));
  const baseline = new Float32Array(width);
  for (let i = 0; i < n; i++) for (let c = 0; c < width; c++) baseline[c]! += x[i * width + c]! / n;

  // Phase 1: attributions, resumable by rows.
  let sums = new Float64Array(width);
  let done = 0;
  const resumeAttr = resumable(control, key, 'attribution');
  const resumePerm = resumable(control, key, 'permutation');
  if (resumeAttr) {
    sums = Float64Array.from((resumeAttr.state as { sums: number[] }).sums);
    done = resumeAttr.rowsDone;
  } else if (resumePerm) {
    sums = Float64Array.from((resumePerm.state as { sums: number[] }).sums);
    done = n;
  }
  const resumedFromRow = done;
  const batchRows = control.batchRows ?? 256;
  const baselineTensor = tf.tensor1d(baseline);
  let attrMs = 0;
  try {
    while (done < n) {
      await betweenBatches(control.signal);
      const end = Math.min(n, done + batchRows);
      const started = performance.now();
      const xb = tf.tensor2d(x.subarray(done * width, end * width), [end - done, width]);
      const s = attributionBatch(model, xb, baselineTensor, spec.favorableIndex, policy.method, policy.steps);
      xb.dispose();
      attrMs += performance.now() - started;
      for (let c = 0; c < width; c++) sums[c]! += s[c]!;
      done = end;
      control.onCheckpoint?.({
        key,
        phase: 'attribution',
        rowsDone: done,
        rowsTotal: n,
        state: { sums: Array.from(sums) },
      });
    }
  } finally {
    baselineTensor.dispose();
  }

  // Phase 2: permutation importance, resumable by features.
  const predict = (input: Float32Array, rows: number): Uint8Array => {
    const out = new Uint8Array(rows);
    for (let from = 0; from < rows; from += 4096) {
      const to = Math.min(rows, from + 4096);
      const t = tf.tensor2d(input.subarray(from * width, to * width), [to - from, width]);
      out.set(predictClasses(model, t, spec.threshold), from);
      t.dispose();
    }
    return out;
  };
  const clean = predict(x, n);
  let correct = 0;
  for (let i = 0; i < n; i++) if (clean[i] === labels[i]) correct++;
  const baselineAccuracy = correct / n;
  let drops: number[][] = [];
  if (resumePerm) drops = structuredClone((resumePerm.state as { drops: number[][] }).drops);
  for (let f = drops.length; f < features.length; f++) {
    await betweenBatches(control.signal);
    const feature = features[f]!;
    const perFeature: number[] = [];
    for (let rep = 0; rep < policy.permutationRepeats; rep++) {
      // A seed per (feature, repeat): a resumed run permutes exactly as the first attempt would have.
      const rng = new SeededRandom(policy.seed + 7919 * (f + 1) + rep);
      const acc = permutedAccuracy(predict, x, width, labels, feature.columns, permutation(n, rng));
      perFeature.push(baselineAccuracy - acc);
    }
    drops.push(perFeature);
    control.onCheckpoint?.({
      key,
      phase: 'permutation',
      rowsDone: drops.length,
      rowsTotal: features.length,
      state: { sums: Array.from(sums), drops: structuredClone(drops) },
    });
  }

  // Proxies: how well each feature alone separates the groups of each protected attribute.
  const groupCodes = table.groups.map((g) => ({
    name: g.name,
    groups: g.values.length,
    codes: Int32Array.from(rowsIdx, (r) => g.codes[r]!),
  }));
  const total = sums.reduce((a, b) => a + b, 0);
  const explanations: FeatureExplanation[] = features.map((feature, f) => {
    const share = feature.columns.reduce((a, c) => a + sums[c]!, 0) / (total || 1);
    const d = drops[f]!;
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
    const isProtected = prep.protectedAttributes.includes(feature.name);
    const proxyAuc: Record<string, number> = {};
    let proxyOf: FeatureExplanation['proxyOf'];
    for (const g of groupCodes) {
      if (g.name === feature.name || g.groups < 2) continue;
      const auc = proxyStrength(x, width, feature.columns, g.codes, g.groups);
      proxyAuc[g.name] = auc;
      if (auc >= policy.proxyThreshold && (!proxyOf || auc > proxyOf.auc)) proxyOf = { attribute: g.name, auc };
    }
    return {
      feature: feature.name,
      attribution: share,
      permutationImportance: mean,
      permutationStd: std,
      protected: isProtected,
      ...(proxyOf && !isProtected ? { proxyOf } : {}),
      proxyAuc,
    };
  });
  // Only features that matter at all are ranked: with few features, an unused one would otherwise be "top k".
  const by = (k: 'attribution' | 'permutationImportance', floor: number) =>
    explanations
      .filter((e) => e[k] > floor)
      .sort((a, b) => b[k] - a[k] || a.feature.localeCompare(b.feature))
      .map((e) => e.feature);
  const attributed = n - resumedFromRow;
  return {
    report: {
      method: policy.method,
      rows: n,
      baselineAccuracy,
      features: explanations,
      topByAttribution: by('attribution', MIN_ATTRIBUTION_SHARE),
      topByPermutation: by('permutationImportance', 0),
    },
    throughputRowsPerSecond: attributed > 0 && attrMs > 0 ? (attributed / attrMs) * 1000 : 0,
    resumedFromRow,
  };
}
