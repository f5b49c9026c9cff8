/** The cost gate activity end to end: real weight files in a real store, a real catalog file, evidence on disk. */
import { createHash } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure, CancelledFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect } from 'vitest';
import { stringify } from 'yaml';
import { FilesystemStore, manifestDigest, storeManifest, storePath } from '../../activities/store';
import { createCostActivities, type CostEvidence } from '../../activities/cost';
import { FailureType } from '../../contract/definitions';
import type { GateInput, GateResult, ManifestRef } from '../../contract/types';
import { readEvidence } from '../helpers/evidence';
import {
  earlierGate,
  gateInput,
  measured,
  referenceWeights,
  request,
  seasonalHistory,
  smallCatalog,
  storeModel,
  test,
} from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** The cost gate's own part of its evidence (the envelope carries gate, release, verdict, summary and findings). */
type CostReport = Omit<CostEvidence, 'gate' | 'releaseId' | 'verdict' | 'summary' | 'findings'>;

async function runGate(
  tmp: string,
  input: GateInput,
  heartbeats: unknown[] = [],
  pricing: unknown = smallCatalog(),
): Promise<{ result: GateResult; evidence: CostReport }> {
  const pricingFile = join(tmp, 'pricing.yaml');
  const { file: _f, digest: _d, ...data } = pricing as { file?: string; digest?: string };
  await writeFile(pricingFile, stringify(data));
  const store = new FilesystemStore(join(tmp, 'store'));
  const activities = createCostActivities({ store, pricingFile });
  const env = new MockActivityEnvironment(undefined, { logger: silent });
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const result = (await env.run(activities.estimateCost, input)) as GateResult;
  const stored = await readEvidence<CostReport>(store, result.evidence);
  expect(stored).toMatchObject({
    gate: 'cost',
    releaseId: input.releaseId,
    verdict: result.verdict,
    summary: result.summary,
    findings: result.findings,
  });
  if (stored.report.pricing) {
    // The catalog the gate priced with is named by digest among the evidence's inputs (by file name: no host path).
    expect(stored.inputs).toEqual([{ name: 'pricing.yaml', digest: `sha256:${stored.report.pricing.digest}` }]);
  }
  return { result, evidence: stored.report };
}

async function model(tmp: string, extra: Record<string, string> = {}): Promise<ManifestRef> {
  const dir = join(tmp, 'model');
  await mkdir(dir, { recursive: true });
  await referenceWeights('safetensors', join(dir, 'model.safetensors'));
  for (const [path, text] of Object.entries(extra)) await writeFile(join(dir, path), text);
  return storeModel(join(tmp, 'store'), dir, ['model.safetensors', ...Object.keys(extra)]);
}

const declared = { averageRequestsPerSecond: 40, peakRequestsPerSecond: 100, latencySloMs: 100, daysPerMonth: 30 };
const policy = {
  headroom: 0.25,
  riskPremium: { incidentCost: 10_000 },
  budgets: { teams: { nlp: { soft: 1000, hard: 2000 } } },
};

describe('estimateCost', () => {
  test('prices the measured throughput, adds the risk premium, and asks finops between soft and hard', async ({
    tmp,
  }) => {
    const manifest = await model(tmp);
    const heartbeats: unknown[] = [];
    const input = gateInput(manifest, request(declared), {
      policy,
      // Fairness predicted 25 rows/s on wasm (half the reference machine's speed) = 50 requests/s on the reference
      // machine; explain's attribution throughput is no serving throughput and is not used.
      earlier: [
        earlierGate('explain', 'pass', {}, measured(2, 'wasm')),
        earlierGate('fairness', 'warn', {}, measured(25, 'wasm')),
      ],
    });
    const { result, evidence } = await runGate(tmp, input, heartbeats);

    // One GPU replica: $0.50 × 24 h × 30 days = $360 compute; risk premium $10,000 × (explain 0.5 × 0.001 pass +
    // fairness 1 × 0.01 warn + (scan 1 + license 0.5 + robustness 1) × 0.03 missing) = $10,000 × 0.0855 = $855;
    // TCO $1,215 is over the $1,000 soft limit and under the $2,000 hard limit.
    expect(result.verdict).toBe('warn');
    expect(result.metrics).toMatchObject({
      instanceType: 'gpu.t4',
      replicas: 1,
      throughputSource: 'measured',
      demandSource: 'declared',
      monthlyCompute: 360,
      monthlyRiskPremium: 855,
      monthlyTco: 1215,
      budgetVerdict: 'warn',
      budgetScope: 'team nlp',
      budgetSoft: 1000,
      budgetHard: 2000,
      sensitivityX0_5MonthlyTco: 1215,
      sensitivityX2MonthlyTco: 1215,
      pricesTakenAt: '2024-11-15',
    });
    expect(result.requiredApprovals).toEqual([
      {
        role: 'finops',
        count: 1,
        reason: 'cost: $1,215.00/month exceeds the soft limit of $1,000.00 for team nlp (hard $2,000.00)',
      },
    ]);
    expect(result.summary).toMatch(
      /^gpu\.t4 × 1 \(on-demand, aws us-east-1\): \$360\.00\/month compute \+ \$0\.00 storage \+ \$855\.00 risk premium = \$1,215\.00 TCO, \$0\.0035 per 1k requests/,
    );
    expect(result.summary).toContain('throughput measured');
    expect(result.deployment).toMatchObject({
      replicas: 1,
      nodeSelector: { 'node.kubernetes.io/instance-type': 'gpu.t4' },
      resources: { limits: { 'nvidia.com/gpu': '1' } },
    });
    expect(result.annotations).toEqual({
      'cost-monthly-usd': '1215.00',
      'cost-instance-type': 'gpu.t4',
      'cost-prices-taken-at': '2024-11-15',
    });
    expect(result.findings.map((f) => f.ruleId)).toEqual(['no-history', 'budget-soft-exceeded']);
    expect(heartbeats).toContainEqual(expect.objectContaining({ step: 'footprint' }));

    expect(evidence.footprint?.parameters).toBe(66083);
    expect(evidence.throughput?.detail).toMatch(/measured by fairness: 25 rows\/s on backend wasm/);
    expect(evidence.sizing?.candidates).toHaveLength(2);
    expect(evidence.sensitivity?.map((s) => s.trafficFactor)).toEqual([0.5, 1, 2]);
    expect(evidence.riskPremium?.terms.map((t) => t.state)).toEqual(['missing', 'missing', 'warn', 'missing', 'pass']);
    expect(evidence.pricing.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(evidence.tco).toEqual({ compute: 360, storage: 0, riskPremium: 855, total: 1215 });
  });

  test('passes under the soft limit with the declared compute when nothing was measured', async ({ tmp }) => {
    const manifest = await model(tmp);
    const passing = ['scan', 'license', 'fairness', 'robustness', 'explain'].map((g) => earlierGate(g, 'pass'));
    const input = gateInput(manifest, request({ ...declared, compute: { msPerRequest: 20 } }), {
      policy,
      earlier: passing,
    });
    const { result } = await runGate(tmp, input);
    expect(result.verdict).toBe('pass');
    expect(result.metrics).toMatchObject({ throughputSource: 'declared', monthlyRiskPremium: 40, monthlyTco: 400 });
    expect(result.requiredApprovals).toBeUndefined();
  });

  test('fails over the hard limit and sizes no Deployment', async ({ tmp }) => {
    const manifest = await model(tmp);
    const input = gateInput(manifest, request({ ...declared, compute: { msPerRequest: 20 } }), {
      policy: { ...policy, budgets: { costCenters: { 'cc-1234': { soft: 100, hard: 500 } } } },
    });
    const { result } = await runGate(tmp, input);
    expect(result.verdict).toBe('fail');
    expect(result.summary).toContain('$1,560.00/month exceeds the hard limit of $500.00 for cost center cc-1234');
    expect(result.deployment).toBeUndefined();
    expect(result.requiredApprovals).toBeUndefined();
  });

  test('forecasts from a history CSV shipped with the model and sizes for the forecast peak', async ({ tmp }) => {
    const { startMs, values } = seasonalHistory({ weeks: 3, base: 60, noise: 0.02 });
    const csv = [
      'timestamp,requests',
      ...values.map((v, i) => `${new Date(startMs + (i + 1) * 3600_000).toISOString()},${Math.round(v * 3600)}`),
    ];
    const manifest = await model(tmp, { 'traffic.csv': csv.join('\n') });
    const input = gateInput(
      manifest,
      request({ history: { csv: 'traffic.csv' }, latencySloMs: 100, compute: { msPerRequest: 20 } }),
      { policy },
    );
    const { result, evidence } = await runGate(tmp, input);
    expect(result.metrics).toMatchObject({ demandSource: 'forecast', forecastSeason: 'weekly' });
    // The pattern peaks at 60 × 1.5 = 90 req/s.
    expect(result.metrics.peakRps as number).toBeGreaterThan(85);
    expect(result.metrics.peakRps as number).toBeLessThan(95);
    expect(result.metrics.forecastMape as number).toBeLessThan(0.05);
    expect(evidence.demand?.history).toMatchObject({ source: 'csv traffic.csv', points: 504, stepSeconds: 3600 });
    expect(result.summary).toMatch(/forecast peak \d+(\.\d+)? req\/s \(weekly Holt-Winters, held-out MAPE \d\.\d%\)/);
  });

  test('fails when no instance type fits the model, naming why', async ({ tmp }) => {
    // A 20 GiB F16 tensor, header only: the file is sparse, so the test writes no 20 GiB.
    const header = JSON.stringify({ w: { dtype: 'F16', shape: [10 * 1024 ** 3], data_offsets: [0, 20 * 1024 ** 3] } });
    const prefix = Buffer.alloc(8 + header.length);
    prefix.writeBigUInt64LE(BigInt(header.length), 0);
    prefix.write(header, 8);
    const size = prefix.length + 20 * 1024 ** 3;
    const sha256 = createHash('sha256').update(prefix).digest('hex');
    const path = storePath(join(tmp, 'store'), sha256);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'w');
    await fh.write(prefix, 0, prefix.length, 0);
    await fh.truncate(size);
    await fh.close();
    const files = [{ path: 'model.safetensors', size, sha256 }];
    const manifest = await storeManifest(new FilesystemStore(join(tmp, 'store')), {
      model: 'big',
      version: '1',
      source: 'file:///big',
      resolvedRevision: 'file:///big',
      files,
      totalSize: size,
      manifestDigest: manifestDigest(files),
    });
    const { result } = await runGate(
      tmp,
      gateInput(manifest, request({ ...declared, compute: { msPerRequest: 20 } }), { policy }),
    );
    expect(result.verdict).toBe('fail');
    expect(result.findings.find((f) => f.severity === 'high')).toMatchObject({ ruleId: 'no-instance-fits' });
    expect(result.summary).toMatch(
      /^no instance type of .*pricing\.yaml fits \(2 tried\): cpu\.4x16: needs 25\.0 GiB of memory/,
    );
    expect(result.metrics.monthlyTco).toBeUndefined();
  });

  test('is an error, never a zero cost, when traffic is missing or negative', async ({ tmp }) => {
    const manifest = await model(tmp);
    const missing = await runGate(tmp, gateInput(manifest, request(undefined), { policy }));
    expect(missing.result).toMatchObject({ verdict: 'error', metrics: { error: 'InvalidTraffic' } });
    expect(missing.result.summary).toMatch(/request\.traffic is missing/);
    expect(missing.result.metrics.monthlyTco).toBeUndefined();

    const negative = await runGate(
      tmp,
      gateInput(manifest, request({ averageRequestsPerSecond: -3, peakRequestsPerSecond: 4 })),
    );
    expect(negative.result.verdict).toBe('error');
    expect(negative.result.summary).toContain('request.traffic.averageRequestsPerSecond: must be ≥ 0');
    expect(negative.evidence.error).toMatchObject({ code: 'InvalidTraffic' });
  });

  test('is an error when the model size cannot be read', async ({ tmp }) => {
    const dir = join(tmp, 'opaque');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.pt'), Buffer.alloc(1000, 3));
    const manifest = await storeModel(join(tmp, 'store'), dir, ['model.pt']);
    const { result } = await runGate(tmp, gateInput(manifest, request(declared), { policy }));
    expect(result).toMatchObject({ verdict: 'error', metrics: { error: 'UnreadableModel' } });
    expect(result.summary).toMatch(
      /the model's size cannot be read: no safetensors, GGUF or tfjs model\.json among its files \(model\.pt\)/,
    );
  });

  test('is an error when there is no throughput to size with, or the config is bad', async ({ tmp }) => {
    const manifest = await model(tmp);
    const none = await runGate(tmp, gateInput(manifest, request(declared), { policy }));
    expect(none.result.summary).toMatch(
      /no earlier gate measured rows per second, and request\.traffic\.compute\.msPerRequest is not declared/,
    );

    const unknownBackend = await runGate(
      tmp,
      gateInput(manifest, request(declared), {
        earlier: [earlierGate('evaluate', 'pass', {}, measured(5, 'webgpu'))],
      }),
    );
    expect(unknownBackend.result.summary).toMatch(
      /evaluate measured on backend "webgpu", which .* does not list under backends/,
    );

    // A bad cost: section fails the release non-retryably, like every gate's (a retry cannot fix a file).
    const badPolicy = await runGate(
      tmp,
      gateInput(manifest, request(declared), { policy: { headroom: 'lots' } }),
    ).catch((e: unknown) => e);
    expect(badPolicy).toBeInstanceOf(ApplicationFailure);
    expect(badPolicy).toMatchObject({ nonRetryable: true, type: FailureType.InvalidConfig });
    expect((badPolicy as Error).message).toMatch(
      /^invalid cost policy in config\/policies\/default\.yaml: cost\.headroom/,
    );

    const badCatalog = await runGate(tmp, gateInput(manifest, request(declared)), [], { currency: 'EUR' });
    expect(badCatalog.result.verdict).toBe('error');
    expect(badCatalog.result.summary).toMatch(
      /^cost could not decide: .*pricing\.yaml: currency: only USD is supported/,
    );
    expect(badCatalog.result.findings).toEqual([expect.objectContaining({ severity: 'high', waivable: false })]);
  });

  test('honours cancellation while it waits for Prometheus', async ({ tmp }) => {
    const manifest = await model(tmp);
    let asked!: () => void;
    const requested = new Promise<void>((resolve) => (asked = resolve));
    // A Prometheus that never answers: only the activity's cancellation can end the wait.
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => {
        asked();
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    const pricingFile = join(tmp, 'pricing.yaml');
    const { file: _f, digest: _d, ...data } = smallCatalog();
    await writeFile(pricingFile, stringify(data));
    const activities = createCostActivities({
      store: new FilesystemStore(join(tmp, 'store')),
      pricingFile,
      fetch: hanging,
    });
    const env = new MockActivityEnvironment(undefined, { logger: silent });
    const traffic = {
      history: { prometheus: { url: 'http://127.0.0.1:9', query: 'q' } },
      compute: { msPerRequest: 5 },
    };
    const running = env.run(activities.estimateCost, gateInput(manifest, request(traffic)));
    await requested;
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
  });
});
