/**
 * Traffic and utilization histories: CSV files of timestamped request counts or rates, and Prometheus range queries
 * (`/api/v1/query_range`), both turned into regular series for the forecast. Network failures and 5xx are
 * SourceUnavailableError (transient); a bad query, a 4xx or unusable data is CostError('InvalidHistory').
 */
import { CostError, SourceUnavailableError } from './errors';
import type { Series } from './forecast';

/** One labelled series of (time, value) points as read, before resampling. */
export interface RawSeries {
  labels: Record<string, string>;
  /** Sorted by time. */
  points: { t: number; v: number }[];
  /** `count`: requests in the interval ending at t; `rate`: requests per second at t. */
  kind: 'count' | 'rate';
}

const RATE_COLUMNS = ['requests_per_second', 'rps', 'rate', 'value'];
const COUNT_COLUMNS = ['requests', 'count', 'request_count'];
/** Columns that label a series (the sprawl report's utilization CSV has one series per model and environment). */
const LABEL_COLUMNS = ['model', 'environment', 'version'];

/**
 * Parses a CSV with a header row: `timestamp` (ISO 8601, or Unix seconds) and either a count column (`requests`)
 * or a rate column (`requests_per_second`, `rps`); rows with the same model/environment/version labels form one
 * series.
 */
export function parseHistoryCsv(text: string, file: string): RawSeries[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const header = lines[0]?.split(',').map((h) => unquote(h).toLowerCase());
  if (!header) throw new CostError('InvalidHistory', `${file}: empty; expected a header row and timestamped rows`);
  const tCol = header.findIndex((h) => h === 'timestamp' || h === 'time');
  const rateCol = header.findIndex((h) => RATE_COLUMNS.includes(h));
  const countCol = header.findIndex((h) => COUNT_COLUMNS.includes(h));
  if (tCol < 0 || (rateCol < 0 && countCol < 0)) {
    throw new CostError(
      'InvalidHistory',
      `${file}: the header needs a timestamp column and a requests (count) or requests_per_second (rate) column; ${describeColumns(header)}`,
    );
  }
  const kind = countCol >= 0 ? 'count' : 'rate';
  const vCol = countCol >= 0 ? countCol : rateCol;
  const labelCols = LABEL_COLUMNS.map((name) => [name, header.indexOf(name)] as const).filter(([, i]) => i >= 0);
  const byKey = new Map<string, RawSeries>();
  for (let i = 1; i < lines.length; i++) {
    const cells = (lines[i] as string).split(',').map(unquote);
    const t = parseTimestamp(cells[tCol] ?? '');
    const v = Number(cells[vCol]);
    if (t === undefined || cells[vCol] === undefined || cells[vCol] === '' || !Number.isFinite(v) || v < 0) {
      throw new CostError(
        'InvalidHistory',
        // The position, never the line: a history could be any file the worker can read.
        `${file}: line ${i + 1} needs a timestamp and a non-negative number`,
      );
    }
    const labels = Object.fromEntries(labelCols.map(([name, col]) => [name, cells[col] ?? '']));
    const key = JSON.stringify(labels);
    let series = byKey.get(key);
    if (!series) byKey.set(key, (series = { labels, points: [], kind }));
    series.points.push({ t, v });
  }
  if (byKey.size === 0) throw new CostError('InvalidHistory', `${file}: no data rows`);
  for (const s of byKey.values()) s.points.sort((a, b) => a.t - b.t);
  return [...byKey.values()];
}

/** The header's names when they read as column names; otherwise only how many there are (never file content). */
function describeColumns(header: readonly string[]): string {
  if (header.length <= 50 && header.every((h) => /^[a-z0-9_ .-]{1,64}$/.test(h))) return `it has ${header.join(', ')}`;
  return `its header has ${header.length} column(s), none of them those`;
}

function unquote(cell: string): string {
  const c = cell.trim();
  return c.length >= 2 && c.startsWith('"') && c.endsWith('"') ? c.slice(1, -1) : c;
}

function parseTimestamp(cell: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(cell)) return Number(cell) * 1000;
  const ms = Date.parse(cell);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The most common gap between consecutive points, in seconds. */
export function detectStep(points: { t: number }[]): number | undefined {
  const gaps = new Map<number, number>();
  for (let i = 1; i < points.length; i++) {
    const gap = Math.round(((points[i] as { t: number }).t - (points[i - 1] as { t: number }).t) / 1000);
    if (gap > 0) gaps.set(gap, (gaps.get(gap) ?? 0) + 1);
  }
  let best: number | undefined;
  let bestCount = 0;
  for (const [gap, count] of gaps) {
    if (count > bestCount) {
      best = gap;
      bestCount = count;
    }
  }
  return best;
}

/**
 * Resamples raw points onto a regular grid of `stepSeconds` (default: the detected step) as requests/s: rates are
 * averaged per bucket, counts summed and divided by the step. Up to `maxGapFraction` missing buckets are filled by
 * linear interpolation; more is an error, because a forecast over invented data is no forecast.
 */
export function toSeries(raw: RawSeries, what: string, stepSeconds?: number, maxGapFraction = 0.2): Series {
  const step = stepSeconds ?? detectStep(raw.points);
  if (step === undefined || raw.points.length < 2) {
    throw new CostError('InvalidHistory', `${what}: needs at least two points at a regular interval`);
  }
  const stepMs = step * 1000;
  const first = raw.points[0] as { t: number };
  const last = raw.points[raw.points.length - 1] as { t: number };
  const startMs = Math.floor(first.t / stepMs) * stepMs;
  const n = Math.floor((last.t - startMs) / stepMs) + 1;
  const sums = new Float64Array(n);
  const counts = new Uint32Array(n);
  for (const p of raw.points) {
    const i = Math.floor((p.t - startMs) / stepMs);
    sums[i] = (sums[i] as number) + p.v;
    counts[i] = (counts[i] as number) + 1;
  }
  const values: (number | undefined)[] = [];
  let missing = 0;
  for (let i = 0; i < n; i++) {
    if (counts[i] === 0) {
      values.push(undefined);
      missing += 1;
    } else {
      values.push(raw.kind === 'count' ? (sums[i] as number) / step : (sums[i] as number) / (counts[i] as number));
    }
  }
  if (missing > maxGapFraction * n) {
    throw new CostError(
      'InvalidHistory',
      `${what}: ${missing} of ${n} ${step}-second intervals have no data (more than ${Math.round(maxGapFraction * 100)}%); fix the history or its step`,
    );
  }
  return { startMs, stepSeconds: step, values: interpolate(values) };
}

function interpolate(values: (number | undefined)[]): number[] {
  const out = [...values];
  let prev = -1;
  for (let i = 0; i <= out.length; i++) {
    if (i < out.length && out[i] === undefined) continue;
    if (i - prev > 1) {
      const a = prev >= 0 ? (out[prev] as number) : (out[i] as number);
      const b = i < out.length ? (out[i] as number) : a;
      for (let k = prev + 1; k < i; k++) out[k] = a + ((b - a) * (k - prev)) / (i - prev);
    }
    prev = i;
  }
  return out as number[];
}

/** Prometheus answers at most 11,000 points per series and query; longer ranges are asked for in slices. */
export const PROMETHEUS_MAX_POINTS = 11_000;

export interface RangeQuery {
  url: string;
  query: string;
  startMs: number;
  endMs: number;
  stepSeconds: number;
}

interface PromResponse {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: { metric?: Record<string, string>; values?: [number, string][] }[] };
}

/** Runs a range query (in slices under the point limit) and returns each series' points as rates. */
export async function prometheusRange(
  q: RangeQuery,
  fetchImpl: typeof fetch = fetch,
  signal?: AbortSignal,
): Promise<RawSeries[]> {
  if (!(q.endMs > q.startMs)) throw new CostError('InvalidHistory', `Prometheus range: end must be after start`);
  const stepMs = q.stepSeconds * 1000;
  const sliceMs = (PROMETHEUS_MAX_POINTS - 1) * stepMs;
  const byKey = new Map<string, RawSeries>();
  for (let from = q.startMs; from <= q.endMs; from += sliceMs + stepMs) {
    const to = Math.min(q.endMs, from + sliceMs);
    const url = new URL('api/v1/query_range', q.url.endsWith('/') ? q.url : `${q.url}/`);
    const body = new URLSearchParams({
      query: q.query,
      start: (from / 1000).toString(),
      end: (to / 1000).toString(),
      step: q.stepSeconds.toString(),
    });
    let response: Response;
    try {
      response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new SourceUnavailableError(`Prometheus at ${q.url} cannot be reached: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const text = await response.text();
    let json: PromResponse | undefined;
    try {
      json = JSON.parse(text) as PromResponse;
    } catch {
      json = undefined;
    }
    if (response.status >= 500 && json?.errorType !== 'bad_data') {
      throw new SourceUnavailableError(`Prometheus at ${q.url} answered ${response.status}${promError(json)}`);
    }
    if (!response.ok || json?.status !== 'success') {
      throw new CostError(
        'InvalidHistory',
        `Prometheus at ${q.url} refused the query ${JSON.stringify(q.query)} (${response.status})${promError(json)}`,
      );
    }
    if (json.data?.resultType !== 'matrix') {
      throw new CostError('InvalidHistory', `Prometheus answered a ${json.data?.resultType} for a range query`);
    }
    for (const r of json.data.result ?? []) {
      const labels = r.metric ?? {};
      const key = JSON.stringify(Object.entries(labels).sort());
      let series = byKey.get(key);
      if (!series) byKey.set(key, (series = { labels, points: [], kind: 'rate' }));
      for (const [t, v] of r.values ?? []) {
        const value = Number(v);
        if (Number.isFinite(value)) series.points.push({ t: Math.round(t * 1000), v: Math.max(0, value) });
      }
    }
  }
  return [...byKey.values()];
}

/**
 * Prometheus' own error text from its API answer; nothing from a body that is not one (the URL comes from a request,
 * and whatever answers there must not be echoed into the release's history).
 */
function promError(json: PromResponse | undefined): string {
  if (typeof json?.error !== 'string' || typeof json.errorType !== 'string') return '';
  return `: ${json.error.length > 300 ? `${json.error.slice(0, 300)}…` : json.error}`;
}
