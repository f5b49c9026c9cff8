/**
 * The drift statistics, each computed as scipy 1.17 computes it, so that a drift decision made here is the one a data
 * scientist reproduces in a notebook: `ks_2samp` (method 'auto'), `wasserstein_distance`, `chisquare`,
 * `spatial.distance.jensenshannon` (natural log), and Evidently's PSI. Numerical inputs are sorted Float64Arrays.
 */
import { kolmogn } from './kolmogorov';

/** scipy's ks_2samp(method='auto') switches to the asymptotic distribution above this many rows in either sample. */
const MAX_EXACT_N = 10000;

export interface KsResult {
  statistic: number;
  pValue: number;
}

/** scipy.stats.ks_2samp(a, b) two-sided, with 'auto' method choice; `a` and `b` sorted ascending, non-empty. */
export function ks2samp(a: Float64Array, b: Float64Array): KsResult {
  const n1 = a.length;
  const n2 = b.length;
  let maxS = -Infinity;
  let minS = Infinity;
  let i = 0;
  let j = 0;
  // The ECDF difference at every pooled value, after all copies of it in both samples (searchsorted side='right').
  while (i < n1 || j < n2) {
    const v = j >= n2 || (i < n1 && a[i]! <= b[j]!) ? a[i]! : b[j]!;
    while (i < n1 && a[i] === v) i++;
    while (j < n2 && b[j] === v) j++;
    const diff = i / n1 - j / n2;
    if (diff > maxS) maxS = diff;
    if (diff < minS) minS = diff;
  }
  const negMin = Math.min(1, Math.max(0, -minS));
  let d = negMin > maxS ? negMin : maxS;
  const g = gcd(n1, n2);
  if (Math.max(n1, n2) <= MAX_EXACT_N) {
    const exact = exactTwoSided(n1, n2, g, d);
    if (exact.ok) return { statistic: exact.d, pValue: Math.min(1, Math.max(0, exact.prob)) };
    d = exact.d;
  }
  const [m, n] = n1 >= n2 ? [n1, n2] : [n2, n1];
  const en = (m * n) / (m + n);
  return { statistic: d, pValue: Math.min(1, Math.max(0, kolmogn(roundHalfEven(en), d, false))) };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** numpy's round: halves to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** scipy's _attempt_exact_2kssamp, two-sided. */
function exactTwoSided(n1: number, n2: number, g: number, d: number): { ok: boolean; d: number; prob: number } {
  const lcm = (n1 / g) * n2;
  const h = roundHalfEven(d * lcm);
  d = h / lcm;
  if (h === 0) return { ok: true, d, prob: 1 };
  const prob = n1 === n2 ? probOutsideSquare(n1, h) : outerProbInside(n1, n2, g, h);
  if (!Number.isFinite(prob) || !(prob >= 0 && prob <= 1)) return { ok: false, d, prob };
  return { ok: true, d, prob };
}

/** Pr(D_{n,n} ≥ h/n): scipy's _compute_prob_outside_square, Horner-like to avoid cancellation. */
function probOutsideSquare(n: number, h: number): number {
  let P = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    P = p1 * (1 - P);
  }
  return 2 * P;
}

/** scipy's _compute_outer_prob_inside_method: 1 − the share of lattice paths inside |x/m − y/n| < h/lcm (Viehmann). */
function outerProbInside(m0: number, n0: number, g: number, h: number): number {
  const [m, n] = m0 >= n0 ? [m0, n0] : [n0, m0];
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  const A = new Float64Array(lenA).fill(1);
  A.fill(0, minj, maxj);
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.min(Math.max(Math.floor((ng * i - h) / mg) + 1, 0), n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1;
    let val = minj === 0 ? 0 : 1;
    for (let jj = 0; jj < maxj - minj; jj++) {
      const j = jj + minj;
      val = (A[jj + minj - lastminj]! * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) A.fill(1, maxj - minj, maxj - minj + (lastlen - curlen));
  }
  return A[maxj - minj - 1]!;
}

/** scipy.stats.wasserstein_distance(a, b) in one dimension; `a` and `b` sorted ascending, non-empty. */
export function wasserstein(a: Float64Array, b: Float64Array): number {
  const n1 = a.length;
  const n2 = b.length;
  let i = 0;
  let j = 0;
  let sum = 0;
  let prev = Math.min(a[0]!, b[0]!);
  // ∫|F_a − F_b| as a sum over the gaps between consecutive pooled values (scipy's _cdf_distance with p = 1).
  while (i < n1 || j < n2) {
    const v = j >= n2 || (i < n1 && a[i]! <= b[j]!) ? a[i]! : b[j]!;
    sum += Math.abs(i / n1 - j / n2) * (v - prev);
    prev = v;
    while (i < n1 && a[i] === v) i++;
    while (j < n2 && b[j] === v) j++;
  }
  return sum;
}

/** numpy.std (population, ddof 0). */
export function populationStd(values: Float64Array): number {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return Math.sqrt(ss / values.length);
}

export interface ChiSquareResult {
  /** Infinite when the current data has a category the reference never had (its expected count is 0). */
  statistic: number;
  pValue: number;
}

/** scipy.stats.chisquare(observed, expected): Pearson's statistic against χ² with k − 1 degrees of freedom. */
export function chiSquare(observed: ArrayLike<number>, expected: ArrayLike<number>): ChiSquareResult {
  let statistic = 0;
  for (let k = 0; k < observed.length; k++) {
    const o = observed[k]!;
    const e = expected[k]!;
    statistic += e === 0 ? (o === 0 ? Number.NaN : Infinity) : (o - e) ** 2 / e;
  }
  const df = observed.length - 1;
  if (df < 1 || Number.isNaN(statistic)) return { statistic, pValue: Number.NaN };
  return { statistic, pValue: chiSquareSf(statistic, df) };
}

/** Pr(χ²_df > x) = Q(df/2, x/2), the regularized upper incomplete gamma function. */
export function chiSquareSf(x: number, df: number): number {
  if (x <= 0) return 1;
  if (!Number.isFinite(x)) return 0;
  return gammaQ(df / 2, x / 2);
}

/** Lanczos (g = 7, n = 9) log-gamma, accurate to ~1e-15 relative for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Q(a, x): the series of P below a + 1, Lentz's continued fraction above (both to double precision). */
function gammaQ(a: number, x: number): number {
  const lnPrefix = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    let ap = a;
    let sum = 1 / a;
    let del = sum;
    for (let n = 0; n < 10000; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-17) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lnPrefix));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-17) break;
  }
  return Math.exp(lnPrefix) * h;
}

/** scipy.spatial.distance.jensenshannon(p, q) with the natural logarithm; p and q are normalised first. */
export function jensenShannon(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let sp = 0;
  let sq = 0;
  for (let k = 0; k < p.length; k++) {
    sp += p[k]!;
    sq += q[k]!;
  }
  let left = 0;
  let right = 0;
  for (let k = 0; k < p.length; k++) {
    const pk = p[k]! / sp;
    const qk = q[k]! / sq;
    const m = (pk + qk) / 2;
    left += relEntr(pk, m);
    right += relEntr(qk, m);
  }
  return Math.sqrt((left + right) / 2);
}

function relEntr(x: number, y: number): number {
  if (x > 0 && y > 0) return x * Math.log(x / y);
  if (x === 0 && y >= 0) return 0;
  return Infinity;
}

/**
 * Evidently's PSI, Σ (r − c)·ln(r/c) over the shares of each bin, where empty bins get a small share (Evidently's
 * `get_binned_data`: the smallest non-zero share / 10⁶ when that is ≤ 0.0001, else 0.0001) so the logarithm is finite.
 */
export function psi(referenceShares: Float64Array, currentShares: Float64Array): number {
  fillZeroes(referenceShares);
  fillZeroes(currentShares);
  let sum = 0;
  for (let k = 0; k < referenceShares.length; k++) {
    const r = referenceShares[k]!;
    const c = currentShares[k]!;
    sum += (r - c) * Math.log(r / c);
  }
  return sum;
}

function fillZeroes(shares: Float64Array): void {
  let min = Infinity;
  for (const s of shares) if (s !== 0 && s < min) min = s;
  if (!Number.isFinite(min)) return;
  const fill = min <= 0.0001 ? min / 10 ** 6 : 0.0001;
  for (let k = 0; k < shares.length; k++) if (shares[k] === 0) shares[k] = fill;
}

/** Distinct values of a sorted array. */
export function countDistinct(sorted: Float64Array): number {
  let distinct = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) distinct++;
  return distinct;
}

/**
 * The shares of each sample in Evidently's PSI bins for a numerical feature: numpy's `histogram_bin_edges(pooled,
 * bins='sturges')` over both samples when the reference has more than 20 distinct values, else one bin per distinct
 * value of either sample. Both inputs sorted ascending.
 */
export function numericalBins(
  reference: Float64Array,
  current: Float64Array,
): { ref: Float64Array; cur: Float64Array } {
  if (countDistinct(reference) <= 20) {
    const keys = new Map<number, number>();
    for (const v of reference) if (!keys.has(v)) keys.set(v, keys.size);
    for (const v of current) if (!keys.has(v)) keys.set(v, keys.size);
    const ref = new Float64Array(keys.size);
    const cur = new Float64Array(keys.size);
    for (const v of reference) ref[keys.get(v)!]! += 1;
    for (const v of current) cur[keys.get(v)!]! += 1;
    return { ref: scale(ref, reference.length), cur: scale(cur, current.length) };
  }
  let first = Math.min(reference[0]!, current[0]!);
  let last = Math.max(reference[reference.length - 1]!, current[current.length - 1]!);
  const size = reference.length + current.length;
  let bins = 1;
  if (first === last) {
    first -= 0.5;
    last += 0.5;
  } else {
    const width = (last - first) / (Math.log2(size) + 1);
    bins = Math.ceil((last - first) / width);
  }
  const edges = linspace(first, last, bins + 1);
  return {
    ref: scale(histogram(reference, edges, first, last, bins), reference.length),
    cur: scale(histogram(current, edges, first, last, bins), current.length),
  };
}

function scale(counts: Float64Array, total: number): Float64Array {
  for (let k = 0; k < counts.length; k++) counts[k]! /= total;
  return counts;
}

/** numpy.linspace(start, stop, num) with its endpoint exactly `stop`. */
function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const step = (stop - start) / (num - 1);
  for (let k = 0; k < num; k++) out[k] = start + k * step;
  out[num - 1] = stop;
  return out;
}

/** numpy.histogram on uniform edges: the same index arithmetic, then the same fix-ups against the edges. */
function histogram(values: Float64Array, edges: Float64Array, first: number, last: number, bins: number): Float64Array {
  const counts = new Float64Array(bins);
  const norm = bins / (last - first);
  for (const v of values) {
    if (v < first || v > last) continue;
    let index = Math.floor((v - first) * norm);
    if (index === bins) index--;
    if (v < edges[index]!) index--;
    else if (index !== bins - 1 && v >= edges[index + 1]!) index++;
    counts[index]! += 1;
  }
  return counts;
}
