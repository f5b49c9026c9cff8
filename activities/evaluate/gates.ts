/**
 * The three model gates as plain functions: compute, judge, write the evidence, and return a compact GateResult.
 * The Temporal activities and `mrel evaluate` both call these; neither knows how the other drives them.
 */
import type { EvaluationPolicy } from './policy';
import type { GateResult, Waiver } from '../../contract/types';
import type { BackendInfo } from './backend';
import type { RunControl } from './control';
import { gateResult, GATES, judgeExplain, judgeFairness, judgeRobustness, type Judgement } from './judge';
import type { PreparedEvaluation } from './prepare';
import { runExplain } from './run-explain';
import { runFairness } from './run-fairness';
import { runRobustness } from './run-robustness';

export type ModelGate = keyof typeof GATES;

export interface GateContext {
  backend: BackendInfo;
  waivers: Waiver[];
  control?: RunControl;
  /** Writes the full evidence and returns where it went (the artifact store, or a directory for the CLI). */
  writeEvidence?: (gate: string, data: unknown) => Promise<string>;
  /** Facts for the evidence record (release id, policy name and digest, …). */
  context?: Record<string, unknown>;
}

export interface GateOutcome {
  result: GateResult;
  /** What was (or would be) written as evidence: the full report and every finding. */
  evidence: Record<string, unknown>;
}

/** Runs one model gate. */
export async function runModelGate(
  gate: ModelGate,
  prep: PreparedEvaluation,
  policy: EvaluationPolicy,
  ctx: GateContext,
): Promise<GateOutcome> {
  const startedAt = new Date().toISOString();
  const control = ctx.control ?? {};
  let judgement: Judgement;
  let report: unknown;
  let throughput: number;
  let resumedFromRow: number;
  let annotations: Record<string, string> | undefined;
  if (gate === 'fairness') {
    const run = await runFairness(prep, policy.fairness, control);
    judgement = judgeFairness(run.report, policy.fairness);
    ({ report } = run);
    throughput = run.throughputRowsPerSecond;
    resumedFromRow = run.resumedFromRow;
    // The monitoring stage watches production for bias drift beyond this; the Deployment carries it.
    annotations = { 'bias-drift-threshold': String(policy.biasDriftThreshold) };
  } else if (gate === 'robustness') {
    const run = await runRobustness(prep, policy.robustness, control);
    judgement = judgeRobustness(run.report, policy.robustness, policy.fairness.minGroupSize);
    ({ report } = run);
    throughput = run.throughputRowsPerSecond;
    resumedFromRow = run.resumedFromRow;
  } else {
    const run = await runExplain(prep, policy.explainability, control);
    judgement = judgeExplain(run.report, policy.explainability);
    ({ report } = run);
    throughput = run.throughputRowsPerSecond;
    resumedFromRow = run.resumedFromRow;
  }
  const { dataset } = prep.table;
  const extraMetrics = {
    backend: ctx.backend.name,
    throughputRowsPerSecond: Math.round(throughput * 10) / 10,
    rows: prep.table.rows,
  };
  const finishedAt = new Date().toISOString();
  const { result: draft, findings } = gateResult({
    gate: GATES[gate],
    judgement,
    waivers: ctx.waivers,
    extraMetrics,
    annotations,
    startedAt,
    finishedAt,
  });
  const evidence: Record<string, unknown> = {
    gate: GATES[gate],
    ...ctx.context,
    verdict: draft.verdict,
    summary: draft.summary,
    backend: ctx.backend,
    model: { id: prep.modelId, kind: prep.model.kind, inputDim: prep.model.inputDim },
    spec: prep.spec,
    dataset,
    policy: gate === 'explain' ? policy.explainability : policy[gate],
    report,
    resumedFromRow,
    metrics: draft.metrics,
    // Every finding, waivers applied (the GateResult keeps at most MAX_RESULT_FINDINGS).
    findings,
    startedAt,
    finishedAt,
  };
  const path = ctx.writeEvidence ? await ctx.writeEvidence(GATES[gate], evidence) : undefined;
  return { result: path ? { ...draft, evidence: path } : draft, evidence };
}
