/**
 * The cost estimate of one release, end to end: footprint → throughput → demand (forecast or declared) → sizing and
 * price → risk premium → budget verdict. Knows nothing of Temporal: the activity in ./index wires it to heartbeats,
 * cancellation and the evidence file. Reads artifacts only through the manifest (via `locate`).
 */
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { PricingCatalog } from '../../config/pricing';
import { parseCostPolicy, type CostPolicy } from './policy';
import type { ArtifactFile, ArtifactManifest, Finding, GateInput, GateResult, Severity } from '../../contract/types';
import { applyWaivers, severityCounts, verdictFor } from '../common/gate-kit';
import {
  checkFilePath,
  checkUrl,
  policyFetch,
  SourceNotAllowedError,
  type SourcePolicy,
} from '../common/source-policy';
import { evaluateBudgets, usd, usdFine, type BudgetOutcome } from './budget';
import { CostError } from './errors';
import { forecastSeries, ForecastUnavailable, type Forecast } from './forecast';
import { readFootprint, type ModelFootprint } from './footprint';
import { parseHistoryCsv, prometheusRange, toSeries, type RawSeries } from './history';
import { riskPremium, type RiskPremium } from './risk';
import {
  deploymentSizing,
  GIB,
  sensitivity,
  sizeModel,
  type Demand,
  type SensitivityRow,
  type SizingInput,
  type SizingResult,
} from './sizing';
import { resolveThroughput, type Throughput } from './throughput';
import { durationMs } from '../../contract/duration';
import { parseTraffic, resolveInstant, type TrafficProfile } from './traffic';

export const GATE = 'cost';

export interface CostProgress {
  step: 'footprint' | 'history' | 'forecast' | 'sizing';
  file?: string;
  done?: number;
  total?: number;
}

export interface EstimateEnv {
  catalog: PricingCatalog;
  /** Where a manifest file's bytes are (the artifact store, or a model directory for the CLI). */
  locate: (file: ArtifactFile) => string;
  fetch?: typeof fetch;
  /**
   * Where a request's history may come from (the worker's config/sources.yaml): an absolute CSV path must lie in a
   * file root and a Prometheus URL on an allowed host, connected through a policy-checked pool. Absent for the CLI,
   * which reads what its user points it at.
   */
  sourcePolicy?: SourcePolicy;
  now?: () => Date;
  signal?: AbortSignal;
  onProgress?: (progress: CostProgress) => void;
}

export interface DemandResolution {
  source: 'forecast' | 'declared';
  demand: Demand;
  forecast?: Forecast;
  history?: { source: string; points: number; stepSeconds: number; fromMs: number; toMs: number };
  /** Why the history was not used, when one was given. */
  note?: string;
}

/** Everything the gate knows, written to the evidence file. */
export interface CostEvidence {
  gate: typeof GATE;
  releaseId: string;
  verdict: GateResult['verdict'];
  summary: string;
  error?: { code: string; problems: string[] };
  pricing: { file: string; digest: string; pricesTakenAt: string; currency: string; source: string };
  policy?: CostPolicy;
  traffic?: TrafficProfile;
  footprint?: ModelFootprint;
  throughput?: Throughput;
  demand?: DemandResolution;
  sizing?: SizingResult;
  sensitivity?: SensitivityRow[];
  riskPremium?: RiskPremium;
  budget?: BudgetOutcome;
  tco?: { compute: number; storage: number; riskPremium: number; total: number };
  findings: Finding[];
}

/** What the cost estimate reads of a release: the gate input with its manifest loaded. */
export type CostInput = Omit<GateInput, 'manifest'> & { manifest: ArtifactManifest };

export interface CostEstimate {
  /** The gate result without `evidence` (the activity adds the evidence path once written). */
  result: GateResult;
  evidence: CostEvidence;
}

/** Estimates the release's cost and decides the budget gate. Transient source failures throw; the rest is a verdict. */
export async function estimateReleaseCost(input: CostInput, env: EstimateEnv): Promise<CostEstimate> {
  const now = env.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const pricing = pricingRef(env.catalog);
  const parsedPolicy = parseCostPolicy(input.policy);
  if ('problems' in parsedPolicy) {
    return errorEstimate(
      input,
      pricing,
      startedAt,
      now,
      new CostError('InvalidConfig', "the policy's cost section is invalid", parsedPolicy.problems),
    );
  }
  const policy = parsedPolicy.policy;
  const evidence: Partial<CostEvidence> = { policy };
  try {
    const traffic = parseTraffic(input.request.traffic);
    evidence.traffic = traffic;
    const footprint = await readFootprint(input.manifest.files, env.locate, {
      signal: env.signal,
      onProgress: (p) => env.onProgress?.({ step: 'footprint', ...p }),
    });
    evidence.footprint = footprint;
    const throughput = resolveThroughput(input.earlier, traffic, env.catalog);
    evidence.throughput = throughput;
    const demand = await resolveDemand(input, traffic, policy, env);
    evidence.demand = demand;
    env.onProgress?.({ step: 'sizing' });
    return decide(input, env, { policy, traffic, footprint, throughput, demand, pricing, startedAt, now, evidence });
  } catch (err) {
    if (err instanceof CostError) return errorEstimate(input, pricing, startedAt, now, err, evidence);
    throw err;
  }
}

interface Resolved {
  policy: CostPolicy;
  traffic: TrafficProfile;
  footprint: ModelFootprint;
  throughput: Throughput;
  demand: DemandResolution;
  pricing: CostEvidence['pricing'];
  startedAt: string;
  now: () => Date;
  evidence: Partial<CostEvidence>;
}

function decide(input: CostInput, env: EstimateEnv, r: Resolved): CostEstimate {
  const { policy, traffic, footprint, throughput, demand } = r;
  const findings: Finding[] = [];
  const finding = (ruleId: string, severity: Severity, location: string, message: string, waivable = false): void => {
    findings.push({ gate: GATE, ruleId, severity, location, message, waivable });
  };

  const tokens = traffic.tokensPerRequest ?? footprint.llm?.contextLength ?? 2048;
  const kvCacheBytes = (footprint.llm?.kvCacheBytesPerToken ?? 0) * tokens * policy.kvCacheSequences;
  const sizingInput: SizingInput = {
    model: { weightBytes: footprint.memoryBytes, storedBytes: input.manifest.totalSize, kvCacheBytes },
    demand: demand.demand,
    referenceRps: throughput.referenceRps,
    latencySloMs: traffic.latencySloMs ?? policy.slo.latencyMs,
    hoursPerDay: traffic.hoursPerDay,
    daysPerMonth: traffic.daysPerMonth,
  };
  const sizing = sizeModel(sizingInput, env.catalog, policy);
  const rows = sensitivity(sizingInput, env.catalog, policy);
  const risk = riskPremium(input.earlier, input.request.environment, policy.riskPremium);
  Object.assign(r.evidence, { sizing, sensitivity: rows, riskPremium: risk });

  for (const f of footprint.unread) {
    finding(
      'unread-weights',
      'low',
      f.path,
      `not a weight format the reader knows; counted at its file size (${(f.size / GIB).toFixed(2)} GiB) toward memory`,
      true,
    );
  }
  if (throughput.skipped)
    finding(
      'measured-throughput-unused',
      'low',
      'earlier gates',
      `${throughput.skipped}; used the declared compute instead`,
      true,
    );
  if (demand.note) {
    const severity = demand.forecast ? 'low' : traffic.history ? 'medium' : 'info';
    finding(
      demand.forecast ? 'forecast-unreliable' : traffic.history ? 'history-unusable' : 'no-history',
      severity,
      'request.traffic',
      demand.note,
      true,
    );
  }

  let budget: BudgetOutcome | undefined;
  let tco: CostEvidence['tco'];
  let deployment: GateResult['deployment'];
  const chosen = sizing.chosen;
  if (!chosen) {
    finding('no-instance-fits', 'high', env.catalog.file, sizing.noFit ?? 'no instance type fits');
  } else {
    tco = {
      compute: chosen.breakdown.compute,
      storage: chosen.breakdown.storage,
      riskPremium: risk.monthly,
      total: chosen.monthlyTotal + risk.monthly,
    };
    const basis = policy.budgetBasis === 'tco' ? tco.total : tco.compute;
    budget = evaluateBudgets(basis, { team: input.request.team, costCenter: input.request.costCenter }, policy);
    for (const check of budget.checks) {
      if (check.verdict === 'fail')
        finding('budget-hard-exceeded', 'high', `policy cost.budgets (${check.scope})`, check.reason);
      if (check.verdict === 'warn')
        finding('budget-soft-exceeded', 'medium', `policy cost.budgets (${check.scope})`, check.reason);
    }
    if (budget.checks.length === 0 && policy.unbudgeted !== 'pass') {
      finding('unbudgeted', policy.unbudgeted === 'fail' ? 'high' : 'medium', 'policy cost.budgets', budget.reason);
    }
    deployment = deploymentSizing(chosen, policy.purchase);
  }
  Object.assign(r.evidence, { budget, tco });

  const finishedAt = r.now().toISOString();
  const judged = applyWaivers(findings, input.waivers, finishedAt);
  const verdict = verdictFor({ findings: judged, failOn: 'high', warnOn: 'medium' });
  const summary = summarize(r, sizing, risk, budget, tco);
  const metrics: GateResult['metrics'] = {
    ...footprintMetrics(footprint),
    throughputSource: throughput.source,
    referenceRps: round(throughput.referenceRps, 4),
    demandSource: demand.source,
    peakRps: round(demand.demand.peakRps, 3),
    averageRps: round(demand.demand.averageRps, 3),
    latencySloMs: sizingInput.latencySloMs,
    headroom: policy.headroom,
    purchase: policy.purchase,
    ...(demand.forecast ? forecastMetrics(demand.forecast) : {}),
    ...(chosen && tco
      ? {
          instanceType: chosen.instanceType.name,
          provider: chosen.instanceType.provider,
          region: chosen.instanceType.region,
          replicas: chosen.replicas,
          capacityPerReplicaRps: round(chosen.capacityRps, 3),
          memoryNeededGiB: round(chosen.memoryNeededGiB, 2),
          latencyAtPeakMs: round(chosen.latencyAtPeakMs, 1),
          monthlyCompute: round(tco.compute, 2),
          monthlyStorage: round(tco.storage, 2),
          monthlyRiskPremium: round(tco.riskPremium, 2),
          monthlyTco: round(tco.total, 2),
          ...(chosen.costPer1kRequests === undefined ? {} : { costPer1kRequests: round(chosen.costPer1kRequests, 4) }),
        }
      : {}),
    ...sensitivityMetrics(rows, risk.monthly),
    ...(budget ? budgetMetrics(budget) : {}),
    pricesTakenAt: env.catalog.pricesTakenAt,
    pricingDigest: env.catalog.digest.slice(0, 12),
    ...severityCounts(judged),
    ...(judged.length > MAX_RESULT_FINDINGS ? { findingsOmitted: judged.length - MAX_RESULT_FINDINGS } : {}),
  };
  const annotations: Record<string, string> =
    chosen && tco
      ? {
          'cost-monthly-usd': tco.total.toFixed(2),
          'cost-instance-type': chosen.instanceType.name,
          'cost-prices-taken-at': env.catalog.pricesTakenAt,
        }
      : {};
  const result: GateResult = {
    gate: GATE,
    verdict,
    summary,
    metrics,
    findings: judged.slice(0, MAX_RESULT_FINDINGS),
    ...(verdict === 'warn' && budget && budget.requiredApprovals.length > 0
      ? { requiredApprovals: budget.requiredApprovals }
      : {}),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(deployment && verdict !== 'fail' ? { deployment } : {}),
    startedAt: r.startedAt,
    finishedAt,
  };
  return {
    result,
    evidence: {
      gate: GATE,
      releaseId: input.releaseId,
      verdict,
      summary,
      pricing: r.pricing,
      ...r.evidence,
      findings: judged,
    },
  };
}

function summarize(
  r: Resolved,
  sizing: SizingResult,
  risk: RiskPremium,
  budget: BudgetOutcome | undefined,
  tco: CostEvidence['tco'],
): string {
  const { demand, throughput } = r;
  const load =
    demand.source === 'forecast' && demand.forecast
      ? `forecast peak ${round(demand.demand.peakRps, 2)} req/s (${demand.forecast.season} Holt-Winters${demand.forecast.holdout.mape === undefined ? '' : `, held-out MAPE ${(demand.forecast.holdout.mape * 100).toFixed(1)}%`})`
      : `declared peak ${round(demand.demand.peakRps, 2)} req/s${demand.note ? ` (${demand.note.split(';')[0]})` : ''}`;
  const basis = `${load}; throughput ${throughput.source}`;
  const chosen = sizing.chosen;
  if (!chosen || !tco) return `${sizing.noFit ?? 'no instance type fits'}; ${basis}`;
  const t = chosen.instanceType;
  const perK = chosen.costPer1kRequests === undefined ? '' : `, ${usdFine(chosen.costPer1kRequests)} per 1k requests`;
  const premium = risk.monthly > 0 ? ` + ${usd(risk.monthly)} risk premium` : '';
  return (
    `${t.name} × ${chosen.replicas} (${r.policy.purchase}, ${t.provider} ${t.region}): ${usd(tco.compute)}/month compute + ` +
    `${usd(tco.storage)} storage${premium} = ${usd(tco.total)} TCO${perK}; ${basis}; ${budget?.reason ?? 'no budget'}`
  );
}

function footprintMetrics(f: ModelFootprint): GateResult['metrics'] {
  return {
    parameters: f.parameters,
    weightBytes: f.storedBytes,
    loadedWeightBytes: f.memoryBytes,
    weightFormats: f.formats.join(','),
    weightDtypes: Object.keys(f.byDtype).sort().join(','),
  };
}

function forecastMetrics(f: Forecast): GateResult['metrics'] {
  return {
    forecastSeason: f.season,
    ...(f.holdout.mape === undefined ? {} : { forecastMape: round(f.holdout.mape, 4) }),
    forecastSmape: round(f.holdout.smape, 4),
    forecastRmse: round(f.holdout.rmse, 4),
  };
}

/** TCO at each traffic factor: compute and storage as sized for that traffic, plus the (traffic-independent) risk premium. */
function sensitivityMetrics(rows: SensitivityRow[], riskPremium: number): GateResult['metrics'] {
  const metrics: GateResult['metrics'] = {};
  for (const row of rows) {
    const key = `sensitivityX${String(row.trafficFactor).replace('.', '_')}MonthlyTco`;
    metrics[key] = row.monthlyTotal === undefined ? 'no fit' : round(row.monthlyTotal + riskPremium, 2);
  }
  return metrics;
}

function budgetMetrics(b: BudgetOutcome): GateResult['metrics'] {
  const strictest = b.checks.find((c) => c.verdict === b.verdict) ?? b.checks[0];
  return {
    budgetVerdict: b.verdict,
    ...(strictest
      ? { budgetScope: strictest.scope, budgetSoft: strictest.soft, budgetHard: strictest.hard }
      : { budgetScope: 'none' }),
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function pricingRef(catalog: PricingCatalog): CostEvidence['pricing'] {
  return {
    file: catalog.file,
    digest: catalog.digest,
    pricesTakenAt: catalog.pricesTakenAt,
    currency: catalog.currency,
    source: catalog.source,
  };
}

/** The forecast when a usable history is given; the declared profile otherwise, saying why. */
export async function resolveDemand(
  input: CostInput,
  traffic: TrafficProfile,
  policy: CostPolicy,
  env: EstimateEnv,
): Promise<DemandResolution> {
  const declared =
    traffic.averageRequestsPerSecond !== undefined && traffic.peakRequestsPerSecond !== undefined
      ? { peakRps: traffic.peakRequestsPerSecond, averageRps: traffic.averageRequestsPerSecond }
      : undefined;
  const fallback = (note: string, cause?: unknown): DemandResolution => {
    if (!declared) {
      throw new CostError(
        'InvalidTraffic',
        `${note}; declare request.traffic.averageRequestsPerSecond and peakRequestsPerSecond as a fallback`,
        undefined,
        { cause },
      );
    }
    return { source: 'declared', demand: declared, note };
  };
  if (!traffic.history) return fallback('no traffic history given; used the declared profile');

  env.onProgress?.({ step: 'history' });
  let raw: RawSeries[];
  let source: string;
  let step: number | undefined;
  try {
    if (traffic.history.csv !== undefined) {
      source = `csv ${traffic.history.csv}`;
      raw = parseHistoryCsv(await readHistoryCsv(input, traffic.history.csv, env), traffic.history.csv);
    } else {
      const p = traffic.history.prometheus as NonNullable<typeof traffic.history.prometheus>;
      const field = 'traffic.history.prometheus.url';
      if (env.sourcePolicy) await checkUrl(p.url, env.sourcePolicy, field);
      const nowMs = (env.now ?? (() => new Date()))().getTime();
      step = durationMs(p.step) / 1000;
      source = `prometheus ${p.url} ${p.query}`;
      raw = await prometheusRange(
        {
          url: p.url,
          query: p.query,
          startMs: resolveInstant(p.start, nowMs) as number,
          endMs: resolveInstant(p.end, nowMs) as number,
          stepSeconds: step,
        },
        env.sourcePolicy ? policyFetch(env.sourcePolicy, field, env.fetch) : env.fetch,
        env.signal,
      );
    }
    if (raw.length !== 1) {
      throw new CostError(
        'InvalidHistory',
        raw.length === 0
          ? `${source} returned no data`
          : `${source} returned ${raw.length} series; aggregate them into one (e.g. sum(...)) or give one model's rows`,
      );
    }
  } catch (err) {
    if (err instanceof SourceNotAllowedError) {
      return fallback(
        `the traffic history is not read: ${err.message}`,
        new CostError('InvalidHistory', err.message, undefined, { cause: err }),
      );
    }
    if (err instanceof CostError) return fallback(`the traffic history is unusable: ${err.message}`, err);
    throw err;
  }
  let series;
  try {
    series = toSeries(raw[0] as RawSeries, source, step);
  } catch (err) {
    if (err instanceof CostError) return fallback(`the traffic history is unusable: ${err.message}`, err);
    throw err;
  }
  const history = {
    source,
    points: series.values.length,
    stepSeconds: series.stepSeconds,
    fromMs: series.startMs,
    toMs: series.startMs + series.values.length * series.stepSeconds * 1000,
  };
  env.onProgress?.({ step: 'forecast' });
  let forecast: Forecast;
  try {
    forecast = forecastSeries(series, {
      season: policy.forecast.season,
      holdoutFraction: policy.forecast.holdoutFraction,
      horizonDays: policy.forecast.horizonDays,
      signal: env.signal,
    });
  } catch (err) {
    if (err instanceof ForecastUnavailable) return { ...fallback(`no forecast: ${err.message}`), history };
    throw err;
  }
  const smape = forecast.holdout.smape;
  return {
    source: 'forecast',
    demand: { peakRps: forecast.horizon.peak, averageRps: forecast.horizon.mean },
    forecast,
    history,
    ...(smape > policy.forecast.maxSmape
      ? {
          note: `the forecast's held-out sMAPE is ${(smape * 100).toFixed(1)}%, above the policy's ${(policy.forecast.maxSmape * 100).toFixed(0)}%; treat the peak with care`,
        }
      : {}),
  };
}

/** A history CSV shipped with the model (a manifest path) or, for operators, an absolute path on the worker. */
async function readHistoryCsv(input: CostInput, path: string, env: EstimateEnv): Promise<string> {
  const shipped = input.manifest.files.find((f) => f.path === path);
  let file = shipped ? env.locate(shipped) : isAbsolute(path) ? path : undefined;
  if (!shipped && file && env.sourcePolicy) {
    file = (await checkFilePath(file, env.sourcePolicy, 'traffic.history.csv')) ?? file;
  }
  if (!file) {
    throw new CostError(
      'InvalidHistory',
      `request.traffic.history.csv "${path}" is neither a file of the model nor an absolute path`,
    );
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CostError(
      'InvalidHistory',
      `request.traffic.history.csv "${path}" cannot be read: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
}

function errorEstimate(
  input: CostInput,
  pricing: CostEvidence['pricing'],
  startedAt: string,
  now: () => Date,
  err: CostError,
  partial: Partial<CostEvidence> = {},
): CostEstimate {
  return errorResult(input.releaseId, pricing, startedAt, now().toISOString(), err, partial);
}

/** The `error` verdict (the gate could not decide), naming the reason; never a zero cost. */
export function errorResult(
  releaseId: string,
  pricing: CostEvidence['pricing'] | undefined,
  startedAt: string,
  finishedAt: string,
  err: CostError | { code: string; message: string; problems: string[] },
  partial: Partial<CostEvidence> = {},
): CostEstimate {
  const summary = `cost could not be estimated: ${err.problems.join('; ')}`;
  const findings: Finding[] = err.problems.map((message) => ({
    gate: GATE,
    ruleId: `cost-${err.code.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? '' : '-') + c.toLowerCase())}`,
    severity: 'high',
    location:
      err.code === 'InvalidTraffic' ? 'request.traffic' : err.code === 'UnreadableModel' ? 'manifest' : 'config',
    message,
    waivable: false,
  }));
  return {
    result: {
      gate: GATE,
      verdict: 'error',
      summary,
      metrics: { error: err.code },
      findings: findings.slice(0, MAX_RESULT_FINDINGS),
      startedAt,
      finishedAt,
    },
    evidence: {
      gate: GATE,
      releaseId,
      verdict: 'error',
      summary,
      error: { code: err.code, problems: err.problems },
      pricing: pricing ?? { file: '', digest: '', pricesTakenAt: '', currency: 'USD', source: '' },
      ...partial,
      findings,
    },
  };
}
