/**
 * The evaluation activities (task queue `evaluation`): fairness, robustness and explainability gates of a
 * TensorFlow.js model, each `(input: GateInput) => Promise<GateResult>`. Temporal wiring around ./gates: heartbeats
 * with a resumable checkpoint after every batch, resume from the last heartbeat after a worker crash, and a prompt
 * stop on cancellation.
 */
import { loadSourcePolicy } from '../../config/loader';
import { parseEvaluationPolicy, type EvaluationPolicy } from '../../config/policy-evaluate';
import { activityContext } from '../common/activity-context';
import { writeEvidence } from '../common/gate-kit';
import { checkFilePath, SourceNotAllowedError, type SourcePolicy } from '../common/source-policy';
import type { GateInput, GateResult } from '../../contract/types';
import type { BackendInfo } from './backend';
import type { Checkpoint, RunControl } from './control';
import { datasetPath } from './dataset';
import { EvaluationError } from './errors';
import { runModelGate, type ModelGate } from './gates';
import { GATES } from './judge';
import { findModelJson, manifestReader, readerIOHandler } from './model';
import { PreparationCache, prepareEvaluation } from './prepare';

export { initBackend, parseBackendPreference, currentBackend, BACKENDS } from './backend';
export type { BackendInfo, BackendName, BackendPreference } from './backend';
export { EvaluationError } from './errors';
export { runModelGate } from './gates';
export type { GateContext, GateOutcome, ModelGate } from './gates';

export interface EvaluationDeps {
  /** Root of the content-addressed store: models are read from it, evidence is written into it. */
  storeRoot: string;
  /** The tfjs backend the worker loaded at start (initBackend); recorded in every result. */
  backend: BackendInfo;
  /** Rows per batch: the unit of heartbeats and cancellation checks (defaults per gate). */
  batchRows?: number;
  /** Where datasets may come from (loadSourcePolicy); config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
}

/** Request fields that can override the model's metadata (see activities/evaluate/spec.ts). */
const OVERRIDABLE = ['label', 'favorable', 'features', 'classes', 'threshold', 'output'] as const;

export function createEvaluationActivities(deps: EvaluationDeps) {
  const cache = new PreparationCache();
  let loadedPolicy: SourcePolicy | undefined = deps.sourcePolicy;
  const sourcePolicy = async (): Promise<SourcePolicy> => (loadedPolicy ??= await loadSourcePolicy());

  async function evaluate(gate: ModelGate, input: GateInput): Promise<GateResult> {
    const startedAt = new Date().toISOString();
    const context = activityContext();
    const resumeFrom = context?.info.heartbeatDetails as Checkpoint | undefined;
    const control: RunControl = {
      signal: context?.cancellationSignal,
      resumeFrom,
      batchRows: deps.batchRows,
      onCheckpoint: context && ((checkpoint) => context.heartbeat(checkpoint)),
    };
    let release: (() => void) | undefined;
    try {
      const policy = parsePolicy(input.policy);
      const evaluation = input.request.evaluation;
      if (!evaluation) {
        throw new EvaluationError(
          'InvalidEvaluationConfig',
          'the request has no evaluation block (dataset, label, protected, favorable): the model gates need one',
        );
      }
      const path = await allowedDataset(evaluation.dataset, await sourcePolicy());
      const extra = evaluation as Record<string, unknown>;
      const overrides = Object.fromEntries(OVERRIDABLE.map((k) => [k, extra[k]]));
      const modelJson = findModelJson(input.manifest);
      const modelId = input.manifest.manifestDigest;
      const cacheKey = JSON.stringify([modelId, modelJson, path, evaluation.protected, overrides]);
      const acquired = await cache.acquire(cacheKey, () =>
        prepareEvaluation({
          modelId,
          handler: readerIOHandler(manifestReader(input.manifest), modelJson),
          datasetPath: path,
          protectedAttributes: evaluation.protected,
          overrides,
          signal: control.signal,
          // While loading, keep heartbeating the earlier attempt's checkpoint so that a crash now loses nothing.
          onRowsRead: context && ((rows) => context.heartbeat(resumeFrom ?? { phase: 'load', rowsRead: rows })),
        }),
      );
      release = acquired.release;
      const outcome = await runModelGate(gate, acquired.prepared, policy, {
        backend: deps.backend,
        waivers: input.waivers,
        control,
        writeEvidence: (name, data) => writeEvidence(deps.storeRoot, input.releaseId, name, data),
        context: { releaseId: input.releaseId, model: `${input.manifest.model}@${input.manifest.version}` },
      });
      return outcome.result;
    } catch (err) {
      // The SDK reports a cancelled activity only when it ends with its own CancelledFailure.
      if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
      if (err instanceof EvaluationError && err.code !== 'BackendUnavailable') {
        return cannotEvaluate(gate, err, input, startedAt, deps);
      }
      throw err;
    } finally {
      release?.();
    }
  }

  return {
    /**
     * Fairness gate: predicts the dataset, compares selection rate, TPR, FPR, accuracy and precision between the
     * groups of each protected attribute (and their intersections) against the policy's bounds, with seeded
     * bootstrap intervals. Annotates `bias-drift-threshold`. Heartbeats rows predicted (resumable); retry-safe.
     */
    evaluateFairness: (input: GateInput): Promise<GateResult> => evaluate('fairness', input),
    /**
     * Robustness gate: FGSM/PGD (L∞) at the policy's epsilons on a seeded sample; fails when adversarial accuracy
     * at the judged epsilon is below the minimum. Heartbeats rows attacked (resumable); retry-safe.
     */
    evaluateRobustness: (input: GateInput): Promise<GateResult> => evaluate('robustness', input),
    /**
     * Explainability gate: integrated gradients (or gradient × input) and permutation importance; warns when a
     * protected attribute or a proxy of one is among the top-k features. Heartbeats progress (resumable).
     */
    explainModel: (input: GateInput): Promise<GateResult> => evaluate('explain', input),
  };
}

export type EvaluationActivities = ReturnType<typeof createEvaluationActivities>;

/**
 * The dataset's real path, once the source policy allows it: the worker reads only files under the configured
 * roots, never /proc/self/environ or whatever else its user can read. Refusals are permanent (a gate error).
 */
async function allowedDataset(uri: string, policy: SourcePolicy): Promise<string> {
  const path = datasetPath(uri);
  let real: string | undefined;
  try {
    real = await checkFilePath(path, policy, 'evaluation.dataset');
  } catch (err) {
    if (err instanceof SourceNotAllowedError) throw new EvaluationError('SourceNotAllowed', err.message);
    throw err;
  }
  if (real === undefined) {
    throw new EvaluationError('InvalidDataset', `evaluation.dataset: ${path} does not exist or cannot be read`);
  }
  return real;
}

function parsePolicy(section: unknown): EvaluationPolicy {
  try {
    return parseEvaluationPolicy(section, 'policy');
  } catch (err) {
    throw new EvaluationError('InvalidEvaluationConfig', (err as Error).message, { cause: err });
  }
}

/** A gate that could not decide: verdict error (never pass), the reason as summary and finding, and evidence. */
async function cannotEvaluate(
  gate: ModelGate,
  err: EvaluationError,
  input: GateInput,
  startedAt: string,
  deps: EvaluationDeps,
): Promise<GateResult> {
  const name = GATES[gate];
  const finishedAt = new Date().toISOString();
  const findings = [
    {
      gate: name,
      ruleId: `${name}.cannot-evaluate`,
      severity: 'high' as const,
      location: err.code,
      message: err.message,
      waivable: false,
    },
  ];
  const evidence = await writeEvidence(deps.storeRoot, input.releaseId, name, {
    gate: name,
    releaseId: input.releaseId,
    verdict: 'error',
    error: { code: err.code, message: err.message },
    backend: deps.backend,
    startedAt,
    finishedAt,
  });
  return {
    gate: name,
    verdict: 'error',
    summary: `${name} could not be evaluated: ${err.message.split('\n')[0]}`,
    metrics: { backend: deps.backend.name, throughputRowsPerSecond: 0, error: err.code },
    findings,
    evidence,
    startedAt,
    finishedAt,
  };
}
