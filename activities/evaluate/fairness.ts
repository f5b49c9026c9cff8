/**
 * Group fairness metrics from confusion counts, with Fairlearn's and AIF360's definitions, and seeded bootstrap
 * confidence intervals. Everything works on counts per (group, outcome) cell: the rows are read once, and a bootstrap
 * resample is a multinomial draw over the cells (the same distribution as resampling rows with replacement, which is
 * what Fairlearn's MetricFrame does), so its cost does not grow with the number of rows.
 */
import { FAIRNESS_METRIC_NAMES } from '../../contract/monitoring';
import { quantileSorted, SeededRandom } from './random';

/** Cells per group in a counts array: true positives, false positives, true negatives, false negatives. */
export const CELLS = 4;
const TP = 0;
const FP = 1;
const TN = 2;
const FN = 3;

/** The per-group figures (Fairlearn's selection_rate, true/false_positive_rate, accuracy_score, precision_score). */
export interface GroupStats {
  count: number;
  selectionRate: number;
  tpr: number;
  fpr: number;
  accuracy: number;
  precision: number;
}

/** Between-group metrics. Differences are max − min over the groups, ratios min / max (Fairlearn "between_groups"). */
export interface BetweenGroupMetrics {
  demographicParityDifference: number;
  demographicParityRatio: number;
  equalOpportunityDifference: number;
  equalOpportunityRatio: number;
  equalizedOddsDifference: number;
  equalizedOddsRatio: number;
  /** AIF360, with a declared privileged group; unprivileged = every other row. */
  statisticalParityDifference?: number;
  disparateImpact?: number;
  averageOddsDifference?: number;
}

export type BetweenGroupMetricName = keyof BetweenGroupMetrics;

/**
 * Every between-group metric, in report order (also the names a policy may bound). The list lives in the contract,
 * where the monitoring window's bias baseline reads the same names from the gate's results.
 */
export const BETWEEN_GROUP_METRICS = FAIRNESS_METRIC_NAMES satisfies readonly BetweenGroupMetricName[];

/**
 * Adds each row's outcome to its group's cell. `yTrue`/`yPred` are 1 for the favorable label. `counts` has
 * CELLS × groups entries and may already hold counts from earlier batches.
 */
export function addConfusionCounts(
  counts: Float64Array,
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  groups: ArrayLike<number>,
  from = 0,
  to = yTrue.length,
): void {
  for (let i = from; i < to; i++) {
    const t = yTrue[i]!;
    const p = yPred[i]!;
    // tp=0, fp=1, tn=2, fn=3
    const cell = p ? (t ? TP : FP) : t ? FN : TN;
    counts[groups[i]! * CELLS + cell]! += 1;
  }
}

/** Per-group figures from counts (Fairlearn's conventions for empty denominators: see rate and sklearnPrecision). */
export function groupStats(counts: ArrayLike<number>, group: number): GroupStats {
  const o = group * CELLS;
  const tp = counts[o + TP]!;
  const fp = counts[o + FP]!;
  const tn = counts[o + TN]!;
  const fn = counts[o + FN]!;
  const n = tp + fp + tn + fn;
  return {
    count: n,
    selectionRate: (tp + fp) / n,
    tpr: rate(tp, fn),
    fpr: rate(fp, tn),
    accuracy: (tp + tn) / n,
    precision: sklearnPrecision(tp, fp),
  };
}

/**
 * A rate normalised by the true class, as Fairlearn computes TPR and FPR (scikit-learn's confusion_matrix with
 * normalize="true", which turns 0/0 into 0): a group without positives has TPR 0, not "undefined".
 */
function rate(hit: number, miss: number): number {
  return hit + miss === 0 ? 0 : hit / (hit + miss);
}

function emptyMetrics(): BetweenGroupMetrics {
  const nan = Number.NaN;
  return {
    demographicParityDifference: nan,
    demographicParityRatio: nan,
    equalOpportunityDifference: nan,
    equalOpportunityRatio: nan,
    equalizedOddsDifference: nan,
    equalizedOddsRatio: nan,
  };
}

/** scikit-learn's precision_score answers 0 (with a warning) when nothing was predicted positive; Fairlearn inherits it. */
function sklearnPrecision(tp: number, fp: number): number {
  return tp + fp === 0 ? 0 : tp / (tp + fp);
}

/**
 * Between-group metrics over `groups` (indexes into counts; groups with too little data are left out by the
 * caller), with the AIF360 metrics when `privileged` (an index into counts) is given.
 */
export function betweenGroupMetrics(
  counts: ArrayLike<number>,
  groups: readonly number[],
  privileged?: number,
): BetweenGroupMetrics {
  // One group has nothing to be compared with: undefined, not a perfect score.
  if (groups.length < 2) return emptyMetrics();
  let selMin = Infinity;
  let selMax = -Infinity;
  let tprMin = Infinity;
  let tprMax = -Infinity;
  let fprMin = Infinity;
  let fprMax = -Infinity;
  for (const g of groups) {
    const o = g * CELLS;
    const tp = counts[o + TP]!;
    const fp = counts[o + FP]!;
    const tn = counts[o + TN]!;
    const fn = counts[o + FN]!;
    const sel = (tp + fp) / (tp + fp + tn + fn);
    const tpr = rate(tp, fn);
    const fpr = rate(fp, tn);
    if (sel < selMin) selMin = sel;
    if (sel > selMax) selMax = sel;
    if (tpr < tprMin) tprMin = tpr;
    if (tpr > tprMax) tprMax = tpr;
    if (fpr < fprMin) fprMin = fpr;
    if (fpr > fprMax) fprMax = fpr;
  }
  const tprDiff = tprMax - tprMin;
  const fprDiff = fprMax - fprMin;
  // Ratios divide like pandas: 0/0 is NaN, x/0 is Infinity.
  const tprRatio = tprMin / tprMax;
  const fprRatio = fprMin / fprMax;
  const result: BetweenGroupMetrics = {
    demographicParityDifference: selMax - selMin,
    demographicParityRatio: selMin / selMax,
    equalOpportunityDifference: tprDiff,
    equalOpportunityRatio: tprRatio,
    equalizedOddsDifference: Math.max(tprDiff, fprDiff),
    equalizedOddsRatio: Math.min(tprRatio, fprRatio),
  };
  if (privileged !== undefined) Object.assign(result, aif360Metrics(counts, groups, privileged));
  return result;
}

/**
 * AIF360's ClassificationMetric with privileged = the declared group and unprivileged = the other (eligible) groups
 * pooled: statistical parity difference P(ŷ=fav|unpriv) − P(ŷ=fav|priv), disparate impact as their ratio, and
 * average odds difference ½[(FPR_u − FPR_p) + (TPR_u − TPR_p)].
 */
function aif360Metrics(
  counts: ArrayLike<number>,
  groups: readonly number[],
  privileged: number,
): Pick<BetweenGroupMetrics, 'statisticalParityDifference' | 'disparateImpact' | 'averageOddsDifference'> {
  const u = [0, 0, 0, 0];
  for (const g of groups) {
    if (g === privileged) continue;
    for (let c = 0; c < CELLS; c++) u[c]! += counts[g * CELLS + c]!;
  }
  const o = privileged * CELLS;
  const p = [counts[o + TP]!, counts[o + FP]!, counts[o + TN]!, counts[o + FN]!];
  const rates = (k: number[]) => {
    const [tp, fp, tn, fn] = k as [number, number, number, number];
    return { sel: (tp + fp) / (tp + fp + tn + fn), tpr: tp / (tp + fn), fpr: fp / (fp + tn) };
  };
  const ru = rates(u);
  const rp = rates(p);
  return {
    statisticalParityDifference: ru.sel - rp.sel,
    disparateImpact: ru.sel / rp.sel,
    averageOddsDifference: 0.5 * (ru.fpr - rp.fpr + (ru.tpr - rp.tpr)),
  };
}

export interface BootstrapOptions {
  resamples: number;
  seed: number;
  /** Two-sided confidence level, e.g. 0.95 → the 2.5 % and 97.5 % quantiles. */
  confidence: number;
}

/** A percentile bootstrap interval; `undefinedResamples` counts resamples in which the metric had no value. */
export interface ConfidenceInterval {
  lower: number;
  upper: number;
  undefinedResamples: number;
}

/**
 * Percentile bootstrap intervals for every between-group metric: each resample draws the same number of rows with
 * replacement (a multinomial over all cells of all groups, so group sizes vary as they would), recomputes the
 * metrics, and the interval is the pair of quantiles. Deterministic for a seed.
 */
export function bootstrapIntervals(
  counts: ArrayLike<number>,
  groups: readonly number[],
  privileged: number | undefined,
  options: BootstrapOptions,
): Partial<Record<BetweenGroupMetricName, ConfidenceInterval>> {
  const { resamples } = options;
  if (resamples <= 0 || groups.length < 2) return {};
  // Resample only the eligible groups' rows: the metrics never look at the others.
  const cells = groups.length * CELLS;
  const probs = new Float64Array(cells);
  let total = 0;
  groups.forEach((g, i) => {
    for (let c = 0; c < CELLS; c++) {
      probs[i * CELLS + c] = counts[g * CELLS + c]!;
      total += counts[g * CELLS + c]!;
    }
  });
  for (let i = 0; i < cells; i++) probs[i]! /= total;
  const local = groups.map((_, i) => i);
  const localPrivileged = privileged === undefined ? undefined : groups.indexOf(privileged);
  const names = BETWEEN_GROUP_METRICS.filter(
    (m) =>
      privileged !== undefined ||
      !['statisticalParityDifference', 'disparateImpact', 'averageOddsDifference'].includes(m),
  );
  const samples = names.map(() => new Float64Array(resamples));
  const rng = new SeededRandom(options.seed);
  const draw = new Float64Array(cells);
  for (let b = 0; b < resamples; b++) {
    rng.multinomial(total, probs, draw);
    const m = betweenGroupMetrics(draw, local, localPrivileged);
    names.forEach((name, i) => {
      samples[i]![b] = m[name] ?? Number.NaN;
    });
  }
  const alpha = (1 - options.confidence) / 2;
  const out: Partial<Record<BetweenGroupMetricName, ConfidenceInterval>> = {};
  names.forEach((name, i) => {
    const finite = samples[i]!.filter((v) => Number.isFinite(v)).sort();
    out[name] = {
      lower: quantileSorted(finite, alpha),
      upper: quantileSorted(finite, 1 - alpha),
      undefinedResamples: resamples - finite.length,
    };
  });
  return out;
}
