/**
 * Model sprawl: what a GitOps repository deploys, what each deployed model version costs, and where money is wasted.
 *
 * Reads the layout the gitops stage writes (activities/gitops/layout.ts): each overlay's kustomization and deployment
 * patch (what is live: the version label, replicas, node selector, namespace = environment) and each release folder's
 * summary (every version ever released, with the cost gate's metrics).
 * Flags several versions of one model live in one environment, replicas far above the forecast need, and endpoints
 * that sit idle given a utilization history.
 */
import { readdir, readFile, rm, stat, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleGit } from 'simple-git';
import { parse } from 'yaml';
import { hourlyPrice, type PricingCatalog } from '../../config/pricing';
import type { GateResult } from '../../contract/types';
import {
  APP_LABELS,
  APPS_DIR,
  LAYOUT_FILES,
  NODE_INSTANCE_TYPE_LABEL,
  RELEASE_LABELS,
  RELEASES_DIR,
  overlayPath,
  overlaysDir,
  prometheusLabelName,
  releaseDir,
} from '../gitops/layout';
import { forecastSeries, ForecastUnavailable } from './forecast';
import { toSeries, type RawSeries } from './history';

export interface VersionEstimate {
  source: 'evidence' | 'catalog';
  instanceType?: string;
  /** Replicas the cost gate sized (evidence) or the deployed count (catalog). */
  sizedReplicas?: number;
  monthlyTco: number;
  monthlyCompute: number;
  costPer1kRequests?: number;
  capacityPerReplicaRps?: number;
  headroom?: number;
  peakRps?: number;
}

export interface DeployedVersion {
  model: string;
  version: string;
  environment: string;
  /** `live` when an overlay deploys it now; `superseded` when only its evidence remains. */
  state: 'live' | 'superseded';
  overlay?: string;
  replicas?: number;
  instanceType?: string;
  team?: string;
  costCenter?: string;
  evidence?: string;
  decidedAt?: string;
  estimate?: VersionEstimate;
  /** Monthly cost at the deployed replica count (live versions). */
  monthlyDeployed?: number;
  utilization?: { meanRps: number; peakRps: number; forecastPeakRps?: number; neededReplicas?: number };
}

export type SprawlKind = 'multiple-live-versions' | 'overprovisioned' | 'idle' | 'no-estimate';

export interface SprawlFlag {
  kind: SprawlKind;
  model: string;
  environment: string;
  versions: string[];
  message: string;
  /** Monthly USD that removing the waste would save, when it can be told. */
  monthlySavings?: number;
}

export interface SprawlReport {
  repository: string;
  versions: DeployedVersion[];
  flags: SprawlFlag[];
  totals: {
    liveVersions: number;
    supersededVersions: number;
    monthlyLive: number;
    monthlySavings: number;
    byEnvironment: Record<string, number>;
    byTeam: Record<string, number>;
  };
  utilization?: { source: string; series: number; matched: number };
}

export interface SprawlOptions {
  catalog?: PricingCatalog;
  /** Per-endpoint request rates; series labelled model + environment (and optionally version). */
  utilization?: { source: string; series: RawSeries[] };
  overprovisionFactor?: number;
  idleRequestsPerSecond?: number;
  /** Headroom used for the need when the evidence does not say (the policy's). */
  headroom?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

interface Overlay {
  model: string;
  dir: string;
  path: string;
  environment: string;
  version?: string;
  replicas?: number;
  instanceType?: string;
  team?: string;
  costCenter?: string;
}

/**
 * Opens a GitOps repository: a work tree is read in place; a bare repository or URL is cloned (depth 1) into a
 * temporary folder that `close()` removes.
 */
export async function openGitOpsRepo(
  repo: string,
  branch = 'main',
): Promise<{ dir: string; close: () => Promise<void> }> {
  if ((await isDir(join(repo, APPS_DIR))) || (await isDir(join(repo, RELEASES_DIR)))) {
    return { dir: repo, close: async () => {} };
  }
  const tmp = await mkdtemp(join(tmpdir(), 'mrel-sprawl-'));
  const dir = join(tmp, 'repo');
  try {
    await simpleGit({ baseDir: tmp }).raw(['clone', '-q', '--depth', '1', '--branch', branch, repo, dir]);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw new Error(`cannot read the GitOps repository ${repo} (branch ${branch}): ${(err as Error).message.trim()}`, {
      cause: err,
    });
  }
  return { dir, close: () => rm(tmp, { recursive: true, force: true }) };
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function list(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function readOverlays(root: string): Promise<Overlay[]> {
  const overlays: Overlay[] = [];
  for (const model of await list(join(root, APPS_DIR))) {
    for (const dir of await list(join(root, overlaysDir(model)))) {
      const path = overlayPath(model, dir);
      let patch: unknown;
      let kustomization: unknown;
      try {
        patch = parse(await readFile(join(root, path, LAYOUT_FILES.deploymentPatch), 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new Error(`${path}/${LAYOUT_FILES.deploymentPatch} cannot be read: ${(err as Error).message}`, {
          cause: err,
        });
      }
      try {
        kustomization = parse(await readFile(join(root, path, LAYOUT_FILES.kustomization), 'utf8'));
      } catch {
        kustomization = undefined;
      }
      const p = patch as {
        metadata?: { labels?: Record<string, string> };
        spec?: { replicas?: number; template?: { spec?: { nodeSelector?: Record<string, string> } } };
      };
      const labels = p?.metadata?.labels ?? {};
      const namespace = (kustomization as { namespace?: unknown } | undefined)?.namespace;
      overlays.push({
        model: labels[RELEASE_LABELS.model] ?? model,
        dir,
        path,
        environment: typeof namespace === 'string' ? namespace : dir,
        version: labels[RELEASE_LABELS.version],
        replicas: typeof p?.spec?.replicas === 'number' ? p.spec.replicas : 1,
        instanceType:
          p?.spec?.template?.spec?.nodeSelector?.[NODE_INSTANCE_TYPE_LABEL] ?? labels[RELEASE_LABELS.instanceType],
        team: labels[RELEASE_LABELS.team],
        costCenter: labels[RELEASE_LABELS.costCenter],
      });
    }
  }
  return overlays;
}

interface EvidenceRecord {
  model: string;
  version: string;
  environment: string;
  path: string;
  decidedAt?: string;
  team?: string;
  costCenter?: string;
  cost?: GateResult;
}

async function readEvidence(root: string, onFile?: () => void): Promise<EvidenceRecord[]> {
  const records: EvidenceRecord[] = [];
  for (const model of await list(join(root, RELEASES_DIR))) {
    for (const version of await list(join(root, RELEASES_DIR, model))) {
      for (const environment of await list(join(root, RELEASES_DIR, model, version))) {
        const path = `${releaseDir(model, version, environment)}/${LAYOUT_FILES.evidence}`;
        let doc: {
          decidedAt?: string;
          request?: { team?: string; costCenter?: string };
          gates?: GateResult[];
        };
        try {
          doc = JSON.parse(await readFile(join(root, path), 'utf8')) as typeof doc;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw new Error(`${path} cannot be read: ${(err as Error).message}`, { cause: err });
        }
        onFile?.();
        records.push({
          model,
          version,
          environment,
          path,
          decidedAt: doc.decidedAt,
          team: doc.request?.team,
          costCenter: doc.request?.costCenter,
          cost: [...(doc.gates ?? [])].reverse().find((g) => g.gate === 'cost'),
        });
      }
    }
  }
  return records;
}

function num(metrics: GateResult['metrics'] | undefined, key: string): number | undefined {
  const v = metrics?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Hours in a month of round-the-clock operation (365.25 × 24 / 12). */
export const HOURS_PER_MONTH = 730.5;

function estimateFrom(
  record: EvidenceRecord | undefined,
  overlay: Overlay | undefined,
  catalog?: PricingCatalog,
): VersionEstimate | undefined {
  const m = record?.cost?.metrics;
  const tco = num(m, 'monthlyTco');
  if (m && tco !== undefined && record?.cost?.verdict !== 'error') {
    return {
      source: 'evidence',
      instanceType: typeof m.instanceType === 'string' ? m.instanceType : undefined,
      sizedReplicas: num(m, 'replicas'),
      monthlyTco: tco,
      monthlyCompute: num(m, 'monthlyCompute') ?? tco,
      costPer1kRequests: num(m, 'costPer1kRequests'),
      capacityPerReplicaRps: num(m, 'capacityPerReplicaRps'),
      headroom: num(m, 'headroom'),
      peakRps: num(m, 'peakRps'),
    };
  }
  // No cost gate result: price the deployed node type from the catalog, round the clock, on demand.
  const type = overlay?.instanceType && catalog?.instanceTypes.find((t) => t.name === overlay.instanceType);
  if (!type || overlay?.replicas === undefined) return undefined;
  const compute = (hourlyPrice(type, 'on-demand') as number) * overlay.replicas * HOURS_PER_MONTH;
  return {
    source: 'catalog',
    instanceType: type.name,
    sizedReplicas: overlay.replicas,
    monthlyTco: compute,
    monthlyCompute: compute,
  };
}

// kube-state-metrics exports pod labels as `label_<name>`; scrapes that relabel keep the plain Prometheus name.
const MODEL_LABELS = [
  'model',
  prometheusLabelName(RELEASE_LABELS.model),
  `label_${prometheusLabelName(RELEASE_LABELS.model)}`,
  prometheusLabelName(APP_LABELS.name),
];
const ENV_LABELS = ['environment', 'namespace', 'exported_namespace'];

function pick(labels: Record<string, string>, keys: string[]): string | undefined {
  for (const k of keys) if (labels[k]) return labels[k];
  return undefined;
}

/** Builds the sprawl report of the repository checked out at `root`. */
export async function sprawlReport(
  root: string,
  repository: string,
  options: SprawlOptions = {},
): Promise<SprawlReport> {
  const overprovisionFactor = options.overprovisionFactor ?? 2;
  const idleRps = options.idleRequestsPerSecond ?? 0.01;
  const overlays = await readOverlays(root);
  const records = await readEvidence(root);
  const recordOf = new Map(records.map((r) => [`${r.model}\0${r.version}\0${r.environment}`, r]));
  const usage = new Map<string, RawSeries>();
  for (const s of options.utilization?.series ?? []) {
    const model = pick(s.labels, MODEL_LABELS);
    const env = pick(s.labels, ENV_LABELS);
    if (model && env) usage.set(`${model}\0${env}`, s);
  }
  let matched = 0;

  const versions: DeployedVersion[] = [];
  const liveKeys = new Set<string>();
  let done = 0;
  for (const o of overlays) {
    options.signal?.throwIfAborted();
    options.onProgress?.(done++, overlays.length);
    const version = o.version ?? 'unknown';
    const key = `${o.model}\0${version}\0${o.environment}`;
    liveKeys.add(key);
    const record = recordOf.get(key);
    const estimate = estimateFrom(record, o, options.catalog);
    const v: DeployedVersion = {
      model: o.model,
      version,
      environment: o.environment,
      state: 'live',
      overlay: o.path,
      replicas: o.replicas,
      instanceType: o.instanceType ?? estimate?.instanceType,
      team: o.team ?? record?.team,
      costCenter: o.costCenter ?? record?.costCenter,
      ...(record ? { evidence: record.path, decidedAt: record.decidedAt } : {}),
      ...(estimate ? { estimate } : {}),
    };
    if (estimate) v.monthlyDeployed = deployedCost(estimate, o.replicas);
    const series = usage.get(`${o.model}\0${o.environment}`);
    if (series) {
      matched += 1;
      v.utilization = utilizationOf(series, estimate, options.headroom ?? 0.3, options.signal);
    }
    versions.push(v);
  }
  for (const r of records) {
    if (liveKeys.has(`${r.model}\0${r.version}\0${r.environment}`)) continue;
    const estimate = estimateFrom(r, undefined, options.catalog);
    versions.push({
      model: r.model,
      version: r.version,
      environment: r.environment,
      state: 'superseded',
      team: r.team,
      costCenter: r.costCenter,
      evidence: r.path,
      decidedAt: r.decidedAt,
      ...(estimate ? { estimate } : {}),
    });
  }
  versions.sort(
    (a, b) =>
      a.model.localeCompare(b.model) ||
      a.environment.localeCompare(b.environment) ||
      (a.state === b.state ? 0 : a.state === 'live' ? -1 : 1) ||
      a.version.localeCompare(b.version, undefined, { numeric: true }),
  );
  const flags = findSprawl(versions, overprovisionFactor, idleRps);
  return {
    repository,
    versions,
    flags,
    totals: totalsOf(versions, flags),
    ...(options.utilization
      ? { utilization: { source: options.utilization.source, series: options.utilization.series.length, matched } }
      : {}),
  };
}

/** Compute scales with replicas; storage and risk premium do not. */
function deployedCost(estimate: VersionEstimate, replicas: number | undefined): number {
  const sized = estimate.sizedReplicas;
  if (replicas === undefined || !sized) return estimate.monthlyTco;
  return estimate.monthlyTco + (estimate.monthlyCompute / sized) * (replicas - sized);
}

function utilizationOf(
  raw: RawSeries,
  estimate: VersionEstimate | undefined,
  defaultHeadroom: number,
  signal?: AbortSignal,
): NonNullable<DeployedVersion['utilization']> {
  const series = toSeries(raw, 'utilization', undefined, 0.5);
  const values = series.values;
  const meanRps = values.reduce((s, v) => s + v, 0) / values.length;
  const peakRps = values.reduce((m, v) => Math.max(m, v), 0);
  let forecastPeakRps: number | undefined;
  try {
    forecastPeakRps = forecastSeries(series, { horizonDays: 7, maxEvaluations: 80, signal }).horizon.peak;
  } catch (err) {
    if (!(err instanceof ForecastUnavailable)) throw err;
  }
  const out: NonNullable<DeployedVersion['utilization']> = {
    meanRps,
    peakRps,
    ...(forecastPeakRps === undefined ? {} : { forecastPeakRps }),
  };
  const capacity = estimate?.capacityPerReplicaRps;
  if (capacity) {
    const headroom = estimate.headroom ?? defaultHeadroom;
    const need = Math.max(forecastPeakRps ?? 0, peakRps);
    out.neededReplicas = Math.max(1, Math.ceil((need * (1 + headroom)) / capacity));
  }
  return out;
}

function findSprawl(versions: DeployedVersion[], factor: number, idleRps: number): SprawlFlag[] {
  const flags: SprawlFlag[] = [];
  const live = versions.filter((v) => v.state === 'live');
  const groups = new Map<string, DeployedVersion[]>();
  for (const v of live) {
    const key = `${v.model}\0${v.environment}`;
    groups.set(key, [...(groups.get(key) ?? []), v]);
  }
  for (const group of groups.values()) {
    const distinct = [...new Set(group.map((v) => v.version))];
    if (distinct.length > 1) {
      const first = group[0] as DeployedVersion;
      // Keeping one of them (say the dearest, to stay on the safe side of the estimate) saves the others' cost.
      const kept = Math.max(...group.map((v) => v.monthlyDeployed ?? 0));
      const total = group.reduce((s, v) => s + (v.monthlyDeployed ?? 0), 0);
      flags.push({
        kind: 'multiple-live-versions',
        model: first.model,
        environment: first.environment,
        versions: distinct,
        message: `${distinct.length} versions of ${first.model} are live in ${first.environment} (${group.map((v) => `${v.version} via ${v.overlay}`).join(', ')})`,
        monthlySavings: total - kept,
      });
    }
  }
  for (const v of live) {
    if (!v.estimate) {
      flags.push({
        kind: 'no-estimate',
        model: v.model,
        environment: v.environment,
        versions: [v.version],
        message: `${v.model}@${v.version} in ${v.environment} has no cost estimate (no cost gate in its evidence and no priced node type)`,
      });
    }
    const need = v.utilization?.neededReplicas ?? v.estimate?.sizedReplicas;
    if (need !== undefined && v.replicas !== undefined && v.replicas > factor * need) {
      const perReplica =
        v.estimate && v.estimate.sizedReplicas ? v.estimate.monthlyCompute / v.estimate.sizedReplicas : 0;
      flags.push({
        kind: 'overprovisioned',
        model: v.model,
        environment: v.environment,
        versions: [v.version],
        message: `${v.model}@${v.version} in ${v.environment} runs ${v.replicas} replicas; ${v.utilization?.neededReplicas !== undefined ? 'its forecast traffic needs' : 'the cost gate sized'} ${need}`,
        monthlySavings: perReplica * (v.replicas - need),
      });
    }
    if (v.utilization && v.utilization.meanRps < idleRps) {
      flags.push({
        kind: 'idle',
        model: v.model,
        environment: v.environment,
        versions: [v.version],
        message: `${v.model}@${v.version} in ${v.environment} served ${v.utilization.meanRps.toFixed(4)} requests/s on average (idle below ${idleRps})`,
        monthlySavings: v.monthlyDeployed,
      });
    }
  }
  return flags;
}

function totalsOf(versions: DeployedVersion[], flags: SprawlFlag[]): SprawlReport['totals'] {
  const byEnvironment: Record<string, number> = {};
  const byTeam: Record<string, number> = {};
  let monthlyLive = 0;
  for (const v of versions) {
    if (v.state !== 'live' || v.monthlyDeployed === undefined) continue;
    monthlyLive += v.monthlyDeployed;
    byEnvironment[v.environment] = (byEnvironment[v.environment] ?? 0) + v.monthlyDeployed;
    const team = v.team ?? 'unassigned';
    byTeam[team] = (byTeam[team] ?? 0) + v.monthlyDeployed;
  }
  // An idle endpoint's savings already include any over-provisioning of it: count each endpoint once, at its largest.
  const savings = new Map<string, number>();
  for (const f of flags) {
    const key = `${f.model}\0${f.environment}\0${f.kind === 'multiple-live-versions' ? '*' : f.versions[0]}`;
    savings.set(key, Math.max(savings.get(key) ?? 0, f.monthlySavings ?? 0));
  }
  return {
    liveVersions: versions.filter((v) => v.state === 'live').length,
    supersededVersions: versions.filter((v) => v.state === 'superseded').length,
    monthlyLive,
    monthlySavings: [...savings.values()].reduce((s, v) => s + v, 0),
    byEnvironment,
    byTeam,
  };
}
