/**
 * Sizing and pricing: for each instance type of the catalog, whether the model fits its memory, how many replicas
 * serve the peak with the policy's headroom and meet the latency objective, and what that costs per month; the
 * cheapest wins. Pure.
 *
 * The latency model treats each replica as an M/M/1 queue: with service rate μ (requests/s one replica serves) and
 * arrival rate λ per replica, response time is exponential with rate μ − λ, so its p-quantile is
 * ln(1/(1 − p)) / (μ − λ). Meeting an objective of L seconds at percentile p needs λ ≤ μ − ln(1/(1 − p)) / L; a type
 * whose μ is below ln(1/(1 − p)) / L cannot meet it at any replica count. Headroom needs λ ≤ μ / (1 + headroom).
 */
import { NODE_INSTANCE_TYPE_LABEL, RELEASE_LABELS } from '../gitops/layout';
import { hourlyPrice, type InstanceType, type PricingCatalog } from '../../config/pricing';
import type { CostPolicy } from './policy';
import type { DeploymentSizing } from '../../contract/types';

export const GIB = 1024 ** 3;
/** Share of a node's memory that pods can request (the rest is kubelet, system daemons and eviction reserve). */
export const ALLOCATABLE_MEMORY = 0.9;
/** vCPUs a node keeps for the kubelet and daemon sets. */
export const RESERVED_VCPU = 0.5;

export interface ModelNeeds {
  /** Loaded weights (footprint.memoryBytes). */
  weightBytes: number;
  /** Bytes stored (for storage cost). */
  storedBytes: number;
  /** KV cache the replica must hold (language models), bytes. */
  kvCacheBytes: number;
}

export interface Demand {
  peakRps: number;
  averageRps: number;
}

export interface SizingInput {
  model: ModelNeeds;
  demand: Demand;
  /** Requests/s one replica serves on the reference machine. */
  referenceRps: number;
  latencySloMs: number;
  hoursPerDay: number;
  daysPerMonth: number;
}

export type SizingPolicy = Pick<
  CostPolicy,
  | 'headroom'
  | 'slo'
  | 'overheadFactor'
  | 'runtimeOverheadGiB'
  | 'minReplicas'
  | 'maxReplicas'
  | 'purchase'
  | 'providers'
  | 'regions'
>;

export interface Candidate {
  instanceType: string;
  provider: string;
  region: string;
  fits: boolean;
  /** Why the type does not fit (memory, SLO, replicas, no spot price), when it does not. */
  reason?: string;
  replicas?: number;
  /** Requests/s one replica serves on this type. */
  capacityRps?: number;
  hourlyPrice?: number;
  monthlyCompute?: number;
  monthlyStorage?: number;
  monthlyTotal?: number;
}

export interface Breakdown {
  compute: number;
  storage: number;
}

export interface Sizing {
  instanceType: InstanceType;
  replicas: number;
  capacityRps: number;
  hourlyPrice: number;
  /** Memory one replica needs, GiB: device memory for GPU types, node memory for CPU types. */
  memoryNeededGiB: number;
  /** Host memory one replica requests, GiB. */
  hostMemoryGiB: number;
  breakdown: Breakdown;
  monthlyTotal: number;
  monthlyRequests: number;
  /** Undefined when the average traffic is zero (no requests to divide by). */
  costPer1kRequests?: number;
  /** p-quantile latency at the forecast peak with this many replicas (M/M/1 per replica), ms. */
  latencyAtPeakMs: number;
}

export interface SizingResult {
  chosen?: Sizing;
  candidates: Candidate[];
  /** When nothing fits: one sentence on why, for the verdict's summary. */
  noFit?: string;
}

/** The p-quantile of M/M/1 response time: ln(1/(1−p)) / (μ − λ), in ms; Infinity when λ ≥ μ. */
export function latencyQuantileMs(mu: number, lambda: number, percentile: number): number {
  return mu > lambda ? (Math.log(1 / (1 - percentile)) / (mu - lambda)) * 1000 : Infinity;
}

/** Memory one replica needs on its accelerator (GPU types) or node (CPU types), GiB. */
export function memoryNeedGiB(model: ModelNeeds, type: InstanceType, policy: SizingPolicy): number {
  const onDevice = (model.weightBytes * policy.overheadFactor + model.kvCacheBytes) / GIB;
  return type.gpu ? onDevice : onDevice + policy.runtimeOverheadGiB;
}

/** Host memory a replica requests: on GPU types the runtime plus a staging copy of the weights while loading. */
export function hostMemoryGiB(model: ModelNeeds, type: InstanceType, policy: SizingPolicy): number {
  return type.gpu ? policy.runtimeOverheadGiB + model.weightBytes / GIB : memoryNeedGiB(model, type, policy);
}

/** Whether the model's memory fits a type, and why not. */
export function fitsMemory(model: ModelNeeds, type: InstanceType, policy: SizingPolicy): string | undefined {
  const need = memoryNeedGiB(model, type, policy);
  const host = hostMemoryGiB(model, type, policy);
  const allocatable = type.memoryGiB * ALLOCATABLE_MEMORY;
  if (type.gpu) {
    const device = type.gpu.count * type.gpu.memoryGiB;
    if (need > device)
      return `needs ${fmt(need)} GiB of GPU memory; ${type.gpu.count}× ${type.gpu.model} has ${fmt(device)} GiB`;
  } else if (need > allocatable) {
    return `needs ${fmt(need)} GiB of memory; ${fmt(allocatable)} GiB of its ${type.memoryGiB} GiB is allocatable`;
  }
  if (host > allocatable) return `needs ${fmt(host)} GiB of host memory; ${fmt(allocatable)} GiB is allocatable`;
  return undefined;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

/** Sizes one instance type; `fits: false` with the reason when it cannot serve the model. */
export function sizeFor(
  input: SizingInput,
  type: InstanceType,
  policy: SizingPolicy,
  storagePerGiB: number,
): Candidate {
  const base = { instanceType: type.name, provider: type.provider, region: type.region };
  const price = hourlyPrice(type, policy.purchase);
  if (price === undefined) return { ...base, fits: false, reason: `no ${policy.purchase} price in the catalog` };
  const memory = fitsMemory(input.model, type, policy);
  if (memory) return { ...base, fits: false, reason: memory };
  const mu = input.referenceRps * type.relativeThroughput;
  const z = Math.log(1 / (1 - policy.slo.percentile));
  const sloSeconds = input.latencySloMs / 1000;
  const bySlo = mu - z / sloSeconds;
  if (bySlo <= 0) {
    const floor = (z / mu) * 1000;
    return {
      ...base,
      fits: false,
      capacityRps: mu,
      reason: `p${pct(policy.slo.percentile)} latency is at least ${fmt(floor)} ms here (one request takes ${fmt(1000 / mu)} ms); the objective is ${input.latencySloMs} ms`,
    };
  }
  const perReplica = Math.min(bySlo, mu / (1 + policy.headroom));
  const replicas = Math.max(policy.minReplicas, Math.ceil(input.demand.peakRps / perReplica - 1e-9));
  if (replicas > policy.maxReplicas) {
    return {
      ...base,
      fits: false,
      capacityRps: mu,
      replicas,
      reason: `needs ${replicas} replicas to serve ${fmt(input.demand.peakRps)} requests/s; the policy allows ${policy.maxReplicas}`,
    };
  }
  const hours = input.hoursPerDay * input.daysPerMonth;
  const monthlyCompute = replicas * price * hours;
  // One copy in the model store plus a cache on each replica's node.
  const monthlyStorage = (input.model.storedBytes / GIB) * storagePerGiB * (1 + replicas);
  return {
    ...base,
    fits: true,
    replicas,
    capacityRps: mu,
    hourlyPrice: price,
    monthlyCompute,
    monthlyStorage,
    monthlyTotal: monthlyCompute + monthlyStorage,
  };
}

function pct(p: number): string {
  return String(Math.round(p * 1000) / 10);
}

/** Types the policy allows (providers, regions). */
export function allowedTypes(catalog: PricingCatalog, policy: SizingPolicy): InstanceType[] {
  return catalog.instanceTypes.filter(
    (t) =>
      (policy.providers.length === 0 || policy.providers.includes(t.provider)) &&
      (policy.regions.length === 0 || policy.regions.includes(t.region)),
  );
}

/** Sizes every allowed type and picks the cheapest (then fewer replicas, then more throughput, then name). */
export function sizeModel(input: SizingInput, catalog: PricingCatalog, policy: SizingPolicy): SizingResult {
  if (!(input.referenceRps > 0) || !Number.isFinite(input.referenceRps)) {
    throw new RangeError(`the throughput per replica must be a positive number (got ${input.referenceRps})`);
  }
  const types = allowedTypes(catalog, policy);
  const candidates = types.map((t) => sizeFor(input, t, policy, catalog.storage.pricePerGiBMonth));
  const fitting = candidates.filter((c) => c.fits);
  if (fitting.length === 0) return { candidates, noFit: explainNoFit(candidates, types.length, catalog, policy) };
  fitting.sort(
    (a, b) =>
      (a.monthlyTotal as number) - (b.monthlyTotal as number) ||
      (a.replicas as number) - (b.replicas as number) ||
      (b.capacityRps as number) - (a.capacityRps as number) ||
      a.instanceType.localeCompare(b.instanceType),
  );
  const best = fitting[0] as Candidate;
  const type = types.find(
    (t) => t.name === best.instanceType && t.provider === best.provider && t.region === best.region,
  ) as InstanceType;
  const replicas = best.replicas as number;
  const monthlyRequests = input.demand.averageRps * 3600 * input.hoursPerDay * input.daysPerMonth;
  const monthlyTotal = best.monthlyTotal as number;
  return {
    candidates,
    chosen: {
      instanceType: type,
      replicas,
      capacityRps: best.capacityRps as number,
      hourlyPrice: best.hourlyPrice as number,
      memoryNeededGiB: memoryNeedGiB(input.model, type, policy),
      hostMemoryGiB: hostMemoryGiB(input.model, type, policy),
      breakdown: { compute: best.monthlyCompute as number, storage: best.monthlyStorage as number },
      monthlyTotal,
      monthlyRequests,
      ...(monthlyRequests > 0 ? { costPer1kRequests: (monthlyTotal / monthlyRequests) * 1000 } : {}),
      latencyAtPeakMs: latencyQuantileMs(
        best.capacityRps as number,
        input.demand.peakRps / replicas,
        policy.slo.percentile,
      ),
    },
  };
}

function explainNoFit(candidates: Candidate[], allowed: number, catalog: PricingCatalog, policy: SizingPolicy): string {
  if (allowed === 0) {
    return `no instance type of ${catalog.file} is allowed by the policy (providers: ${policy.providers.join(', ') || 'any'}; regions: ${policy.regions.join(', ') || 'any'})`;
  }
  const reasons = candidates.map((c) => `${c.instanceType}: ${c.reason}`);
  const shown = reasons.slice(0, 3).join('; ');
  return `no instance type of ${catalog.file} fits (${candidates.length} tried): ${shown}${reasons.length > 3 ? `; … ${reasons.length - 3} more in the evidence` : ''}`;
}

export interface SensitivityRow {
  trafficFactor: number;
  peakRps: number;
  instanceType?: string;
  replicas?: number;
  monthlyTotal?: number;
  costPer1kRequests?: number;
  /** When nothing fits at this traffic. */
  noFit?: string;
}

/** The sizing again at scaled traffic (×0.5, ×1, ×2 by default). */
export function sensitivity(
  input: SizingInput,
  catalog: PricingCatalog,
  policy: SizingPolicy,
  factors: number[] = [0.5, 1, 2],
): SensitivityRow[] {
  return factors.map((f) => {
    const scaled = sizeModel(
      { ...input, demand: { peakRps: input.demand.peakRps * f, averageRps: input.demand.averageRps * f } },
      catalog,
      policy,
    );
    const row: SensitivityRow = { trafficFactor: f, peakRps: input.demand.peakRps * f };
    if (!scaled.chosen) return { ...row, noFit: scaled.noFit };
    return {
      ...row,
      instanceType: scaled.chosen.instanceType.name,
      replicas: scaled.chosen.replicas,
      monthlyTotal: scaled.chosen.monthlyTotal,
      ...(scaled.chosen.costPer1kRequests === undefined ? {} : { costPer1kRequests: scaled.chosen.costPer1kRequests }),
    };
  });
}

/** Node selector labels for spot capacity, per provider (Karpenter on AWS, GKE Spot VMs on GCP). */
const SPOT_SELECTORS: Record<string, Record<string, string>> = {
  aws: { 'karpenter.sh/capacity-type': 'spot' },
  gcp: { 'cloud.google.com/gke-spot': 'true' },
};

/** What the rendered Deployment gets: replicas, resources sized to the node, and the node selection. */
export function deploymentSizing(sizing: Sizing, purchase: 'on-demand' | 'spot'): DeploymentSizing {
  const type = sizing.instanceType;
  const memoryMi = Math.ceil(Math.min(sizing.hostMemoryGiB, type.memoryGiB * ALLOCATABLE_MEMORY) * 1024);
  // One replica per node: ask for most of the node's CPU so that the scheduler never packs two replicas together.
  const cpuMillis = Math.max(250, Math.floor((type.vcpu - RESERVED_VCPU) * 1000));
  const requests: Record<string, string> = { cpu: `${cpuMillis}m`, memory: `${memoryMi}Mi` };
  // Memory limit = request (no overcommit: an OOM-killed model server is an outage); no CPU limit (throttling hurts
  // latency more than it protects neighbours on a node the replica has to itself).
  const limits: Record<string, string> = { memory: `${memoryMi}Mi` };
  if (type.gpu) {
    requests['nvidia.com/gpu'] = String(type.gpu.count);
    limits['nvidia.com/gpu'] = String(type.gpu.count);
  }
  return {
    replicas: sizing.replicas,
    resources: { requests, limits },
    nodeSelector: {
      [NODE_INSTANCE_TYPE_LABEL]: type.name,
      'topology.kubernetes.io/region': type.region,
      ...(purchase === 'spot' ? (SPOT_SELECTORS[type.provider] ?? {}) : {}),
    },
    labels: { [RELEASE_LABELS.instanceType]: type.name, [RELEASE_LABELS.capacityType]: purchase },
  };
}
