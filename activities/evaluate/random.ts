/**
 * Seeded randomness for the bootstrap, permutation importance and sampling: the same seed gives the same numbers on
 * every machine, so a gate's confidence intervals can be replayed from the evidence.
 */

/** A seeded generator (xoshiro128**, seeded through splitmix32): fast, 32-bit, and good enough for resampling. */
export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i]!;
      a[i] = a[j]!;
      a[j] = tmp;
    }
    return a;
  }

  /**
   * A Binomial(n, p) draw. Exact: inversion by geometric waiting times when n·p is small, Hörmann's BTRD
   * transformed rejection otherwise (the algorithm TensorFlow and NumPy use), so the cost does not grow with n.
   */
  binomial(n: number, p: number): number {
    if (n <= 0 || p <= 0) return 0;
    if (p >= 1) return n;
    if (p > 0.5) return n - this.binomial(n, 1 - p);
    if (n * p < 10) return this.binomialInversion(n, p);
    return this.binomialBtrd(n, p);
  }

  /**
   * Multinomial(n, probs) by conditional binomials, written into `out`. Zero-probability cells are skipped, which
   * keeps a resample of many sparse cells cheap.
   */
  multinomial(n: number, probs: Float64Array, out: Float64Array): void {
    let remaining = n;
    let mass = 1;
    for (let i = 0; i < probs.length; i++) {
      const p = probs[i]!;
      if (remaining === 0 || p <= 0) {
        out[i] = 0;
        continue;
      }
      const k = i === probs.length - 1 || p >= mass ? remaining : this.binomial(remaining, p / mass);
      out[i] = k;
      remaining -= k;
      mass -= p;
    }
  }

  private binomialInversion(n: number, p: number): number {
    const logq = Math.log1p(-p);
    let sum = 0;
    let k = 0;
    for (;;) {
      const u = 1 - this.next();
      sum += Math.ceil(Math.log(u) / logq);
      if (sum > n) return k;
      k++;
    }
  }

  private binomialBtrd(n: number, p: number): number {
    const spq = Math.sqrt(n * p * (1 - p));
    const b = 1.15 + 2.53 * spq;
    const a = -0.0873 + 0.0248 * b + 0.01 * p;
    const c = n * p + 0.5;
    const vr = 0.92 - 4.2 / b;
    const r = p / (1 - p);
    const alpha = (2.83 + 5.1 / b) * spq;
    const m = Math.floor((n + 1) * p);
    for (;;) {
      const u = this.next() - 0.5;
      let v = this.next();
      const us = 0.5 - Math.abs(u);
      const k = Math.floor(((2 * a) / us + b) * u + c);
      if (us >= 0.07 && v <= vr) return k;
      if (k < 0 || k > n) continue;
      v = Math.log((v * alpha) / (a / (us * us) + b));
      const bound =
        (m + 0.5) * Math.log((m + 1) / (r * (n - m + 1))) +
        (n + 1) * Math.log((n - m + 1) / (n - k + 1)) +
        (k + 0.5) * Math.log((r * (n - k + 1)) / (k + 1)) +
        stirlingTail(m) +
        stirlingTail(n - m) -
        stirlingTail(k) -
        stirlingTail(n - k);
      if (v <= bound) return k;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const STIRLING_TAIL = [
  0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509, 0.0166446911898211,
  0.0138761288230707, 0.0118967099458917, 0.010411265261972, 0.00925546218271273, 0.00833056343336287,
];

/** log(k!) − Stirling's approximation of it, from a table for small k and the asymptotic series beyond. */
function stirlingTail(k: number): number {
  if (k <= 9) return STIRLING_TAIL[k]!;
  const kp1sq = (k + 1) * (k + 1);
  return (1 / 12 - (1 / 360 - 1 / 1260 / kp1sq) / kp1sq) / (k + 1);
}

/** The q-quantile of sorted values with linear interpolation (NumPy's default "linear" method). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}
