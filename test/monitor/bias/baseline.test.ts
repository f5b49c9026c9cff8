/**
 * The evaluation baseline from a release's gate results, with the fairness gate's result made by the gate's own code
 * (fairness report → judge → GateResult): the metrics it recorded per attribute, the threshold it annotated, and
 * the request's evaluation block. Pure: the workflow calls it, so it may import contract/ only.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { GateResult, ReleaseRequest } from '../../../contract/types';
import { BETWEEN_GROUP_METRICS } from '../../../activities/evaluate/fairness';
import { addRows, emptyGroupCounts, fairnessReport } from '../../../activities/evaluate/fairness-report';
import { gateResult, judgeFairness } from '../../../activities/evaluate/judge';
import { parseEvaluationPolicy } from '../../../activities/evaluate/policy';
import {
  DEFAULT_BIAS_DRIFT_THRESHOLD,
  evaluationBaseline,
  FAIRNESS_METRIC_NAMES,
} from '../../../workflows/evaluation-baseline';

const REQUEST: Pick<ReleaseRequest, 'evaluation'> = {
  evaluation: { dataset: 'file:///data/eval.csv', label: 'approved', protected: ['sex'], favorable: 'yes' },
};
const DATASET = { source: 'file:///data/eval.csv', sha256: 'e'.repeat(64), size: 1234 };

/** The fairness gate's GateResult over 200 rows: f selected 40 %, m 55 %. */
function fairnessGate(): { result: GateResult; dpd: number; eodds: number; di: number } {
  const policy = parseEvaluationPolicy({ fairness: { privileged: { sex: 'm' } }, biasDriftThreshold: 0.08 });
  const columns = [{ name: 'sex', values: ['f', 'm'], codes: new Int32Array(200).map((_, i) => (i < 100 ? 0 : 1)) }];
  const yTrue = new Uint8Array(200).map((_, i) => (i % 2 === 0 ? 1 : 0));
  const yPred = new Uint8Array(200).map((_, i) => ((i < 100 ? i % 100 < 40 : i % 100 < 55) ? 1 : 0));
  const counts = emptyGroupCounts(columns);
  addRows(counts, columns, yTrue, yPred, 0, 200);
  const report = fairnessReport(columns, counts, {
    minGroupSize: policy.fairness.minGroupSize,
    intersections: false,
    privileged: policy.fairness.privileged,
    bootstrap: { resamples: 50, seed: 1 },
    confidence: 0.95,
  });
  const { result } = gateResult({
    gate: 'fairness',
    judgement: judgeFairness(report, policy.fairness),
    waivers: [],
    extraMetrics: { backend: 'cpu', rows: 200 },
    annotations: { 'bias-drift-threshold': String(policy.biasDriftThreshold) },
    startedAt: '2026-12-01T00:00:00Z',
    finishedAt: '2026-12-01T00:01:00Z',
  });
  const sex = report.attributes.sex!;
  return {
    result,
    dpd: sex.demographicParityDifference,
    eodds: sex.equalizedOddsDifference,
    di: sex.disparateImpact!,
  };
}

const scan: GateResult = {
  gate: 'scan',
  verdict: 'pass',
  summary: 'clean',
  metrics: { 'files.scanned': 3 },
  findings: [],
  startedAt: '2026-12-01T00:00:00Z',
  finishedAt: '2026-12-01T00:00:01Z',
};

describe('evaluationBaseline', () => {
  it("takes the fairness gate's recorded metrics per attribute, its threshold and the request's evaluation", () => {
    const gate = fairnessGate();
    const baseline = evaluationBaseline([scan, gate.result], REQUEST, DATASET);
    expect(baseline).toEqual({
      dataset: DATASET,
      label: 'approved',
      favorable: 'yes',
      protected: ['sex'],
      fairness: {
        'sex.demographicParityDifference': gate.dpd,
        'sex.equalizedOddsDifference': gate.eodds,
        'sex.disparateImpact': gate.di,
      },
      biasDriftThreshold: 0.08,
    });
    expect(gate.dpd).toBeCloseTo(0.15, 12);
    // The gate records no per-group selection rates in its result.
    expect(baseline.selectionRates).toBeUndefined();
  });

  it("prefers the Deployment's annotation, and defaults without one", () => {
    const gate = fairnessGate();
    const annotated = evaluationBaseline([gate.result], REQUEST, DATASET, {
      'policy.modelrelease.io/bias-drift-threshold': '0.02',
    });
    expect(annotated.biasDriftThreshold).toBe(0.02);
    const bare = { ...gate.result, annotations: undefined };
    expect(evaluationBaseline([bare], REQUEST).biasDriftThreshold).toBe(DEFAULT_BIAS_DRIFT_THRESHOLD);
    expect(evaluationBaseline([bare], REQUEST, undefined, { 'bias-drift-threshold': 'lots' }).biasDriftThreshold).toBe(
      DEFAULT_BIAS_DRIFT_THRESHOLD,
    );
  });

  it('is empty without an evaluation or with a fairness gate that could not decide', () => {
    expect(evaluationBaseline([scan], {})).toEqual({
      protected: [],
      fairness: {},
      biasDriftThreshold: DEFAULT_BIAS_DRIFT_THRESHOLD,
    });
    const errored = { ...fairnessGate().result, verdict: 'error' as const };
    expect(evaluationBaseline([errored], REQUEST).fairness).toEqual({});
  });

  it("knows the gate's metric names, and imports only contract code (the workflow calls it)", async () => {
    expect([...FAIRNESS_METRIC_NAMES]).toEqual([...BETWEEN_GROUP_METRICS]);
    const source = await readFile(
      fileURLToPath(new URL('../../../workflows/evaluation-baseline.ts', import.meta.url)),
      'utf8',
    );
    const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    for (const from of imports) expect(from).toMatch(/^\.\.\/contract\//);
  });
});
