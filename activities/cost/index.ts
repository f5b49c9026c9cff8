/**
 * The cost gate's activity: the gate module (./gate.ts) through the shared gate adapter, which reads the model's
 * weight headers from the artifact store, heartbeats progress, honours cancellation and stores the full evidence.
 */
import type { GateInput, GateResult } from '../../contract/types';
import { gateActivity } from '../gate/activity';
import type { ArtifactStore } from '../store/artifact-store';
import { costGate, type CostGateDeps } from './gate';

export { budgetVerdict, evaluateBudgets } from './budget';
export { CostError, SourceUnavailableError } from './errors';
export { estimateReleaseCost, GATE as COST_GATE } from './estimate';
export type { CostEstimate, CostEvidence, EstimateEnv } from './estimate';
export { trafficSchema, parseTraffic } from './traffic';
export type { TrafficProfile } from './traffic';

export { costGate } from './gate';

export interface CostDeps extends CostGateDeps {
  /** Weights are read from it and the evidence is stored in it. */
  store: ArtifactStore;
}

export interface CostActivities {
  estimateCost(input: GateInput): Promise<GateResult>;
}

export function createCostActivities(deps: CostDeps): CostActivities {
  return {
    /**
     * Estimates the release's serving cost and checks the budgets: pass under soft, warn plus a review-role approval
     * between soft and hard, fail over hard. Unreadable weights, bad traffic or pricing give `error`; no fitting
     * instance type gives `fail`. Idempotent (reads only). Heartbeats `{ step, file }`: give it a heartbeat timeout.
     * A Prometheus that cannot be reached or answers 5xx throws a plain (retried) error.
     */
    estimateCost: gateActivity(costGate(deps), deps) as (input: GateInput) => Promise<GateResult>,
  };
}
