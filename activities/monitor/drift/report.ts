/**
 * Data drift between a reference dataset (what the model was evaluated on) and current data (what it is served),
 * per feature and for the dataset, with Evidently's defaults: numerical features by the two-sample KS test (p < 0.05)
 * up to 1,000 reference rows and the normed Wasserstein distance (≥ 0.1) above; categorical ones by chi-square
 * (p < 0.05) up to 1,000 rows and the Jensen–Shannon distance (≥ 0.1) above; PSI for every feature; dataset drift
 * when at least half the features drifted. The policy's `monitor.drift` can change each.
 */
import { InvalidPolicy } from '../../gate/gate';
import {
  CATEGORICAL_METHODS,
  DEFAULT_DRIFT_POLICY,
  DEFAULT_THRESHOLDS,
  NUMERICAL_METHODS,
  P_VALUE_METHODS,
  SMALL_REFERENCE_ROWS,
  type DriftMethod,
  type DriftPolicy,
} from './policy';
import { readColumns, type CategoricalColumn, type ColumnData, type ColumnType, type NumericalColumn } from './read';
import { chiSquare, jensenShannon, ks2samp, numericalBins, populationStd, psi, wasserstein } from './statistics';

export interface ColumnDrift {
  type: ColumnType;
  method: DriftMethod;
  /** The method's value: a p-value for ks and chisquare, a distance (or PSI) otherwise. */
  statistic: number;
  threshold: number;
  drifted: boolean;
  ks?: { statistic: number; pValue: number };
  wasserstein?: { distance: number; normed: number };
  /** statistic is Infinity (null in JSON) when the current data has a category the reference never had. */
  chiSquare?: { statistic: number; pValue: number };
  jensenShannon?: number;
  psi: number;
}

export interface DriftReport {
  columns: Record<string, ColumnDrift>;
  driftedShare: number;
  datasetDrift: boolean;
}

export interface DriftInput {
  reference: string;
  current: string;
  columns?: readonly string[];
  categorical?: readonly string[];
  policy?: DriftPolicy;
}

/** Reads both files (reference first: it settles each column's type) and compares every column. */
export async function driftReport(input: DriftInput): Promise<DriftReport> {
  const policy = input.policy ?? DEFAULT_DRIFT_POLICY;
  const types = new Map<string, ColumnType>();
  for (const [name, feature] of Object.entries(policy.features)) if (feature.type) types.set(name, feature.type);
  for (const name of input.categorical ?? []) types.set(name, 'categorical');
  const reference = await readColumns(input.reference, { columns: input.columns, types, role: '--reference' });
  const names = [...reference.keys()];
  const current = await readColumns(input.current, { columns: names, types, role: '--current' });
  return compareColumns(reference, current, policy);
}

/** The report over columns already read. */
export function compareColumns(
  reference: Map<string, ColumnData>,
  current: Map<string, ColumnData>,
  policy: DriftPolicy = DEFAULT_DRIFT_POLICY,
): DriftReport {
  const columns: Record<string, ColumnDrift> = {};
  let drifted = 0;
  for (const [name, ref] of reference) {
    const cur = current.get(name)!;
    const result =
      ref.type === 'numerical'
        ? numericalDrift(name, ref, cur as NumericalColumn, policy)
        : categoricalDrift(name, ref, cur as CategoricalColumn, policy);
    columns[name] = result;
    if (result.drifted) drifted++;
  }
  const total = Object.keys(columns).length;
  const driftedShare = total === 0 ? 0 : drifted / total;
  return { columns, driftedShare, datasetDrift: driftedShare >= policy.driftShare };
}

function choose(
  name: string,
  type: ColumnType,
  referenceRows: number,
  policy: DriftPolicy,
): { method: DriftMethod; threshold: number } {
  const feature = policy.features[name] ?? {};
  const byType = policy[type];
  const small = referenceRows <= SMALL_REFERENCE_ROWS;
  const fallback: DriftMethod =
    type === 'numerical' ? (small ? 'ks' : 'wasserstein') : small ? 'chisquare' : 'jensenshannon';
  const method = feature.method ?? byType.method ?? fallback;
  const allowed: readonly DriftMethod[] = type === 'numerical' ? NUMERICAL_METHODS : CATEGORICAL_METHODS;
  if (!allowed.includes(method)) {
    throw new InvalidPolicy('the policy', 'monitor', [
      `monitor.drift.features.${name}.method: ${method} does not apply to the ${type} column ${name} ` +
        `(use ${allowed.join(', ')}, or set type)`,
    ]);
  }
  // A threshold set without a method belongs to the method chosen (Evidently's by size when the policy names none).
  const threshold =
    feature.threshold ?? (feature.method === undefined ? byType.threshold : undefined) ?? DEFAULT_THRESHOLDS[method];
  return { method, threshold };
}

function decide(method: DriftMethod, statistic: number, threshold: number): boolean {
  return P_VALUE_METHODS.includes(method) ? statistic < threshold : statistic >= threshold;
}

function numericalDrift(name: string, ref: NumericalColumn, cur: NumericalColumn, policy: DriftPolicy): ColumnDrift {
  const { method, threshold } = choose(name, 'numerical', ref.length, policy);
  const a = ref.values.sort();
  const b = cur.values.sort();
  const ks = ks2samp(a, b);
  const distance = wasserstein(a, b);
  // Evidently's floor: a constant reference column would otherwise divide by zero.
  const normed = distance / Math.max(populationStd(a), 0.001);
  const bins = numericalBins(a, b);
  const psiValue = psi(bins.ref, bins.cur);
  const statistic = method === 'ks' ? ks.pValue : method === 'wasserstein' ? normed : psiValue;
  return {
    type: 'numerical',
    method,
    statistic,
    threshold,
    drifted: decide(method, statistic, threshold),
    ks,
    wasserstein: { distance, normed },
    psi: psiValue,
  };
}

function categoricalDrift(
  name: string,
  ref: CategoricalColumn,
  cur: CategoricalColumn,
  policy: DriftPolicy,
): ColumnDrift {
  const { method, threshold } = choose(name, 'categorical', ref.length, policy);
  const keys = [...new Set([...ref.counts.keys(), ...cur.counts.keys()])];
  const refCounts = Float64Array.from(keys, (k) => ref.counts.get(k) ?? 0);
  const curCounts = Float64Array.from(keys, (k) => cur.counts.get(k) ?? 0);
  const kNorm = cur.length / ref.length;
  const chi = chiSquare(
    curCounts,
    refCounts.map((c) => c * kNorm),
  );
  const js = jensenShannon(refCounts, curCounts);
  const psiValue = psi(
    refCounts.map((c) => c / ref.length),
    curCounts.map((c) => c / cur.length),
  );
  // One category in both files leaves chi-square without degrees of freedom: nothing can have drifted.
  const pValue = Number.isNaN(chi.pValue) ? 1 : chi.pValue;
  const statistic = method === 'chisquare' ? pValue : method === 'jensenshannon' ? js : psiValue;
  return {
    type: 'categorical',
    method,
    statistic,
    threshold,
    drifted: decide(method, statistic, threshold),
    chiSquare: { statistic: chi.statistic, pValue },
    jensenShannon: js,
    psi: psiValue,
  };
}
