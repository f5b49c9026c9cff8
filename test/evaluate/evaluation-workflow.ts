/**
 * A test-only workflow that calls the three evaluation activities on their own task queue, the way the release
 * workflow's evaluate phase does: a heartbeating, retried activity per gate, run in parallel.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { EvaluationActivities } from '../../activities/evaluate';
import type { GateInput, GateResult } from '../../contract/types';

export async function evaluateOnQueue(input: GateInput, taskQueue: string): Promise<GateResult[]> {
  const gates = proxyActivities<EvaluationActivities>({
    taskQueue,
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '200ms', maximumAttempts: 3 },
  });
  return Promise.all([gates.evaluateFairness(input), gates.evaluateRobustness(input), gates.explainModel(input)]);
}
