/** Generated traffic histories with known seasonality, for the forecast tests. */

/**
 * An hourly request-rate history with daily and weekly seasonality and mild noise:
 * rate(t) = base × (1 + 0.5·sin(2π·hour/24)) × (weekend ? 0.6 : 1) + noise.
 */
export function seasonalHistory(options: {
  weeks: number;
  base?: number;
  noise?: number;
  seed?: number;
  startMs?: number;
}): {
  startMs: number;
  values: number[];
  truth: (hourIndex: number) => number;
} {
  const base = options.base ?? 100;
  const startMs = options.startMs ?? Date.UTC(2025, 0, 6); // a Monday
  let seed = options.seed ?? 42;
  const random = (): number => {
    // mulberry32: a small seeded generator, so every run sees the same series.
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const truth = (i: number): number => {
    const hour = i % 24;
    const day = Math.floor(i / 24) % 7;
    return base * (1 + 0.5 * Math.sin((2 * Math.PI * hour) / 24)) * (day >= 5 ? 0.6 : 1);
  };
  const values: number[] = [];
  for (let i = 0; i < options.weeks * 168; i++) {
    values.push(Math.max(0, truth(i) + (random() - 0.5) * 2 * (options.noise ?? 0.03) * base));
  }
  return { startMs, values, truth };
}
