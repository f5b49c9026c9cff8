/**
 * Seasonal traffic forecast: additive Holt-Winters (triple exponential smoothing) with a damped trend and a daily or
 * weekly season. The smoothing parameters α, β, γ are fit by Nelder–Mead on the squared error of 1- to 24-hour-ahead
 * forecasts over the training part; the forecast's error is then measured on a held-out tail it never saw, and the state is carried
 * through that tail before forecasting the horizon. Pure: no I/O.
 */

/** A regular series: values[i] is the request rate (requests/s) at startMs + i × stepSeconds. */
export interface Series {
  startMs: number;
  stepSeconds: number;
  values: number[];
}

export interface ForecastErrors {
  /** Mean absolute percentage error over non-zero actuals (0.1 = 10%); undefined when all actuals are zero. */
  mape?: number;
  /** Symmetric MAPE on a 0..1 scale: the mean of |a−f| / (|a|+|f|), half the common 0..2 definition. */
  smape: number;
  rmse: number;
  points: number;
}

export interface HoltWintersParams {
  alpha: number;
  beta: number;
  gamma: number;
  /** Trend damping per step; fixed, so a 30-day horizon does not extrapolate a short-lived trend linearly. */
  phi: number;
}

export interface Forecast {
  method: 'holt-winters-additive';
  season: 'daily' | 'weekly';
  seasonLength: number;
  params: HoltWintersParams;
  /** Errors on the held-out tail, forecasting it from the end of the training part. */
  holdout: ForecastErrors & { fromMs: number; toMs: number };
  /** The forecast over the horizon, from the end of the history. */
  horizon: { fromMs: number; stepSeconds: number; steps: number; peak: number; mean: number; peakAtMs: number };
  trainingPoints: number;
}

export interface ForecastOptions {
  season?: 'auto' | 'daily' | 'weekly';
  holdoutFraction?: number;
  horizonDays?: number;
  /** Damping of the trend per step (default 0.98 per day, e.g. 0.99916 per hour). */
  phi?: number;
  /** Steps ahead the fit scores its forecasts over (default one day; 1 = the classic one-step error). */
  fitLeadSteps?: number;
  /** Objective evaluations Nelder–Mead may spend (default 150). */
  maxEvaluations?: number;
  signal?: AbortSignal;
}

export const DAY_SECONDS = 86_400;
export const WEEK_SECONDS = 7 * DAY_SECONDS;
/** A trend keeps ~98% of its slope from one day to the next: a month ahead it adds ~22 days' worth, not 30. */
export const DAILY_DAMPING = 0.98;

/** Why no forecast could be made from a history (too short, irregular step). */
export class ForecastUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForecastUnavailable';
  }
}

/** The season length in steps for a series, or undefined when the step does not divide it. */
export function seasonSteps(stepSeconds: number, seasonSeconds: number): number | undefined {
  const m = seasonSeconds / stepSeconds;
  return Number.isInteger(m) && m >= 2 ? m : undefined;
}

/** Picks the season: weekly when the training part holds two weeks, else daily when it holds two days. */
export function chooseSeason(
  series: Series,
  holdoutFraction: number,
  wanted: 'auto' | 'daily' | 'weekly',
): { season: 'daily' | 'weekly'; length: number } {
  const train = series.values.length - holdoutLength(series.values.length, holdoutFraction);
  const options: ('weekly' | 'daily')[] = wanted === 'auto' ? ['weekly', 'daily'] : [wanted];
  for (const season of options) {
    const length = seasonSteps(series.stepSeconds, season === 'weekly' ? WEEK_SECONDS : DAY_SECONDS);
    if (length !== undefined && train >= 2 * length) return { season, length };
  }
  const span = (series.values.length * series.stepSeconds) / DAY_SECONDS;
  const needs = wanted === 'weekly' ? 'two weeks' : 'two days';
  throw new ForecastUnavailable(
    `the history spans ${span.toFixed(1)} days; a ${wanted === 'auto' ? 'daily' : wanted} seasonal forecast needs at least ${needs} for training plus a held-out tail`,
  );
}

function holdoutLength(n: number, fraction: number): number {
  return Math.max(1, Math.round(n * fraction));
}

/** Fits Holt-Winters to `series`, measures it on a held-out tail, and forecasts `horizonDays` ahead. */
export function forecastSeries(series: Series, options: ForecastOptions = {}): Forecast {
  const fraction = options.holdoutFraction ?? 0.2;
  const phi = options.phi ?? DAILY_DAMPING ** (series.stepSeconds / DAY_SECONDS);
  const { season, length: m } = chooseSeason(series, fraction, options.season ?? 'auto');
  const y = Float64Array.from(series.values);
  const n = y.length;
  const hold = holdoutLength(n, fraction);
  const train = y.subarray(0, n - hold);

  const lead = options.fitLeadSteps ?? Math.min(m, Math.max(1, Math.round(DAY_SECONDS / series.stepSeconds)));
  const params = fitParams(train, m, lead, phi, options.maxEvaluations ?? 150, options.signal);
  const trained = runSmoothing(train, m, params);
  const holdoutForecast = project(trained, m, train.length, hold, phi);
  const errors = forecastErrors(y.subarray(n - hold), holdoutForecast);

  // Carry the state through the held-out tail with the same parameters, then forecast from the end of the history.
  const full = runSmoothing(y, m, params);
  const steps = Math.max(1, Math.round(((options.horizonDays ?? 30) * DAY_SECONDS) / series.stepSeconds));
  const ahead = project(full, m, n, steps, phi);
  let peak = 0;
  let peakIndex = 0;
  let total = 0;
  ahead.forEach((v, i) => {
    const rate = Math.max(0, v);
    total += rate;
    if (rate > peak) {
      peak = rate;
      peakIndex = i;
    }
  });
  const stepMs = series.stepSeconds * 1000;
  const endMs = series.startMs + n * stepMs;
  return {
    method: 'holt-winters-additive',
    season,
    seasonLength: m,
    params,
    holdout: { ...errors, fromMs: series.startMs + (n - hold) * stepMs, toMs: endMs },
    horizon: {
      fromMs: endMs,
      stepSeconds: series.stepSeconds,
      steps,
      peak,
      mean: total / steps,
      peakAtMs: endMs + peakIndex * stepMs,
    },
    trainingPoints: n - hold,
  };
}

interface SmoothingState {
  level: number;
  trend: number;
  /** Seasonal terms by phase (index t mod m). */
  seasonal: Float64Array;
  sse: number;
}

function initialState(y: Float64Array, m: number): SmoothingState {
  const mean = (from: number, to: number): number => {
    let s = 0;
    for (let i = from; i < to; i++) s += y[i] as number;
    return s / (to - from);
  };
  const first = mean(0, m);
  const seasons = y.length >= 2 * m ? 2 : 1;
  const second = seasons === 2 ? mean(m, 2 * m) : first;
  const trend = (second - first) / m;
  // Seasonal terms net of the trend within each season, else a growing series leaves a sawtooth in them.
  const seasonal = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const drift = (i - (m - 1) / 2) * trend;
    let s = (y[i] as number) - first - drift;
    if (seasons === 2) s = (s + (y[i + m] as number) - second - drift) / 2;
    seasonal[i] = s;
  }
  // The first season's mean is the level at its centre; the state starts one step before its first value.
  return { level: first - ((m + 1) / 2) * trend, trend, seasonal, sse: 0 };
}

/**
 * Runs the smoothing over y. `sse` scores the parameters: at every `lead`-th step after the first season (which the
 * initial state is built from) the state forecasts the next `lead` steps, and the squared errors of those 1..lead-step
 * forecasts add up. With lead = 1 this is the classic one-step error; a longer lead keeps the fit from choosing
 * parameters that merely chase the last hour, which forecast well one step ahead and poorly a day ahead.
 */
function runSmoothing(y: Float64Array, m: number, p: HoltWintersParams, lead = 1): SmoothingState {
  const state = initialState(y, m);
  let { level, trend } = state;
  const seasonal = state.seasonal;
  let sse = 0;
  const { alpha, beta, gamma, phi } = p;
  for (let t = 0; t < y.length; t++) {
    const phase = t % m;
    if (t >= m && (t - m) % lead === 0) {
      let damp = 0;
      let power = 1;
      const end = Math.min(y.length, t + lead);
      for (let k = t; k < end; k++) {
        power *= phi;
        damp += power;
        const err = (y[k] as number) - (level + damp * trend + (seasonal[k % m] as number));
        sse += err * err;
      }
    }
    const value = y[t] as number;
    const s = seasonal[phase] as number;
    const newLevel = alpha * (value - s) + (1 - alpha) * (level + phi * trend);
    trend = beta * (newLevel - level) + (1 - beta) * phi * trend;
    seasonal[phase] = gamma * (value - newLevel) + (1 - gamma) * s;
    level = newLevel;
  }
  return { level, trend, seasonal, sse };
}

/** Forecasts `steps` values after a state that has consumed `consumed` points. */
function project(state: SmoothingState, m: number, consumed: number, steps: number, phi: number): number[] {
  const out: number[] = [];
  let damp = 0;
  let power = 1;
  for (let h = 1; h <= steps; h++) {
    power *= phi;
    damp += power;
    out.push(state.level + damp * state.trend + (state.seasonal[(consumed + h - 1) % m] as number));
  }
  return out;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const logit = (p: number): number => Math.log(p / (1 - p));

/** Nelder–Mead over (α, β, γ) in logit space, so every trial point is a valid parameter set. */
function fitParams(
  y: Float64Array,
  m: number,
  lead: number,
  phi: number,
  maxEvaluations: number,
  signal?: AbortSignal,
): HoltWintersParams {
  const toParams = (x: number[]): HoltWintersParams => ({
    alpha: sigmoid(x[0] as number),
    beta: sigmoid(x[1] as number),
    gamma: sigmoid(x[2] as number),
    phi,
  });
  let evaluations = 0;
  const objective = (x: number[]): number => {
    evaluations += 1;
    if (evaluations % 25 === 0) signal?.throwIfAborted();
    return runSmoothing(y, m, toParams(x), lead).sse;
  };
  const best = nelderMead(objective, [logit(0.3), logit(0.05), logit(0.2)], 1.5, maxEvaluations);
  return toParams(best);
}

/** Minimises f from x0 with the standard reflection/expansion/contraction/shrink steps. */
export function nelderMead(f: (x: number[]) => number, x0: number[], step: number, maxEvaluations: number): number[] {
  const dims = x0.length;
  let simplex = [x0, ...x0.map((_, i) => x0.map((v, j) => (i === j ? v + step : v)))].map((x) => ({ x, f: f(x) }));
  let evaluations = simplex.length;
  while (evaluations < maxEvaluations) {
    simplex.sort((a, b) => a.f - b.f);
    const bestF = (simplex[0] as { f: number }).f;
    const worst = simplex[dims] as { x: number[]; f: number };
    if (Math.abs(worst.f - bestF) <= 1e-10 * (Math.abs(bestF) + 1e-12)) break;
    const centroid = new Array<number>(dims).fill(0);
    for (let i = 0; i < dims; i++) for (let j = 0; j < dims; j++) centroid[j]! += (simplex[i]!.x[j] as number) / dims;
    const along = (t: number): number[] => centroid.map((c, j) => c + t * ((worst.x[j] as number) - c));
    const reflected = along(-1);
    const fr = f(reflected);
    evaluations += 1;
    const secondWorst = (simplex[dims - 1] as { f: number }).f;
    if (fr < bestF) {
      const expanded = along(-2);
      const fe = f(expanded);
      evaluations += 1;
      simplex[dims] = fe < fr ? { x: expanded, f: fe } : { x: reflected, f: fr };
    } else if (fr < secondWorst) {
      simplex[dims] = { x: reflected, f: fr };
    } else {
      const contracted = fr < worst.f ? along(-0.5) : along(0.5);
      const fc = f(contracted);
      evaluations += 1;
      if (fc < Math.min(fr, worst.f)) {
        simplex[dims] = { x: contracted, f: fc };
      } else {
        const best = simplex[0] as { x: number[] };
        simplex = simplex.map((v, i) => {
          if (i === 0) return v;
          const x = v.x.map((xi, j) => (best.x[j] as number) + 0.5 * (xi - (best.x[j] as number)));
          evaluations += 1;
          return { x, f: f(x) };
        });
      }
    }
  }
  simplex.sort((a, b) => a.f - b.f);
  return (simplex[0] as { x: number[] }).x;
}

/** MAPE (over non-zero actuals), sMAPE and RMSE of `forecast` against `actual`. */
export function forecastErrors(actual: ArrayLike<number>, forecast: ArrayLike<number>): ForecastErrors {
  let ape = 0;
  let apeCount = 0;
  let sape = 0;
  let sq = 0;
  const n = Math.min(actual.length, forecast.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i] as number;
    const f = Math.max(0, forecast[i] as number);
    const err = Math.abs(a - f);
    if (a !== 0) {
      ape += err / Math.abs(a);
      apeCount += 1;
    }
    const denominator = Math.abs(a) + Math.abs(f);
    sape += denominator === 0 ? 0 : err / denominator;
    sq += err * err;
  }
  return {
    ...(apeCount > 0 ? { mape: ape / apeCount } : {}),
    smape: n === 0 ? 0 : sape / n,
    rmse: n === 0 ? 0 : Math.sqrt(sq / n),
    points: n,
  };
}

/**
 * The naive seasonal baseline over the same held-out tail: each value forecast as the one a season (e.g. a week)
 * earlier, the last observed season repeated. Used by the benchmark to show what the fitted model adds.
 */
export function seasonalNaiveErrors(series: Series, seasonSeconds: number, holdoutFraction = 0.2): ForecastErrors {
  const m = seasonSteps(series.stepSeconds, seasonSeconds);
  if (m === undefined) throw new ForecastUnavailable('the step does not divide the season');
  const n = series.values.length;
  const hold = holdoutLength(n, holdoutFraction);
  const start = n - hold;
  if (start < m) throw new ForecastUnavailable('the training part is shorter than one season');
  const forecast: number[] = [];
  for (let i = 0; i < hold; i++) forecast.push(series.values[start - m + (i % m)] as number);
  return forecastErrors(series.values.slice(start), forecast);
}
