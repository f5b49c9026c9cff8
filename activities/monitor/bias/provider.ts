/**
 * The `bias` metric provider: how the live model treats the protected groups, against what the evaluation found.
 *
 * From the predictions alone (every logged request that carried its group columns): the selection rate (share of
 * the favorable class) per group and the demographic parity difference and ratio between groups. Where feedback
 * (the true labels) was posted for enough rows of each group, also the fairness gate's label-based metrics (equal
 * opportunity, equalized odds). Both through the fairness gate's own code (activities/evaluate/fairness.ts), with
 * its seeded bootstrap intervals. A metric breaches when it moved by more than the release's bias-drift threshold
 * from the evaluation's value.
 *
 * Groups with fewer than minRows rows are left out of the between-group metrics, as the gate leaves them out; when
 * fewer than two groups of a protected attribute are left, the measurement is inconclusive.
 */
import type { EvaluationBaseline, MeasureInput } from '../../../contract/monitoring';
import { valueKey } from '../../evaluate/dataset';
import {
  addConfusionCounts,
  betweenGroupMetrics,
  bootstrapIntervals,
  CELLS,
  groupStats,
  type BetweenGroupMetricName,
  type BetweenGroupMetrics,
} from '../../evaluate/fairness';
import type { MonitorDataDeps, ProviderOutcome } from '../drift/provider';
import { readInferenceLog, emptyStats } from '../inference-log';
import { FAIRNESS_METRIC_NAMES } from '../../../contract/monitoring';

export const DEFAULT_BIAS_MIN_ROWS = 30;
export const DEFAULT_BIAS_RESAMPLES = 1000;
export const DEFAULT_BIAS_CONFIDENCE = 0.95;
/** The fairness policy's default seed: the same rows give the same interval on every measurement and replay. */
export const BIAS_BOOTSTRAP_SEED = 20240601;
const MAX_RESAMPLES = 10_000;
/** Distinct values per attribute counted; rows of further values are counted as left out. */
const MAX_GROUPS = 256;
/** Groups listed in the result (the largest first). */
const MAX_LISTED_GROUPS = 32;
/** Group values shown as they are only when they read as category names; others by their position. */
const PLAIN_VALUE = /^[A-Za-z0-9_ .+&-]{1,129}$/;

/** Metrics computed from predictions alone; the others need the true labels. */
const PREDICTION_METRICS: readonly BetweenGroupMetricName[] = ['demographicParityDifference', 'demographicParityRatio'];
/** AIF360's metrics need the privileged group, which the gate's result does not record: never compared live. */
const LABEL_METRICS: readonly BetweenGroupMetricName[] = [
  'equalOpportunityDifference',
  'equalOpportunityRatio',
  'equalizedOddsDifference',
  'equalizedOddsRatio',
];

export interface BiasMetricResult {
  /** The evaluation's value (null when the gate did not record it: then it is reported, not compared). */
  evaluation: number | null;
  live: number | null;
  delta: number | null;
  interval: [number, number] | null;
  breached: boolean;
  /** What the live value is computed from, and over how many rows. */
  basis: 'predictions' | 'feedback';
  rows: number;
  note?: string;
}

export interface BiasGroupResult {
  rows: number;
  selectionRate: number;
  labelledRows: number;
  evaluation?: number;
  delta?: number;
  breached?: boolean;
}

export interface BiasResult {
  metrics: Record<string, BiasMetricResult>;
  groups: Record<string, BiasGroupResult>;
  groupsOmitted?: number;
  rows: number;
  labelledRows: number;
  /** Rows of requests that did not carry a protected attribute, per attribute. */
  rowsWithoutGroups?: Record<string, number>;
  threshold: number;
  breached: boolean;
  minRows: number;
  bootstrap: { resamples: number; seed: number; confidence: number };
  log: Record<string, number>;
}

type BiasConfig = Extract<MeasureInput['metric']['provider'], { bias: unknown }>['bias'];

/** Per attribute: value → group index, and the counts of all rows (predictions) and of labelled rows. */
interface AttributeCounts {
  name: string;
  /** The attributes an intersection is made of (undefined for a single attribute). */
  parts?: string[];
  index: Map<string, number>;
  values: string[];
  predicted: Float64Array;
  labelled: Float64Array;
  rowsLeftOut: number;
  rowsWithout: number;
}

/** Measures bias drift for one `bias` metric (see the module comment). Throws for what a person must fix. */
export async function measureBias(
  input: MeasureInput,
  deps: Pick<MonitorDataDeps, 'logDir' | 'signal'>,
): Promise<ProviderOutcome> {
  const { metric } = input;
  if (!('bias' in metric.provider)) throw new Error(`metric ${metric.name} has no bias provider`);
  const config: BiasConfig = metric.provider.bias;
  const baseline = input.baseline;
  if (!baseline || baseline.protected.length === 0 || baseline.favorable === undefined) {
    throw new Error(
      `metric ${metric.name}: the release has no evaluation with protected attributes and a favorable class to ` +
        'compare with; bias drift needs the request’s evaluation block (or remove the bias metric)',
    );
  }
  const wanted = metricNames(config, metric.name);
  const minRows = config.minRows ?? DEFAULT_BIAS_MIN_ROWS;
  const resamples = Math.min(config.resamples ?? DEFAULT_BIAS_RESAMPLES, MAX_RESAMPLES);
  const confidence = config.confidence ?? DEFAULT_BIAS_CONFIDENCE;
  const favorable = valueKey(baseline.favorable);
  const attributes = attributesOf(baseline);

  const stats = emptyStats();
  let rows = 0;
  let labelledRows = 0;
  const log = readInferenceLog(
    { dir: deps.logDir, release: input.labels, since: input.windowStart, feedback: true, signal: deps.signal },
    stats,
  );
  for await (const record of log) {
    const yPred = new Uint8Array(record.rows);
    for (let i = 0; i < record.rows; i++) yPred[i] = isFavorable(record.predictions[i], favorable) ? 1 : 0;
    let yTrue: Uint8Array | undefined;
    if (record.labels) {
      yTrue = new Uint8Array(record.rows);
      for (let i = 0; i < record.rows; i++) yTrue[i] = isFavorable(record.labels[i], favorable) ? 1 : 0;
      labelledRows += record.rows;
    }
    rows += record.rows;
    const none = new Uint8Array(record.rows);
    for (const a of attributes) {
      const codes = groupCodes(a, record);
      if (!codes) {
        a.rowsWithout += record.rows;
        continue;
      }
      // Every row counted as "truly unfavorable": only the selection cells (FP + TN) are read from these counts.
      addCounted(a, 'predicted', none, yPred, codes);
      if (yTrue) addCounted(a, 'labelled', yTrue, yPred, codes);
    }
  }

  const threshold = baseline.biasDriftThreshold;
  const bootstrap = { resamples, seed: BIAS_BOOTSTRAP_SEED, confidence };
  const metrics: Record<string, BiasMetricResult> = {};
  const groups: [string, BiasGroupResult][] = [];
  const thin: string[] = [];
  for (const a of attributes) {
    const eligible = eligibleGroups(a.predicted, a.values.length, minRows);
    const labelledEligible = eligibleGroups(a.labelled, a.values.length, minRows);
    if (!a.parts && eligible.length < 2) thin.push(describeThin(a, minRows));
    const live = eligible.length >= 2 ? betweenGroupMetrics(a.predicted, eligible) : undefined;
    const liveCi = live ? bootstrapIntervals(a.predicted, eligible, undefined, bootstrap) : {};
    const labelled = labelledEligible.length >= 2 ? betweenGroupMetrics(a.labelled, labelledEligible) : undefined;
    const labelledCi = labelled ? bootstrapIntervals(a.labelled, labelledEligible, undefined, bootstrap) : {};
    const predictedRows = sumRows(a.predicted, eligible);
    const labelledCount = sumRows(a.labelled, labelledEligible);
    for (const name of wanted) {
      const key = `${a.name}.${name}`;
      const evaluation = baseline.fairness[key];
      // An intersection is compared only where the evaluation compared it; the default list only what it recorded.
      if (evaluation === undefined && (a.parts || !PREDICTION_METRICS.includes(name))) continue;
      const fromPredictions = PREDICTION_METRICS.includes(name);
      const source: BetweenGroupMetrics | undefined = fromPredictions ? live : labelled;
      const ci = (fromPredictions ? liveCi : labelledCi)[name];
      metrics[key] = compare(evaluation, source?.[name], ci && [ci.lower, ci.upper], threshold, {
        basis: fromPredictions ? 'predictions' : 'feedback',
        rows: fromPredictions ? predictedRows : labelledCount,
        missing: fromPredictions
          ? `fewer than two groups with ${minRows} rows`
          : `fewer than two groups with ${minRows} labelled rows (feedback)`,
      });
    }
    a.values.forEach((value, g) => {
      const s = groupStats(a.predicted, g);
      const labelledCountOfGroup = groupStats(a.labelled, g).count;
      const shown = PLAIN_VALUE.test(value) ? value : `#${g + 1}`;
      const key = `${a.name}=${shown}`;
      const entry: BiasGroupResult = {
        rows: s.count,
        selectionRate: s.selectionRate,
        labelledRows: labelledCountOfGroup,
      };
      const evaluation = baseline.selectionRates?.[`${a.name}=${value}`];
      if (evaluation !== undefined && s.count >= minRows) {
        entry.evaluation = evaluation;
        entry.delta = s.selectionRate - evaluation;
        entry.breached = Math.abs(entry.delta) > threshold;
      }
      groups.push([key, entry]);
    });
  }
  groups.sort(([, x], [, y]) => y.rows - x.rows);
  const listed = groups.slice(0, MAX_LISTED_GROUPS);
  const breached = Object.values(metrics).some((m) => m.breached) || listed.some(([, g]) => g.breached === true);
  const without = Object.fromEntries(attributes.filter((a) => a.rowsWithout > 0).map((a) => [a.name, a.rowsWithout]));
  const result: BiasResult = {
    metrics,
    groups: Object.fromEntries(listed),
    ...(groups.length > listed.length ? { groupsOmitted: groups.length - listed.length } : {}),
    rows,
    labelledRows,
    ...(Object.keys(without).length > 0 ? { rowsWithoutGroups: without } : {}),
    threshold,
    breached,
    minRows,
    bootstrap,
    log: logSummary(stats),
  };
  if (thin.length > 0) {
    return {
      result: { ...result, breached: false },
      value: `too few rows per group (${rows} rows since the window opened)`,
      inconclusive: `too few rows per group to compare (minRows ${minRows}): ${thin.join('; ')}`.slice(0, 480),
    };
  }
  return { result, value: oneLine(result) };
}

function metricNames(config: BiasConfig, metric: string): BetweenGroupMetricName[] {
  if (config.metrics === undefined) return [...PREDICTION_METRICS, ...LABEL_METRICS];
  const known: readonly string[] = [...PREDICTION_METRICS, ...LABEL_METRICS];
  const unknown = config.metrics.filter((m) => !known.includes(m));
  if (unknown.length > 0) {
    const aif = unknown.filter((m) => (FAIRNESS_METRIC_NAMES as readonly string[]).includes(m));
    throw new Error(
      `metric ${metric}: provider.bias.metrics: ${unknown.join(', ')} cannot be measured live` +
        (aif.length > 0
          ? ' (AIF360 metrics need the privileged group, which the evaluation result does not carry)'
          : '') +
        `; use ${known.join(', ')}`,
    );
  }
  return config.metrics as BetweenGroupMetricName[];
}

function attributesOf(baseline: EvaluationBaseline): AttributeCounts[] {
  const make = (name: string, parts?: string[]): AttributeCounts => ({
    name,
    ...(parts ? { parts } : {}),
    index: new Map(),
    values: [],
    predicted: new Float64Array(8 * CELLS),
    labelled: new Float64Array(8 * CELLS),
    rowsLeftOut: 0,
    rowsWithout: 0,
  });
  const attributes = baseline.protected.map((name) => make(name));
  // The gate also compares the intersection of the protected attributes (named a&b); so does production, then.
  const joined = baseline.protected.join('&');
  if (baseline.protected.length >= 2 && Object.keys(baseline.fairness).some((k) => k.startsWith(`${joined}.`))) {
    attributes.push(make(joined, [...baseline.protected]));
  }
  return attributes;
}

function isFavorable(value: unknown, favorable: string): boolean {
  return (
    (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') &&
    valueKey(value) === favorable
  );
}

function groupColumn(record: { groups?: Record<string, unknown[]>; inputs: Record<string, unknown[]> }, name: string) {
  return record.groups?.[name] ?? record.inputs[name];
}

/** Each row's group index in `a` (rows of a group beyond MAX_GROUPS get −1), or undefined without the columns. */
function groupCodes(
  a: AttributeCounts,
  record: { rows: number; groups?: Record<string, unknown[]>; inputs: Record<string, unknown[]> },
): Int32Array | undefined {
  const columns = (a.parts ?? [a.name]).map((p) => groupColumn(record, p));
  if (columns.some((c) => c === undefined)) return undefined;
  const codes = new Int32Array(record.rows);
  for (let i = 0; i < record.rows; i++) {
    const parts: string[] = [];
    let missing = false;
    for (const c of columns) {
      const v = c![i];
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        missing = true;
        break;
      }
      parts.push(valueKey(v));
    }
    const key = parts.join('&');
    let code = missing ? -1 : a.index.get(key);
    if (code === undefined) {
      if (a.values.length >= MAX_GROUPS) code = -1;
      else {
        code = a.values.length;
        a.index.set(key, code);
        a.values.push(key);
        if (a.predicted.length < a.values.length * CELLS) {
          a.predicted = grown(a.predicted);
          a.labelled = grown(a.labelled);
        }
      }
    }
    codes[i] = code;
  }
  return codes;
}

function grown(counts: Float64Array): Float64Array {
  const next = new Float64Array(counts.length * 2);
  next.set(counts);
  return next;
}

/** addConfusionCounts over the rows with a group (rows without one are counted as left out). */
function addCounted(
  a: AttributeCounts,
  which: 'predicted' | 'labelled',
  yTrue: Uint8Array,
  yPred: Uint8Array,
  codes: Int32Array,
): void {
  if (codes.every((c) => c >= 0)) {
    addConfusionCounts(a[which], yTrue, yPred, codes);
    return;
  }
  for (let i = 0; i < codes.length; i++) {
    if (codes[i]! < 0) {
      if (which === 'predicted') a.rowsLeftOut++;
      continue;
    }
    addConfusionCounts(a[which], yTrue, yPred, codes, i, i + 1);
  }
}

function eligibleGroups(counts: Float64Array, groups: number, minRows: number): number[] {
  const out: number[] = [];
  for (let g = 0; g < groups; g++) if (groupStats(counts, g).count >= minRows) out.push(g);
  return out;
}

function sumRows(counts: Float64Array, groups: number[]): number {
  return groups.reduce((sum, g) => sum + groupStats(counts, g).count, 0);
}

function compare(
  evaluation: number | undefined,
  live: number | undefined,
  interval: [number, number] | undefined,
  threshold: number,
  how: { basis: 'predictions' | 'feedback'; rows: number; missing: string },
): BiasMetricResult {
  const liveValue = live !== undefined && Number.isFinite(live) ? live : null;
  const evaluationValue = evaluation ?? null;
  const delta = liveValue !== null && evaluationValue !== null ? liveValue - evaluationValue : null;
  const finiteInterval = interval && Number.isFinite(interval[0]) && Number.isFinite(interval[1]) ? interval : null;
  return {
    evaluation: evaluationValue,
    live: liveValue,
    delta,
    interval: finiteInterval,
    breached: delta !== null && Math.abs(delta) > threshold,
    basis: how.basis,
    rows: how.rows,
    ...(liveValue === null ? { note: live === undefined ? how.missing : 'undefined for these groups' } : {}),
    ...(liveValue !== null && evaluationValue === null ? { note: 'the evaluation did not record it' } : {}),
  };
}

function describeThin(a: AttributeCounts, minRows: number): string {
  const sizes = a.values
    .map((value, g) => [PLAIN_VALUE.test(value) ? value : `#${g + 1}`, groupStats(a.predicted, g).count] as const)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 5)
    .map(([value, n]) => `${value} ${n}`);
  const eligible = a.values.filter((_, g) => groupStats(a.predicted, g).count >= minRows).length;
  return `${a.name} has ${eligible} group(s) with ≥ ${minRows} rows${sizes.length > 0 ? ` (${sizes.join(', ')})` : ' (no rows carried it)'}`;
}

function logSummary(stats: ReturnType<typeof emptyStats>): Record<string, number> {
  const f = stats.feedback;
  const out: Record<string, number> = { files: stats.files, records: stats.records, feedbackMatched: f.matched };
  const extra: Record<string, number> = {
    unparseable: stats.unparseable,
    invalid: stats.invalid,
    oversized: stats.oversized,
    feedbackUnmatched: f.unmatched,
    feedbackMismatched: f.mismatched,
    feedbackDropped: f.dropped,
    feedbackUnparseable: f.unparseable + f.invalid + f.oversized,
  };
  for (const [k, v] of Object.entries(extra)) if (v > 0) out[k] = v;
  return out;
}

const r3 = (v: number): string => (Math.round(v * 1000) / 1000).toString();

/** One line for tables: the breaches, or how many metrics stayed within the threshold. */
function oneLine(result: BiasResult): string {
  const moved = Object.entries(result.metrics).filter(([, m]) => m.breached);
  if (moved.length > 0) {
    const [name, m] = moved[0]!;
    const more = moved.length > 1 ? ` (+${moved.length - 1} more)` : '';
    return `bias drift: ${name} ${r3(m.evaluation!)} → ${r3(m.live!)} (Δ ${r3(m.delta!)} > ${result.threshold})${more}`.slice(
      0,
      200,
    );
  }
  const groupMoved = Object.entries(result.groups).find(([, g]) => g.breached);
  if (groupMoved) {
    const [name, g] = groupMoved;
    return `bias drift: selection rate ${name} ${r3(g.evaluation!)} → ${r3(g.selectionRate)} (> ${result.threshold})`.slice(
      0,
      200,
    );
  }
  const compared = Object.values(result.metrics).filter((m) => m.delta !== null).length;
  return `within ${result.threshold} of evaluation on ${compared} metric(s) (${result.rows} rows, ${result.labelledRows} labelled)`;
}
