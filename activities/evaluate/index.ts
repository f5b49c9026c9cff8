/**
 * The evaluation activities (task queue `evaluation`): fairness, robustness and explainability gates of a
 * TensorFlow.js model, each `(input: GateInput) => Promise<GateResult>`: the gate modules (./model-gates.ts) through
 * the shared gate adapter, which heartbeats a resumable checkpoint after every batch (a retry after a worker crash
 * resumes from it) and stops promptly on cancellation.
 */
import { loadSourcePolicy } from '../../config/loader';
import type { GateInput, GateResult } from '../../contract/types';
import type { SourcePolicy } from '../common/source-policy';
import { gateActivity } from '../gate/activity';
import type { ArtifactStore } from '../store/artifact-store';
import type { BackendInfo } from './backend';
import { modelGate } from './model-gates';
import { PreparationCache } from './prepare';

export { initBackend, parseBackendPreference, currentBackend, BACKENDS } from './backend';
export type { BackendInfo, BackendName, BackendPreference } from './backend';
export { EvaluationError } from './errors';
export { runModelGate } from './gates';
export type { GateContext, GateOutcome, ModelGate } from './gates';

export { modelGate } from './model-gates';

export interface EvaluationDeps {
  /** Models and pinned datasets are read from it, evidence is stored in it. */
  store: ArtifactStore;
  /** The tfjs backend the worker loaded at start (initBackend); recorded in every result. */
  backend: BackendInfo;
  /** Rows per batch: the unit of heartbeats and cancellation checks (defaults per gate). */
  batchRows?: number;
  /** Where datasets of releases from before pinning may come from; config/sources.yaml and MREL_SOURCE_* by default. */
  sourcePolicy?: SourcePolicy;
}

export function createEvaluationActivities(deps: EvaluationDeps) {
  let loadedPolicy: SourcePolicy | undefined = deps.sourcePolicy;
  const shared = {
    backend: deps.backend,
    batchRows: deps.batchRows,
    sourcePolicy: async (): Promise<SourcePolicy> => (loadedPolicy ??= await loadSourcePolicy()),
    cache: new PreparationCache(),
  };
  const activity = (gate: 'fairness' | 'robustness' | 'explain') =>
    gateActivity(modelGate(gate, shared), deps) as (input: GateInput) => Promise<GateResult>;
  return {
    /**
     * Fairness gate: predicts the dataset, compares selection rate, TPR, FPR, accuracy and precision between the
     * groups of each protected attribute (and their intersections) against the policy's bounds, with seeded
     * bootstrap intervals. Annotates `bias-drift-threshold`. Heartbeats rows predicted (resumable); retry-safe.
     */
    evaluateFairness: activity('fairness'),
    /**
     * Robustness gate: FGSM/PGD (L∞) at the policy's epsilons on a seeded sample; fails when adversarial accuracy
     * at the judged epsilon is below the minimum. Heartbeats rows attacked (resumable); retry-safe.
     */
    evaluateRobustness: activity('robustness'),
    /**
     * Explainability gate: integrated gradients (or gradient × input) and permutation importance; warns when a
     * protected attribute or a proxy of one is among the top-k features. Heartbeats progress (resumable).
     */
    explainModel: activity('explain'),
  };
}

export type EvaluationActivities = ReturnType<typeof createEvaluationActivities>;
