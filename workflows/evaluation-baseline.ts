/**
 * The evaluation baseline the bias provider compares production with, built from a release's gate results: the
 * fairness gate's between-group metrics as it recorded them in GateResult.metrics (`<attribute>.<metric>`, for the
 * metrics the policy bounds), the request's protected attributes and favorable class, the pinned dataset, and the
 * bias-drift threshold the gate annotated on the Deployment.
 *
 * The gate records no per-group selection rates in its result (they are in its evidence report only), so
 * `selectionRates` stays unset and the between-group differences are what is compared.
 *
 * Pure and deterministic, importing only contract/: the release workflow calls it.
 */
import { FAIRNESS_METRIC_NAMES, type EvaluationBaseline } from '../contract/monitoring';

export { FAIRNESS_METRIC_NAMES } from '../contract/monitoring';
import type { GateResult, PinnedArtifact, ReleaseRequest } from '../contract/types';

export const DEFAULT_BIAS_DRIFT_THRESHOLD = 0.05;
/** The annotation's key as the gate writes it and as it is rendered on the Deployment. */
const THRESHOLD_KEYS = ['bias-drift-threshold', 'policy.modelrelease.io/bias-drift-threshold'];
/** Entries kept from the gate's metrics: the baseline travels in every measurement's input. */
const MAX_FAIRNESS_ENTRIES = 64;

/**
 * The baseline of a release. `annotations` are the Deployment's (rendered or gate) annotations; the fairness gate's
 * own annotation is used when they carry no threshold. A release without a fairness gate result (no evaluation)
 * gets an empty `fairness`: the bias provider then compares nothing and says so.
 */
export function evaluationBaseline(
  gates: readonly GateResult[],
  request: Pick<ReleaseRequest, 'evaluation'>,
  dataset?: PinnedArtifact,
  annotations?: Record<string, string>,
): EvaluationBaseline {
  const gate = gates.find((g) => g.gate === 'fairness');
  const fairness: Record<string, number> = {};
  if (gate && gate.verdict !== 'error') {
    const names: readonly string[] = FAIRNESS_METRIC_NAMES;
    const keys = Object.keys(gate.metrics).sort();
    for (const key of keys) {
      const value = gate.metrics[key];
      const dot = key.lastIndexOf('.');
      if (dot <= 0 || typeof value !== 'number' || !Number.isFinite(value)) continue;
      const attribute = key.slice(0, dot);
      // `judged.<metric>` is the worst value over the attributes, not an attribute's own.
      if (attribute === 'judged' || !names.includes(key.slice(dot + 1))) continue;
      if (Object.keys(fairness).length >= MAX_FAIRNESS_ENTRIES) break;
      fairness[key] = value;
    }
  }
  const evaluation = request.evaluation;
  return {
    ...(dataset ? { dataset: { sha256: dataset.sha256, size: dataset.size, source: dataset.source } } : {}),
    ...(evaluation ? { label: evaluation.label, favorable: evaluation.favorable } : {}),
    protected: evaluation ? [...evaluation.protected] : [],
    fairness,
    biasDriftThreshold: thresholdOf(annotations) ?? thresholdOf(gate?.annotations) ?? DEFAULT_BIAS_DRIFT_THRESHOLD,
  };
}

function thresholdOf(annotations: Record<string, string> | undefined): number | undefined {
  if (!annotations) return undefined;
  for (const key of THRESHOLD_KEYS) {
    const text = annotations[key];
    if (text === undefined || text.trim() === '') continue;
    const value = Number(text);
    if (Number.isFinite(value) && value >= 0 && value <= 1) return value;
  }
  return undefined;
}
