/**
 * The cost gate activity: Temporal wiring around the pure estimate in ./estimate. It loads the pricing catalog,
 * reads the model's weight headers from the artifact store, heartbeats progress, honours cancellation, writes the
 * full evidence into the store and returns a compact GateResult (with the Deployment's sizing).
 */
import { activityContext, throttledHeartbeat } from '../common/activity-context';
import type { SourcePolicy } from '../common/source-policy';
import { ConfigError, loadSourcePolicy } from '../../config/loader';
import { DEFAULT_PRICING_FILE, loadPricing, type PricingCatalog } from '../../config/pricing';
import type { GateInput, GateResult } from '../../contract/types';
import { storePath } from '../store/filesystem';
import { writeEvidence } from '../common/gate-kit';
import { errorResult, estimateReleaseCost, GATE, type CostProgress } from './estimate';

export { budgetVerdict, evaluateBudgets } from './budget';
export { CostError, SourceUnavailableError } from './errors';
export { estimateReleaseCost, GATE as COST_GATE } from './estimate';
export type { CostEstimate, CostEvidence, EstimateEnv } from './estimate';
export { trafficSchema, parseTraffic } from './traffic';
export type { TrafficProfile } from './traffic';

export interface CostDeps {
  /** The artifact store: where evidence is written (weights are read from the manifest's own storeRoot). */
  storeRoot: string;
  /** The pricing catalog; falls back to MREL_PRICING_FILE, then config/pricing.yaml. */
  pricingFile?: string;
  /** For Prometheus range queries (tests pass one bound to a local server). */
  fetch?: typeof fetch;
  /** Where a request's traffic history may come from; config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
}

export interface CostActivities {
  estimateCost(input: GateInput): Promise<GateResult>;
}

const HEARTBEAT_INTERVAL_MS = 1_000;

export function createCostActivities(deps: CostDeps): CostActivities {
  const pricingFile = deps.pricingFile ?? process.env.MREL_PRICING_FILE ?? DEFAULT_PRICING_FILE;

  return {
    /**
     * Estimates the release's serving cost (cheapest instance type and replicas that fit the model, serve the
     * forecast peak with the policy's headroom and meet the latency objective), adds the risk premium, and checks
     * the team's and cost center's budgets: pass under soft, warn plus a review-role approval between soft and hard,
     * fail over hard. Unreadable weights, bad traffic or config give `error`; no fitting instance type gives `fail`.
     *
     * Idempotent (reads only; the evidence file is rewritten with the same content). Heartbeats `{ step, file }`:
     * give it a heartbeat timeout. A Prometheus that cannot be reached or answers 5xx throws a plain (retried) error.
     */
    async estimateCost(input: GateInput): Promise<GateResult> {
      const context = activityContext();
      const startedAt = new Date().toISOString();
      let catalog: PricingCatalog;
      try {
        catalog = await loadPricing(pricingFile);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const failed = errorResult(input.releaseId, undefined, startedAt, new Date().toISOString(), {
          code: 'InvalidConfig',
          message: err.message,
          problems: err.message.split('\n'),
        });
        return {
          ...failed.result,
          evidence: await writeEvidence(deps.storeRoot, input.releaseId, GATE, failed.evidence),
        };
      }
      const storeRoot = input.manifest.storeRoot || deps.storeRoot;
      try {
        const { result, evidence } = await estimateReleaseCost(input, {
          catalog,
          locate: (file) => storePath(storeRoot, file.sha256),
          fetch: deps.fetch,
          sourcePolicy: deps.sourcePolicy ?? (await loadSourcePolicy()),
          signal: context?.cancellationSignal,
          onProgress: context && throttledHeartbeat<CostProgress>(context, (p) => p.step, HEARTBEAT_INTERVAL_MS),
        });
        const path = await writeEvidence(deps.storeRoot, input.releaseId, GATE, evidence);
        return { ...result, evidence: path };
      } catch (err) {
        // The worker reports a cancelled activity only when the error is its CancelledFailure.
        if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
        throw err;
      }
    },
  };
}
