/**
 * The `drift` metric provider: data drift between the evaluation dataset the release pinned (the reference, read from
 * the artifact store) and the inputs the live model was served since the monitoring window opened (the current data,
 * from the inference log). The same reading and statistics as `mrel drift` (ColumnCollector, compareColumns), so a
 * measurement can be reproduced with the CLI on the same rows; its result is the CLI's JSON shape, bounded.
 */
import type { ArtifactStore } from '../../store/artifact-store';
import type { MeasureInput } from '../../../contract/monitoring';
import { detectFormat } from '../../evaluate/dataset';
import { emptyStats, readInferenceLog, type LogReadStats } from '../inference-log';
import { DEFAULT_DRIFT_POLICY, parseDriftPolicy, type DriftPolicy } from './policy';
import { ColumnCollector, readColumns, type ColumnType } from './read';
import { compareColumns, type ColumnDrift, type DriftReport } from './report';

/** What the drift and bias providers read: the inference log directory and the artifact store. */
export interface MonitorDataDeps {
  /** The worker's MREL_INFERENCE_LOG_DIR; undefined: the measurement says what to set. */
  logDir: string | undefined;
  store: ArtifactStore;
  signal?: AbortSignal;
}

/** What a provider measured: the result the conditions see, a short value, and why it could not conclude. */
export interface ProviderOutcome {
  result: unknown;
  value: string;
  inconclusive?: string;
}

export const DEFAULT_DRIFT_MIN_ROWS = 100;
/** Current rows compared at most per measurement (the first ones of the window): bounds time and memory. */
export const MAX_CURRENT_ROWS = 1_000_000;
/** The result lands in history with the measurement (≤ 8 KiB there): the columns get this much of it. */
const MAX_COLUMNS_JSON = 6000;

type DriftConfig = Extract<MeasureInput['metric']['provider'], { drift: unknown }>['drift'];

/** Measures data drift for one `drift` metric (see the module comment). Throws for what a person must fix. */
export async function measureDrift(input: MeasureInput, deps: MonitorDataDeps): Promise<ProviderOutcome> {
  const { metric } = input;
  if (!('drift' in metric.provider)) throw new Error(`metric ${metric.name} has no drift provider`);
  const config: DriftConfig = metric.provider.drift;
  const dataset = input.baseline?.dataset;
  if (!dataset) {
    throw new Error(
      `metric ${metric.name}: the release pinned no evaluation dataset to compare with; drift needs the request's ` +
        'evaluation.dataset (or remove the drift metric from the monitor policy)',
    );
  }
  const policy = driftPolicyOf(config, metric.name);
  const minRows = config.minRows ?? DEFAULT_DRIFT_MIN_ROWS;
  const logOptions = {
    dir: deps.logDir,
    release: input.labels,
    since: input.windowStart,
    signal: deps.signal,
  };

  // The log names the model's feature columns; the first request of the window tells which (unless the policy does).
  let columns = config.columns;
  if (columns === undefined) {
    for await (const record of readInferenceLog(logOptions, emptyStats())) {
      columns = Object.keys(record.inputs);
      break;
    }
  }
  if (columns === undefined || columns.length === 0) {
    const stats = emptyStats();
    for await (const _ of readInferenceLog(logOptions, stats));
    return {
      result: { rows: { current: 0 }, log: logSummary(stats) },
      value: 'no requests logged since the window opened',
      inconclusive: `no request of ${input.labels.model}@${input.labels.version} in the inference log since ${input.windowStart}`,
    };
  }

  const types = new Map<string, ColumnType>();
  for (const [name, feature] of Object.entries(policy.features)) if (feature.type) types.set(name, feature.type);
  for (const name of config.categorical ?? []) types.set(name, 'categorical');
  const reference = await readColumns(await deps.store.localFile(dataset.sha256), {
    columns,
    types,
    role: 'the evaluation dataset',
    name: `sha256:${dataset.sha256.slice(0, 12)}…`,
    format: detectFormat(dataset.source),
  });
  const names = [...reference.keys()];

  const stats = emptyStats();
  const collector = new ColumnCollector(types);
  let rows = 0;
  let rejectedRows = 0;
  let capped = false;
  for await (const record of readInferenceLog(logOptions, stats)) {
    if (rows + record.rows > MAX_CURRENT_ROWS) {
      capped = true;
      break;
    }
    // A request with a value that does not fit its column is left out whole, so every column sees the same rows.
    if (!names.every((name) => (record.inputs[name] ?? []).every((v) => collector.accepts(name, v)))) {
      rejectedRows += record.rows;
      continue;
    }
    for (const name of names) {
      const values = record.inputs[name];
      if (values) for (const v of values) collector.add(name, v);
    }
    rows += record.rows;
  }
  const log = { ...logSummary(stats), rejectedRows, ...(capped ? { cappedAtRows: rows } : {}) };
  if (rows < minRows) {
    return {
      result: { rows: { reference: reference.get(names[0]!)!.length, current: rows }, log },
      value: `${rows} rows logged since the window opened (need ${minRows})`,
      inconclusive: `only ${rows} rows of ${input.labels.model}@${input.labels.version} logged since ${input.windowStart}; drift needs at least ${minRows} (provider minRows)`,
    };
  }
  const current = collector.finish(names, 'the inference log');
  const report = compareColumns(reference, current, policy);
  const drifted = Object.values(report.columns).filter((c) => c.drifted).length;
  const total = Object.keys(report.columns).length;
  return {
    result: {
      ...boundedReport(report),
      rows: { reference: reference.get(names[0]!)!.length, current: rows },
      log,
    },
    value: `${drifted}/${total} features drifted (${report.driftedShare.toFixed(2)})${report.datasetDrift ? ': dataset drift' : ''}`,
  };
}

/** The provider's per-feature overrides, checked as the policy's `monitor.drift.features` are. */
function driftPolicyOf(config: DriftConfig, metric: string): DriftPolicy {
  if (config.overrides === undefined) return DEFAULT_DRIFT_POLICY;
  return parseDriftPolicy({ drift: { features: config.overrides } }, `metric ${metric} (provider.drift.overrides)`);
}

function logSummary(stats: LogReadStats): Record<string, number> {
  const out: Record<string, number> = { files: stats.files, records: stats.records };
  for (const key of ['unparseable', 'invalid', 'oversized', 'partial', 'otherReleases', 'beforeWindow'] as const) {
    if (stats[key] > 0) out[key] = stats[key];
  }
  return out;
}

/**
 * The report as `mrel drift` prints it while it fits; past MAX_COLUMNS_JSON each column keeps only its decision and
 * statistic, and past that the drifted columns come first and the rest are counted.
 */
export function boundedReport(report: DriftReport): DriftReport & { columnsOmitted?: number } {
  if (JSON.stringify(report.columns).length <= MAX_COLUMNS_JSON) return report;
  const brief = (c: ColumnDrift): ColumnDrift => ({
    type: c.type,
    method: c.method,
    statistic: c.statistic,
    threshold: c.threshold,
    drifted: c.drifted,
    psi: c.psi,
  });
  const entries = Object.entries(report.columns).sort(([, a], [, b]) => Number(b.drifted) - Number(a.drifted));
  const columns: Record<string, ColumnDrift> = {};
  let size = 2;
  let omitted = 0;
  for (const [name, c] of entries) {
    const entry = brief(c);
    const add = JSON.stringify(name).length + JSON.stringify(entry).length + 2;
    if (size + add > MAX_COLUMNS_JSON) omitted++;
    else {
      columns[name] = entry;
      size += add;
    }
  }
  return {
    columns,
    driftedShare: report.driftedShare,
    datasetDrift: report.datasetDrift,
    ...(omitted ? { columnsOmitted: omitted } : {}),
  };
}
