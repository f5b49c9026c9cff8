/**
 * The cost stage at fleet scale, and its forecast against a naive baseline, in one run:
 *
 *   npx tsx bench/cost.ts [--versions 10000] [--series 300]
 *
 * 1. Sprawl report over a generated GitOps tree of `--versions` model versions (2 environments × 2 versions per model:
 *    half live in an overlay, half superseded), written by the gitops stage's own renderer, with three weeks of hourly
 *    utilization per live endpoint in memory: every version read and priced, every live endpoint forecast. Runs in a
 *    child process so its peak RSS is its own. Reference: reading and JSON-parsing the same evidence files.
 * 2. The estimate (sizing against config/pricing.yaml plus the ×0.5/×1/×2 sensitivity) for every version.
 * 3. Forecast error on `--series` generated histories (5 weeks hourly: daily and weekly seasonality, trends, noise,
 *    spikes): Holt-Winters vs the naive seasonal baseline (same hour last week) on the same held-out last week.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { forecastSeries, seasonalNaiveErrors, WEEK_SECONDS, type ForecastErrors } from '../activities/cost/forecast';
import type { RawSeries } from '../activities/cost/history';
import { GIB, sensitivity, sizeModel } from '../activities/cost/sizing';
import { sprawlReport } from '../activities/cost/sprawl';
import { LAYOUT_FILES, releaseDir, RELEASES_DIR } from '../activities/gitops/layout';
import { renderRelease } from '../activities/gitops/render';
import { costPolicySchema } from '../activities/cost/policy';
import { loadPricing, type PricingCatalog } from '../config/pricing';
import type { GateResult, GitOpsReleaseInput } from '../contract/types';

const HOURS = 3 * 7 * 24;
const START_MS = Date.UTC(2025, 0, 6);

/** mulberry32: seeded, so every run benchmarks the same data. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A request-rate history: daily and weekly seasonality of random strength, a trend, noise and rare spikes. */
function history(seed: number, hours: number): number[] {
  const r = rng(seed);
  const base = 5 + r() * 200;
  const daily = 0.2 + r() * 0.6;
  const weekend = 0.4 + r() * 0.6;
  const trendPerHour = (r() - 0.4) * 0.002 * base;
  const noise = 0.02 + r() * 0.12;
  const phase = r() * 24;
  const values: number[] = [];
  for (let h = 0; h < hours; h++) {
    const day = Math.floor(h / 24) % 7;
    let v = base * (1 + daily * Math.sin((2 * Math.PI * (h + phase)) / 24)) * (day >= 5 ? weekend : 1);
    v += trendPerHour * h;
    v *= 1 + (r() - 0.5) * 2 * noise;
    if (r() < 0.003) v *= 2 + r() * 2;
    values.push(Math.max(0, v));
  }
  return values;
}

function costGate(r: () => number): GateResult {
  const replicas = 1 + Math.floor(r() * 6);
  const perReplica = 150 + r() * 900;
  const at = '2025-01-01T10:00:00.000Z';
  return {
    gate: 'cost',
    verdict: 'pass',
    summary: 'generated',
    metrics: {
      instanceType: 'g5.xlarge',
      replicas,
      capacityPerReplicaRps: 20 + r() * 200,
      headroom: 0.3,
      monthlyCompute: perReplica * replicas,
      monthlyTco: perReplica * replicas + 50,
    },
    findings: [],
    deployment: {
      replicas: r() < 0.05 ? replicas * 4 : replicas,
      nodeSelector: { 'node.kubernetes.io/instance-type': 'g5.xlarge' },
    },
    startedAt: at,
    finishedAt: at,
  };
}

/** Writes the GitOps tree: per model, v1 then v2 into staging and production (v1 superseded by v2's overlay). */
async function generateTree(root: string, versions: number): Promise<{ models: number; live: number }> {
  const models = Math.ceil(versions / 4);
  const r = rng(7);
  for (let m = 0; m < models; m++) {
    const model = `model-${String(m).padStart(5, '0')}`;
    for (const version of ['1.0.0', '2.0.0']) {
      for (const environment of ['staging', 'production']) {
        const input: GitOpsReleaseInput = {
          releaseId: `release/${model}/${version}/${environment}`,
          runId: 'bench',
          request: {
            model: { name: model, version, source: `hf://bench/${model}@main` },
            environment,
            policy: 'default',
            team: `team-${m % 40}`,
            costCenter: `cc-${m % 17}`,
            requestedBy: 'bench',
          },
          manifest: {
            model,
            version,
            source: `hf://bench/${model}@main`,
            resolvedRevision: 'c0ffee',
            files: [{ path: 'model.safetensors', size: 1_000_000, sha256: 'a'.repeat(64) }],
            totalSize: 1_000_000,
            storeRoot: '/store',
            manifestDigest: 'b'.repeat(64),
          },
          gates: [costGate(r)],
          approvals: [],
          policy: { name: 'default', digest: 'c'.repeat(64) },
        };
        for (const [path, content] of renderRelease(input)) {
          if (path.includes('/base/')) continue;
          await mkdir(dirname(join(root, path)), { recursive: true });
          await writeFile(join(root, path), content);
        }
      }
    }
  }
  return { models, live: models * 2 };
}

function utilization(models: number): RawSeries[] {
  const series: RawSeries[] = [];
  for (let m = 0; m < models; m++) {
    for (const [e, environment] of ['staging', 'production'].entries()) {
      const idle = m % 50 === 0 && environment === 'staging';
      const values = idle ? new Array<number>(HOURS).fill(0) : history(m * 2 + e + 1, HOURS);
      series.push({
        labels: { model: `model-${String(m).padStart(5, '0')}`, environment },
        kind: 'rate',
        points: values.map((v, h) => ({ t: START_MS + h * 3_600_000, v })),
      });
    }
  }
  return series;
}

interface ChildResult {
  reportMs: number;
  floorMs: number;
  estimateMs: number;
  versions: number;
  live: number;
  flags: Record<string, number>;
  maxRss: number;
  rssBefore: number;
}

/** Child mode: everything measured here, so the peak RSS is the report's, not the generator's. */
async function child(root: string, models: number): Promise<void> {
  const catalog: PricingCatalog = await loadPricing();
  const series = utilization(models);
  const rssBefore = process.memoryUsage().rss;

  let start = performance.now();
  const report = await sprawlReport(root, root, { catalog, utilization: { source: 'generated', series } });
  const reportMs = performance.now() - start;
  // maxRSS is a high-water mark: read it before the reference and estimate phases add their own garbage.
  const maxRss = process.resourceUsage().maxRSS * 1024;

  // Floor: only reading and parsing the evidence files the report reads.
  start = performance.now();
  let parsed = 0;
  for (const model of await readdir(join(root, RELEASES_DIR))) {
    for (const version of await readdir(join(root, RELEASES_DIR, model))) {
      for (const env of await readdir(join(root, RELEASES_DIR, model, version))) {
        JSON.parse(await readFile(join(root, releaseDir(model, version, env), LAYOUT_FILES.evidence), 'utf8'));
        parsed += 1;
      }
    }
  }
  const floorMs = performance.now() - start;

  // The estimate itself (sizing + sensitivity over the whole catalog) for every version.
  const policy = costPolicySchema.parse({});
  const r = rng(11);
  start = performance.now();
  for (let i = 0; i < report.versions.length; i++) {
    const weight = (0.05 + r() * 30) * GIB;
    const input = {
      model: { weightBytes: weight, storedBytes: weight, kvCacheBytes: 0 },
      demand: { peakRps: 1 + r() * 500, averageRps: 1 + r() * 100 },
      referenceRps: 5 + r() * 200,
      latencySloMs: 300,
      hoursPerDay: 24,
      daysPerMonth: 30.4,
    };
    sizeModel(input, catalog, policy);
    sensitivity(input, catalog, policy);
  }
  const estimateMs = performance.now() - start;

  const flags: Record<string, number> = {};
  for (const f of report.flags) flags[f.kind] = (flags[f.kind] ?? 0) + 1;
  const result: ChildResult = {
    reportMs,
    floorMs,
    estimateMs,
    versions: report.versions.length,
    live: report.totals.liveVersions,
    flags,
    maxRss,
    rssBefore,
  };
  if (parsed !== report.versions.length)
    throw new Error(`parsed ${parsed} evidence files, report has ${report.versions.length}`);
  process.stdout.write(JSON.stringify(result));
}

async function runChild(root: string, models: number): Promise<ChildResult> {
  const proc = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child', root, String(models)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`bench child exited with ${code}`);
  return JSON.parse(out) as ChildResult;
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

function forecastComparison(count: number): void {
  const hw: ForecastErrors[] = [];
  const naive: ForecastErrors[] = [];
  let wins = 0;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const series = { startMs: START_MS, stepSeconds: 3600, values: history(10_000 + i, 5 * 7 * 24) };
    const f = forecastSeries(series, { holdoutFraction: 0.2, horizonDays: 30 });
    const n = seasonalNaiveErrors(series, WEEK_SECONDS, 0.2);
    hw.push(f.holdout);
    naive.push(n);
    if (f.holdout.rmse < n.rmse) wins += 1;
  }
  const ms = performance.now() - start;
  const row = (name: string, e: ForecastErrors[]): string =>
    `  ${name.padEnd(34)} MAPE ${(mean(e.map((x) => x.mape ?? 0)) * 100).toFixed(2).padStart(6)}%  sMAPE ${(mean(e.map((x) => x.smape)) * 100).toFixed(2).padStart(6)}%  RMSE ${mean(
      e.map((x) => x.rmse),
    )
      .toFixed(3)
      .padStart(8)}`;
  console.log(`forecast error on ${count} generated histories (5 weeks hourly, last week held out):`);
  console.log(row('Holt-Winters (additive, weekly)', hw));
  console.log(row('naive seasonal (same hour last wk)', naive));
  const ratio = (k: 'smape' | 'rmse'): string => (mean(hw.map((x) => x[k])) / mean(naive.map((x) => x[k]))).toFixed(3);
  console.log(
    `  ratio Holt-Winters / naive: sMAPE ${ratio('smape')}, RMSE ${ratio('rmse')} (< 1 = better); Holt-Winters wins ${wins}/${count} on RMSE`,
  );
  console.log(`  fit + holdout + 30-day forecast: ${(ms / count).toFixed(2)} ms per series`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      child: { type: 'boolean' },
      versions: { type: 'string', default: '10000' },
      series: { type: 'string', default: '300' },
    },
  });
  if (values.child) {
    await child(positionals[0] as string, Number(positionals[1]));
    return;
  }
  const versions = Number(values.versions);
  const root = await mkdtemp(join(tmpdir(), 'mrel-bench-cost-'));
  try {
    let start = performance.now();
    const { models, live } = await generateTree(root, versions);
    console.log(
      `generated ${models * 4} model versions (${models} models, ${live} live endpoints) in ${((performance.now() - start) / 1000).toFixed(1)} s`,
    );
    start = performance.now();
    const r = await runChild(root, models);
    const mib = (b: number): string => (b / 1024 / 1024).toFixed(0);
    console.log(
      `sprawl report: ${r.versions} versions, ${r.live} live endpoints forecast from 3 weeks hourly utilization`,
    );
    console.log(
      `  time ${(r.reportMs / 1000).toFixed(2)} s (${((r.reportMs / r.versions) * 1000).toFixed(0)} µs per version)`,
    );
    console.log(
      `  reference, read + JSON.parse of the same evidence files: ${(r.floorMs / 1000).toFixed(2)} s; ratio ${(r.reportMs / r.floorMs).toFixed(2)}×`,
    );
    console.log(`  flags: ${JSON.stringify(r.flags)}`);
    console.log(
      `  peak RSS ${mib(r.maxRss)} MiB (RSS before the report, with the utilization in memory: ${mib(r.rssBefore)} MiB)`,
    );
    console.log(
      `estimate (sizing over config/pricing.yaml + ×0.5/×1/×2 sensitivity) for ${r.versions} versions: ${(r.estimateMs / 1000).toFixed(2)} s (${((r.estimateMs / r.versions) * 1000).toFixed(0)} µs each)`,
    );
    forecastComparison(Number(values.series));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
