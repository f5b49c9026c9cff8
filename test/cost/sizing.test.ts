/** Sizing and pricing: known answers worked by hand, and properties that must hold for any input. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  deploymentSizing,
  fitsMemory,
  GIB,
  latencyQuantileMs,
  sensitivity,
  sizeModel,
  type SizingInput,
  type SizingPolicy,
} from '../../activities/cost/sizing';
import { costPolicySchema } from '../../activities/cost/policy';
import { parsePricing, type InstanceType, type PricingCatalog } from '../../config/pricing';
import { smallCatalog } from './fixtures';

const policy = (overrides: Record<string, unknown> = {}): SizingPolicy =>
  costPolicySchema.parse({ headroom: 0.25, slo: { latencyMs: 100, percentile: 0.95 }, ...overrides });

const input = (overrides: Partial<SizingInput> = {}): SizingInput => ({
  model: { weightBytes: 1 * GIB, storedBytes: 1 * GIB, kvCacheBytes: 0 },
  demand: { peakRps: 100, averageRps: 40 },
  referenceRps: 50,
  latencySloMs: 100,
  hoursPerDay: 24,
  daysPerMonth: 30,
  ...overrides,
});

describe('sizeModel: known answers', () => {
  it('picks one GPU replica over five CPU replicas when it is cheaper, with the arithmetic shown', () => {
    // CPU: μ = 50 req/s; the p95 objective of 100 ms allows λ ≤ 50 − ln(20)/0.1 = 20.04 per replica (headroom
    // would allow 40), so 100 req/s needs ⌈100 / 20.04⌉ = 5 replicas × $0.20 × 720 h = $720.
    // GPU: μ = 400; λ ≤ min(400 − 29.96, 400 / 1.25 = 320) → 1 replica × $0.50 × 720 h = $360.
    const result = sizeModel(input(), smallCatalog(), policy());
    const cpu = result.candidates.find((c) => c.instanceType === 'cpu.4x16');
    expect(cpu).toMatchObject({ fits: true, replicas: 5, monthlyCompute: 720 });
    expect(result.chosen?.instanceType.name).toBe('gpu.t4');
    expect(result.chosen?.replicas).toBe(1);
    expect(result.chosen?.breakdown.compute).toBeCloseTo(360, 10);
    // 40 req/s × 3600 × 24 × 30 = 103,680,000 requests a month → $360 / 103,680 thousand.
    expect(result.chosen?.monthlyRequests).toBe(103_680_000);
    expect(result.chosen?.costPer1kRequests).toBeCloseTo(360 / 103_680, 10);
    expect(result.chosen?.latencyAtPeakMs).toBeCloseTo((Math.log(20) / 300) * 1000, 6);
  });

  it('counts only the hours of operation and prices spot when the policy buys spot', () => {
    const catalog = smallCatalog();
    const cpuOnly: PricingCatalog = { ...catalog, instanceTypes: catalog.instanceTypes.filter((t) => !t.gpu) };
    const result = sizeModel(input({ hoursPerDay: 10, daysPerMonth: 22 }), cpuOnly, policy({ purchase: 'spot' }));
    expect(result.chosen?.replicas).toBe(5);
    expect(result.chosen?.breakdown.compute).toBeCloseTo(5 * 0.08 * 10 * 22, 10);
    // The GPU type has no spot price: it is not a candidate.
    const gpu = sizeModel(input(), catalog, policy({ purchase: 'spot' })).candidates.find(
      (c) => c.instanceType === 'gpu.t4',
    );
    expect(gpu).toMatchObject({ fits: false, reason: 'no spot price in the catalog' });
  });

  it('says why nothing fits: memory, the latency objective, the replica limit', () => {
    const huge = sizeModel(
      input({ model: { weightBytes: 20 * GIB, storedBytes: 20 * GIB, kvCacheBytes: 0 } }),
      smallCatalog(),
      policy(),
    );
    expect(huge.chosen).toBeUndefined();
    expect(huge.noFit).toMatch(/cpu\.4x16: needs 25\.0 GiB of memory; 14\.4 GiB of its 16 GiB is allocatable/);
    expect(huge.noFit).toMatch(/gpu\.t4: needs 24\.0 GiB of GPU memory; 1× nvidia-tesla-t4 has 16\.0 GiB/);

    const slow = sizeModel(input({ referenceRps: 2 }), smallCatalog(), policy({ slo: { latencyMs: 100 } }));
    expect(slow.candidates.find((c) => c.instanceType === 'cpu.4x16')?.reason).toMatch(
      /p95 latency is at least 1498 ms here \(one request takes 500 ms\); the objective is 100 ms/,
    );

    const busy = sizeModel(
      input({ demand: { peakRps: 100_000, averageRps: 1 } }),
      smallCatalog(),
      policy({ maxReplicas: 10 }),
    );
    expect(busy.noFit).toMatch(/needs \d+ replicas to serve 100000 requests\/s; the policy allows 10/);
  });

  it('renders the Deployment sizing: replicas, resources from the node, the instance type as node selector', () => {
    const chosen = sizeModel(input(), smallCatalog(), policy()).chosen;
    expect(chosen).toBeDefined();
    expect(deploymentSizing(chosen!, 'on-demand')).toEqual({
      replicas: 1,
      resources: {
        requests: { cpu: '3500m', memory: '2048Mi', 'nvidia.com/gpu': '1' },
        limits: { memory: '2048Mi', 'nvidia.com/gpu': '1' },
      },
      nodeSelector: { 'node.kubernetes.io/instance-type': 'gpu.t4', 'topology.kubernetes.io/region': 'us-east-1' },
      labels: { 'modelrelease.io/instance-type': 'gpu.t4', 'modelrelease.io/capacity-type': 'on-demand' },
    });
  });

  it('tabulates sensitivity at half, the same and double the traffic', () => {
    const rows = sensitivity(input(), smallCatalog(), policy());
    expect(rows.map((r) => [r.trafficFactor, r.instanceType, r.replicas])).toEqual([
      [0.5, 'gpu.t4', 1],
      [1, 'gpu.t4', 1],
      [2, 'gpu.t4', 1],
    ]);
    const cpuOnly = smallCatalog({
      instanceTypes: smallCatalog().instanceTypes.filter((t) => !t.gpu),
    } as Partial<PricingCatalog>);
    expect(sensitivity(input(), cpuOnly, policy()).map((r) => r.replicas)).toEqual([3, 5, 10]);
  });

  it('latency of M/M/1: p95 = ln(20) / (μ − λ)', () => {
    expect(latencyQuantileMs(10, 5, 0.95)).toBeCloseTo((Math.log(20) / 5) * 1000, 10);
    expect(latencyQuantileMs(10, 10, 0.95)).toBe(Infinity);
  });
});

// ------------------------------------------------------------------------------------------------------------------

type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

const arbType = fc.record({
  vcpu: fc.integer({ min: 1, max: 96 }),
  memoryGiB: fc.double({ min: 1, max: 1024, noNaN: true }),
  gpu: fc.option(
    fc.record({ count: fc.integer({ min: 1, max: 8 }), memoryGiB: fc.double({ min: 4, max: 80, noNaN: true }) }),
    { nil: undefined },
  ),
  relativeThroughput: fc.double({ min: 0.1, max: 500, noNaN: true }),
  onDemandHourly: fc.double({ min: 0.01, max: 100, noNaN: true }),
});

function catalogOf(types: ValueOf<typeof arbType>[], storage = 0.08): PricingCatalog {
  return parsePricing(
    {
      currency: 'USD',
      pricesTakenAt: '2024-11-15',
      source: 'generated',
      reference: { instanceType: 't0', description: 'generated' },
      backends: { tensorflow: 1 },
      storage: { pricePerGiBMonth: storage },
      instanceTypes: types.map((t, i) => ({
        name: `t${i}`,
        provider: 'aws',
        region: 'us-east-1',
        vcpu: t.vcpu,
        memoryGiB: t.memoryGiB,
        ...(t.gpu ? { gpu: { model: 'g', count: t.gpu.count, memoryGiB: t.gpu.memoryGiB } } : {}),
        relativeThroughput: t.relativeThroughput,
        onDemandHourly: t.onDemandHourly,
      })),
    },
    'generated.yaml',
  );
}

const arbInput = fc.record({
  weightGiB: fc.double({ min: 0.001, max: 200, noNaN: true }),
  peakRps: fc.double({ min: 0.01, max: 5000, noNaN: true }),
  referenceRps: fc.double({ min: 0.5, max: 2000, noNaN: true }),
  latencySloMs: fc.double({ min: 50, max: 10_000, noNaN: true }),
});

function toInput(i: ValueOf<typeof arbInput>, factor = 1): SizingInput {
  return input({
    model: { weightBytes: i.weightGiB * GIB, storedBytes: i.weightGiB * GIB, kvCacheBytes: 0 },
    demand: { peakRps: i.peakRps * factor, averageRps: (i.peakRps * factor) / 2 },
    referenceRps: i.referenceRps,
    latencySloMs: i.latencySloMs,
  });
}

const loose = policy({ maxReplicas: 1_000_000 });

describe('sizeModel: properties', () => {
  it('more traffic never costs less (over the whole catalog)', () => {
    fc.assert(
      fc.property(
        fc.array(arbType, { minLength: 1, maxLength: 6 }),
        arbInput,
        fc.double({ min: 1, max: 10, noNaN: true }),
        (types, i, more) => {
          const catalog = catalogOf(types);
          const low = sizeModel(toInput(i), catalog, loose).chosen;
          const high = sizeModel(toInput(i, more), catalog, loose).chosen;
          if (!low) return high === undefined;
          expect(high).toBeDefined();
          expect(high!.monthlyTotal).toBeGreaterThanOrEqual(low.monthlyTotal - 1e-9);
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('more traffic never yields fewer replicas of an instance type', () => {
    // Across a catalog the cheapest answer may move to a bigger type with fewer replicas; per type it may not.
    fc.assert(
      fc.property(arbType, arbInput, fc.double({ min: 1, max: 10, noNaN: true }), (type, i, more) => {
        const catalog = catalogOf([type]);
        const low = sizeModel(toInput(i), catalog, loose).chosen;
        const high = sizeModel(toInput(i, more), catalog, loose).chosen;
        if (low && high) expect(high.replicas).toBeGreaterThanOrEqual(low.replicas);
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('a cheaper catalog never yields a higher cost', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(arbType, fc.double({ min: 0.1, max: 1, noNaN: true })), { minLength: 1, maxLength: 6 }),
        arbInput,
        (pairs, i) => {
          const list = catalogOf(pairs.map(([t]) => t));
          const cheaper = catalogOf(
            pairs.map(([t, cut]) => ({ ...t, onDemandHourly: t.onDemandHourly * cut })),
            0.04,
          );
          const a = sizeModel(toInput(i), list, loose).chosen;
          const b = sizeModel(toInput(i), cheaper, loose).chosen;
          if (a) expect(b!.monthlyTotal).toBeLessThanOrEqual(a.monthlyTotal + 1e-9);
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a bigger model never fits a smaller GPU', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 200, noNaN: true }),
        fc.double({ min: 0.1, max: 200, noNaN: true }),
        fc.double({ min: 4, max: 80, noNaN: true }),
        fc.double({ min: 4, max: 80, noNaN: true }),
        (modelA, modelB, gpuA, gpuB) => {
          const [small, big] = modelA <= modelB ? [modelA, modelB] : [modelB, modelA];
          const [lesser, greater] = gpuA <= gpuB ? [gpuA, gpuB] : [gpuB, gpuA];
          const gpuType = (memoryGiB: number): InstanceType => ({
            name: 'g',
            provider: 'aws',
            region: 'r',
            vcpu: 8,
            memoryGiB: 2048,
            gpu: { model: 'g', count: 1, memoryGiB },
            relativeThroughput: 1,
            onDemandHourly: 1,
          });
          const model = (gib: number) => ({ weightBytes: gib * GIB, storedBytes: gib * GIB, kvCacheBytes: 0 });
          const p = policy();
          // If the bigger model fits the smaller GPU, the smaller model fits it too, and both fit the greater GPU.
          if (fitsMemory(model(big), gpuType(lesser), p) === undefined) {
            expect(fitsMemory(model(small), gpuType(lesser), p)).toBeUndefined();
            expect(fitsMemory(model(big), gpuType(greater), p)).toBeUndefined();
          }
          // If the model does not fit the greater GPU, it does not fit the lesser one.
          if (fitsMemory(model(small), gpuType(greater), p) !== undefined) {
            expect(fitsMemory(model(small), gpuType(lesser), p)).toBeDefined();
          }
          return true;
        },
      ),
      { numRuns: 500 },
    );
  });
});
