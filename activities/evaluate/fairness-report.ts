/**
 * The fairness report of one dataset: per protected attribute (and intersection), each group's figures, the
 * between-group metrics over the groups with enough data, and their bootstrap intervals. The shape is what
 * `mrel fairness --format json` prints and what the fairness gate stores as evidence.
 */
import {
  addConfusionCounts,
  betweenGroupMetrics,
  bootstrapIntervals,
  CELLS,
  groupStats,
  type BetweenGroupMetricName,
  type BetweenGroupMetrics,
  type ConfidenceInterval,
  type GroupStats,
} from './fairness';
import { valueKey } from './dataset';
import { EvaluationError } from './errors';
import { intersect, type GroupColumn } from './table';

export interface AttributeReport extends BetweenGroupMetrics {
  groups: Record<string, GroupStats>;
  /** The privileged group the AIF360 metrics compare against. */
  privileged?: string;
  /** Groups with fewer rows than the minimum: reported, but left out of the between-group metrics. */
  insufficientGroups: string[];
  ci: Partial<Record<BetweenGroupMetricName, ConfidenceInterval>>;
  bootstrap: { resamples: number; seed: number; confidence: number };
}

export interface FairnessReport {
  attributes: Record<string, AttributeReport>;
}

export interface FairnessOptions {
  minGroupSize: number;
  intersections: boolean;
  /** Privileged value per attribute name. */
  privileged: Record<string, string | number>;
  bootstrap: { resamples: number; seed: number };
  confidence: number;
}

/** The group columns a report covers: each protected attribute, plus their intersection when asked and useful. */
export function reportColumns(groups: GroupColumn[], intersections: boolean): GroupColumn[] {
  return intersections && groups.length >= 2 ? [...groups, intersect(groups)] : groups;
}

/** Empty counts for each column (CELLS per group). */
export function emptyGroupCounts(columns: GroupColumn[]): Float64Array[] {
  return columns.map((c) => new Float64Array(c.values.length * CELLS));
}

/** Adds rows [from, to) to every column's counts. */
export function addRows(
  counts: Float64Array[],
  columns: GroupColumn[],
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  from: number,
  to: number,
): void {
  columns.forEach((c, k) => addConfusionCounts(counts[k]!, yTrue, yPred, c.codes, from, to));
}

/** The report from finished counts. */
export function fairnessReport(
  columns: GroupColumn[],
  counts: Float64Array[],
  options: FairnessOptions,
): FairnessReport {
  const attributes: Record<string, AttributeReport> = {};
  columns.forEach((column, k) => {
    const c = counts[k]!;
    const groups: Record<string, GroupStats> = {};
    const eligible: number[] = [];
    const insufficientGroups: string[] = [];
    column.values.forEach((value, g) => {
      const stats = groupStats(c, g);
      groups[value] = stats;
      if (stats.count >= options.minGroupSize) eligible.push(g);
      else insufficientGroups.push(value);
    });
    const privilegedValue = options.privileged[column.name];
    let privileged: number | undefined;
    if (privilegedValue !== undefined) {
      const key = valueKey(privilegedValue);
      privileged = column.values.indexOf(key);
      if (privileged === -1) {
        throw new EvaluationError(
          'InvalidEvaluationConfig',
          `privileged: ${column.name}=${key} does not occur in the data (${describeValues(column.values)})`,
        );
      }
      // A privileged group with too little data cannot anchor the AIF360 metrics: they stay undefined.
      if (!eligible.includes(privileged)) privileged = undefined;
    }
    const metrics = betweenGroupMetrics(c, eligible, privileged);
    const ci = bootstrapIntervals(c, eligible, privileged, {
      resamples: options.bootstrap.resamples,
      seed: options.bootstrap.seed,
      confidence: options.confidence,
    });
    attributes[column.name] = {
      groups,
      ...metrics,
      ...(privilegedValue !== undefined
        ? {
            privileged: valueKey(privilegedValue),
            statisticalParityDifference: metrics.statisticalParityDifference ?? Number.NaN,
            disparateImpact: metrics.disparateImpact ?? Number.NaN,
            averageOddsDifference: metrics.averageOddsDifference ?? Number.NaN,
          }
        : {}),
      insufficientGroups,
      ci,
      bootstrap: {
        resamples: options.bootstrap.resamples,
        seed: options.bootstrap.seed,
        confidence: options.confidence,
      },
    };
  });
  return { attributes };
}

/** The column's values for a message, when they read as category names; otherwise only how many there are. */
function describeValues(values: readonly string[]): string {
  if (values.length <= 50 && values.every((v) => /^[A-Za-z0-9_ .+-]{1,64}$/.test(v)))
    return `values: ${values.join(', ')}`;
  return `${values.length} distinct values`;
}
