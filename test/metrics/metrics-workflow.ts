/**
 * A release's life told to ReleaseMetrics without activities: the metrics test runs it to see every engine metric
 * (a rollback: the stage `rolled-back`) reach Prometheus through the SDK's workflow meter.
 */
import { sleep } from '@temporalio/workflow';
import { ReleaseMetrics } from '../../workflows/release-metrics';
import type { GateResult } from '../../contract/types';

export interface MetricsDrillInput {
  environment: string;
  model: string;
  /** Each stage in order, with the gates judged while in it; the last is the terminal stage. */
  stages: { stage: string; gates?: { gate: string; verdict: GateResult['verdict'] }[] }[];
}

export async function metricsDrillWorkflow(input: MetricsDrillInput): Promise<void> {
  const metrics = new ReleaseMetrics(input.environment, input.model);
  const gates: GateResult[] = [];
  for (const { stage, gates: judged = [] } of input.stages) {
    const startedAt = new Date().toISOString();
    metrics.observe({ stage, gates });
    // Time passes in each stage on the workflow clock, as it does while a release waits on its activities.
    await sleep(50);
    for (const { gate, verdict } of judged) {
      gates.push({
        gate,
        verdict,
        summary: '',
        metrics: {},
        findings: [],
        startedAt,
        finishedAt: new Date().toISOString(),
      });
    }
    metrics.observe({ stage, gates });
  }
}
