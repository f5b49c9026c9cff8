/**
 * How many requests per second one replica serves on the catalog's reference machine: from the throughput the
 * evaluation gate measured on its backend, or else from the compute the request declares. The result says which.
 */
import type { PricingCatalog } from '../../config/pricing';
import type { EarlierGate } from '../../contract/types';
import { CostError } from './errors';
import { workUnits, type TrafficProfile } from './traffic';

export interface Throughput {
  source: 'measured' | 'declared';
  /** Requests per second one replica serves on the reference machine (relativeThroughput 1.0). */
  referenceRps: number;
  /** One line for people: where the number came from. */
  detail: string;
  /** Why a measured throughput was not used, when it was there. */
  skipped?: string;
}

const PREFERENCE = ['evaluate', 'fairness', 'robustness'];

function preference(gate: string): number {
  const i = PREFERENCE.indexOf(gate);
  return i >= 0 ? i : gate === 'explain' ? PREFERENCE.length + 1 : PREFERENCE.length;
}

/** Picks the measured throughput when it is usable, else the declared compute; throws NoThroughput when neither is. */
export function resolveThroughput(
  earlier: EarlierGate[],
  traffic: TrafficProfile,
  catalog: PricingCatalog,
): Throughput {
  const { unit, perRequest } = workUnits(traffic);
  const metric = `${unit} per second`;
  // Plain prediction throughput first (fairness predicts the evaluation set as served); robustness predicts perturbed
  // copies; explain measures attribution, far slower than serving, so it counts only when nothing else measured.
  const measuredBy = [...earlier]
    .filter((g) => g.verdict !== 'error' && g.throughput?.unit === unit && g.throughput.perSecond > 0)
    .sort((a, b) => preference(a.gate) - preference(b.gate))[0];
  let skipped: string | undefined;
  if (measuredBy) {
    const value = measuredBy.throughput?.perSecond ?? 0;
    const backend = measuredBy.throughput?.backend;
    const factor = backend === undefined ? undefined : catalog.backends[backend];
    if (factor !== undefined) {
      return {
        source: 'measured',
        referenceRps: value / factor / perRequest,
        detail: `measured by ${measuredBy.gate}: ${round(value)} ${unit}/s on backend ${backend} (×${1 / factor} to the reference machine), ${perRequest} ${unit} per request`,
      };
    }
    skipped =
      backend === undefined
        ? `${measuredBy.gate} measured ${metric} but did not say on which backend`
        : `${measuredBy.gate} measured on backend "${backend}", which ${catalog.file} does not list under backends (known: ${Object.keys(catalog.backends).join(', ')})`;
  }
  const compute = traffic.compute;
  if (compute) {
    let relative = 1;
    if (compute.measuredOn !== 'reference') {
      const type = catalog.instanceTypes.find((t) => t.name === compute.measuredOn);
      if (!type) {
        throw new CostError(
          'NoThroughput',
          `request.traffic.compute.measuredOn "${compute.measuredOn}" is not an instance type of ${catalog.file}; use "reference" or one of its names`,
        );
      }
      relative = type.relativeThroughput;
    }
    return {
      source: 'declared',
      referenceRps: 1000 / compute.msPerRequest / relative,
      detail: `declared: ${compute.msPerRequest} ms of compute per request on ${compute.measuredOn}`,
      ...(skipped ? { skipped } : {}),
    };
  }
  throw new CostError(
    'NoThroughput',
    `${skipped ?? `no earlier gate measured ${metric}`}, and request.traffic.compute.msPerRequest is not declared; declare it or run the evaluation gate`,
  );
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
