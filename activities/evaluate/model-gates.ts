/**
 * The three model gates (fairness, robustness, explain) on the gate contract. They share the `evaluation:` policy
 * section, the evaluation task queue and one preparation (model and dataset loaded once while the gates of a release
 * run side by side). Each batch reports a resumable checkpoint, so a worker lost mid-run resumes where it stopped.
 */
import type { GateResult, ReleaseRequest } from '../../contract/types';
import { checkFilePath, SourceNotAllowedError, type SourcePolicy } from '../common/source-policy';
import { CannotDecide, defineGate, InvalidPolicy, type Gate, type GateRunContext } from '../gate/gate';
import type { BackendInfo } from './backend';
import type { Checkpoint, RunControl } from './control';
import { datasetPath, detectFormat } from './dataset';
import { EvaluationError } from './errors';
import { runModelGate, type GateOutcome, type ModelGate } from './gates';
import { GATES } from './judge';
import { findModelJson, manifestReader, readerIOHandler } from './model';
import { parseEvaluationPolicy, type EvaluationPolicy } from './policy';
import { prepareEvaluation, type PreparationCache } from './prepare';

export interface ModelGateDeps {
  /** The tfjs backend the worker loaded at start; recorded in every result and priced by the cost gate. */
  backend: BackendInfo;
  /** Rows per batch: the unit of heartbeats and cancellation checks (defaults per gate). */
  batchRows?: number;
  /** For releases acquired before datasets were pinned: where a dataset path may point. */
  sourcePolicy: () => Promise<SourcePolicy>;
  cache: PreparationCache;
}

/** Request fields that can override the model's metadata (see activities/evaluate/spec.ts). */
const OVERRIDABLE = ['label', 'favorable', 'features', 'classes', 'threshold', 'output'] as const;

const hasEvaluation = (request: ReleaseRequest): boolean => request.evaluation !== undefined;

export function modelGate(gate: ModelGate, deps?: ModelGateDeps): Gate<EvaluationPolicy, GateOutcome> {
  const activity = { fairness: 'evaluateFairness', robustness: 'evaluateRobustness', explain: 'explainModel' }[gate];
  return defineGate<EvaluationPolicy, GateOutcome>({
    name: GATES[gate],
    section: 'evaluation',
    activity,
    queue: 'evaluation',
    when: hasEvaluation,
    parsePolicy(section, file) {
      try {
        return parseEvaluationPolicy(section, file);
      } catch (err) {
        throw new InvalidPolicy(file, 'evaluation', (err as Error).message.split('\n'));
      }
    },
    async run(ctx) {
      if (!deps)
        throw new Error(`the ${gate} gate was built without a worker's backend: use createEvaluationActivities`);
      try {
        return await evaluate(gate, ctx, deps);
      } catch (err) {
        if (err instanceof EvaluationError && err.code !== 'BackendUnavailable') {
          throw new CannotDecide(`${GATES[gate]}.cannot-evaluate`, err.message, err.code, { code: err.code });
        }
        throw err;
      }
    },
    judge(outcome, _policy, ctx) {
      const result: GateResult = outcome.result;
      const rowsPerSecond = Number(result.metrics.throughputRowsPerSecond ?? 0);
      // The envelope carries gate, release, verdict, summary and findings. Wall-clock times and the worker's path of
      // the dataset stay out, so that the evidence digest depends on the measurement only and names no host path.
      const {
        gate: _gate,
        releaseId: _releaseId,
        verdict: _verdict,
        summary: _summary,
        findings,
        startedAt: _startedAt,
        finishedAt: _finishedAt,
        dataset,
        ...report
      } = outcome.evidence;
      const { path: _path, ...datasetInfo } = (dataset ?? {}) as Record<string, unknown>;
      return {
        verdict: result.verdict,
        summary: result.summary,
        findings: (findings as GateResult['findings'] | undefined) ?? result.findings,
        metrics: result.metrics,
        evidence: { ...report, dataset: { source: ctx.request.evaluation?.dataset, ...datasetInfo } },
        ...(result.annotations ? { annotations: result.annotations } : {}),
        ...(rowsPerSecond > 0
          ? { throughput: { unit: 'rows' as const, perSecond: rowsPerSecond, backend: String(result.metrics.backend) } }
          : {}),
      };
    },
  });
}

async function evaluate(
  gate: ModelGate,
  ctx: GateRunContext<EvaluationPolicy>,
  deps: ModelGateDeps,
): Promise<GateOutcome> {
  const evaluation = ctx.request.evaluation;
  if (!evaluation) {
    throw new EvaluationError(
      'InvalidEvaluationConfig',
      'the request has no evaluation block (dataset, label, protected, favorable): the model gates need one',
    );
  }
  const resumeFrom = ctx.resumeFrom as Checkpoint | undefined;
  const control: RunControl = {
    signal: ctx.signal,
    resumeFrom,
    batchRows: deps.batchRows,
    onCheckpoint: (checkpoint) => ctx.progress({ step: 'checkpoint', ...checkpoint }, { checkpoint: true }),
  };
  // A pinned dataset is read from the store by digest; a release from before pinning reads the path it named.
  const dataset = ctx.dataset
    ? {
        path: await ctx.localFile(ctx.dataset.sha256),
        format: detectFormat(new URL(ctx.dataset.source, 'file:///').pathname),
        id: ctx.dataset.sha256,
      }
    : await legacyDataset(evaluation.dataset, deps);
  const extra = evaluation as Record<string, unknown>;
  const overrides = Object.fromEntries(OVERRIDABLE.map((k) => [k, extra[k]]));
  const modelJson = findModelJson(ctx.manifest);
  const modelId = ctx.manifest.manifestDigest;
  const cacheKey = JSON.stringify([modelId, modelJson, dataset.id, evaluation.protected, overrides]);
  const acquired = await deps.cache.acquire(cacheKey, () =>
    prepareEvaluation({
      modelId,
      handler: readerIOHandler(manifestReader(ctx.manifest, ctx.store), modelJson),
      datasetPath: dataset.path,
      datasetFormat: dataset.format,
      protectedAttributes: evaluation.protected,
      overrides,
      signal: control.signal,
      // While loading, keep reporting the earlier attempt's checkpoint so that a crash now loses nothing.
      onRowsRead: (rows) => ctx.progress({ step: 'load', ...(resumeFrom ?? { phase: 'load', rowsRead: rows }) }),
    }),
  );
  try {
    return await runModelGate(gate, acquired.prepared, ctx.policy, {
      backend: deps.backend,
      waivers: ctx.waivers,
      control,
      context: { releaseId: ctx.releaseId, model: `${ctx.manifest.model}@${ctx.manifest.version}` },
    });
  } finally {
    acquired.release();
  }
}

/**
 * The dataset's real path, once the source policy allows it: the worker reads only files under the configured
 * roots, never /proc/self/environ or whatever else its user can read. Refusals are permanent (a gate error).
 */
async function legacyDataset(uri: string, deps: ModelGateDeps) {
  const path = datasetPath(uri);
  let real: string | undefined;
  try {
    real = await checkFilePath(path, await deps.sourcePolicy(), 'evaluation.dataset');
  } catch (err) {
    if (err instanceof SourceNotAllowedError) throw new EvaluationError('SourceNotAllowed', err.message);
    throw err;
  }
  if (real === undefined) {
    throw new EvaluationError('InvalidDataset', `evaluation.dataset: ${path} does not exist or cannot be read`);
  }
  return { path: real, format: detectFormat(real), id: real };
}
