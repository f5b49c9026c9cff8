/**
 * The Temporal side of the evaluation activities, in the SDK's MockActivityEnvironment: heartbeats carry a
 * resumable checkpoint, a new attempt resumes from the last one and answers exactly as an uninterrupted run, and
 * cancellation stops the work between batches.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createEvaluationActivities, type BackendInfo } from '../../activities/evaluate';
import type { Checkpoint } from '../../activities/evaluate/control';
import type { GateInput, GateResult } from '../../contract/types';
import type { FilesystemStore } from '../../activities/store';
import {
  gateInput,
  pinDataset,
  readGateEvidence,
  storeModel,
  test,
  trainModelFixture,
  useBackend,
  type ModelFixture,
} from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

let backend: BackendInfo;
let root: string;
let model: ModelFixture;

beforeAll(async () => {
  backend = await useBackend();
  root = await mkdtemp(join(tmpdir(), 'evaluate-activity-'));
  model = await trainModelFixture(root, 'fair');
});
afterAll(() => rm(root, { recursive: true, force: true }));

type Gate = 'evaluateFairness' | 'evaluateRobustness' | 'explainModel';

/** Runs a gate in a mock activity context; `onHeartbeat` sees every checkpoint and may cancel. */
async function runInContext(
  store: FilesystemStore,
  gate: Gate,
  input: GateInput,
  options: { heartbeatDetails?: unknown; onHeartbeat?: (c: Checkpoint, env: MockActivityEnvironment) => void } = {},
): Promise<{ result?: GateResult; error?: unknown; heartbeats: Checkpoint[] }> {
  const env = new MockActivityEnvironment(
    options.heartbeatDetails === undefined
      ? { attempt: 1 }
      : { attempt: 2, heartbeatDetails: options.heartbeatDetails },
    { logger: silent },
  );
  const heartbeats: Checkpoint[] = [];
  env.on('heartbeat', (details: Checkpoint) => {
    heartbeats.push(structuredClone(details));
    options.onHeartbeat?.(details, env);
  });
  const activities = createEvaluationActivities({ store, backend, batchRows: 250 });
  try {
    const result = (await env.run(activities[gate], input)) as GateResult;
    return { result, heartbeats };
  } catch (error) {
    return { error, heartbeats };
  }
}

/** The input of a release as the workflow builds it: the manifest by digest and the dataset pinned in the store. */
async function releaseInput(storeRoot: string, policy?: unknown): Promise<GateInput> {
  const dataset = await pinDataset(storeRoot, model.data);
  return gateInput(await storeModel(model.dir, storeRoot), model.data, { policy, dataset });
}

describe('evaluation activities in a Temporal activity context', () => {
  test('heartbeat rows done with a checkpoint after every batch', async ({ storeRoot, store }) => {
    const input = await releaseInput(storeRoot);
    const { result, heartbeats } = await runInContext(store, 'evaluateFairness', input);
    expect(result?.verdict).toBe('pass');
    const predict = heartbeats.filter((h) => h.phase === 'predict');
    expect(predict.map((h) => h.rowsDone)).toEqual(Array.from({ length: 24 }, (_, i) => (i + 1) * 250));
    expect(predict.every((h) => h.rowsTotal === 6000 && typeof h.key === 'string')).toBe(true);
  });

  for (const gate of ['evaluateFairness', 'evaluateRobustness', 'explainModel'] as const) {
    test(`${gate}: a new attempt resumes from the last heartbeat and answers as an uninterrupted run`, async ({
      storeRoot,
      store,
    }) => {
      const input = await releaseInput(storeRoot, {
        robustness: { maxRows: 1500 },
        explainability: { maxRows: 1000, permutationRepeats: 2 },
      });
      const whole = await runInContext(store, gate, input);
      expect(whole.result).toBeDefined();

      // The first attempt dies after its second batch (the worker went away); Temporal keeps the last heartbeat.
      const crashed = await runInContext(store, gate, input, {
        onHeartbeat: (c, env) => {
          if (c.rowsDone >= 500) env.cancel();
        },
      });
      expect(crashed.error).toBeInstanceOf(CancelledFailure);
      const last = crashed.heartbeats.at(-1)!;

      const resumed = await runInContext(store, gate, input, { heartbeatDetails: last });
      // While it reloads the data, the new attempt heartbeats the old checkpoint again (a crash then loses nothing).
      const computed = resumed.heartbeats.filter((h) => JSON.stringify(h) !== JSON.stringify(last));
      const firstOfResumed = computed.find((h) => h.phase === last.phase)!;
      // It continued where the checkpoint left off instead of starting over.
      expect(firstOfResumed.rowsDone).toBeGreaterThan(last.rowsDone);
      const [a, b] = [await readGateEvidence(store, whole.result!), await readGateEvidence(store, resumed.result!)];
      expect(last.rowsDone).toBe(500);
      expect(b.report.resumedFromRow).toBe(500);
      expect(b.report.report).toEqual(a.report.report);
      expect(b.findings).toEqual(a.findings);
      expect(resumed.result!.verdict).toBe(whole.result!.verdict);
    });
  }

  test('a checkpoint from other work (another dataset or policy) is ignored', async ({ storeRoot, store }) => {
    const input = await releaseInput(storeRoot);
    const foreign: Checkpoint = {
      key: 'another-release',
      phase: 'predict',
      rowsDone: 2750,
      rowsTotal: 3000,
      state: {},
    };
    const { result, heartbeats } = await runInContext(store, 'evaluateFairness', input, {
      heartbeatDetails: foreign,
    });
    expect(heartbeats.find((h) => h.phase === 'predict' && h.key !== foreign.key)!.rowsDone).toBe(250);
    expect((await readGateEvidence(store, result!)).report.resumedFromRow).toBe(0);
  });

  test('cancellation stops the evaluation at the next batch', async ({ storeRoot, store }) => {
    const input = await releaseInput(storeRoot, { robustness: { maxRows: 3000 } });
    let cancelledAt = -1;
    const { error, heartbeats } = await runInContext(store, 'evaluateRobustness', input, {
      onHeartbeat: (c, env) => {
        if (c.phase === 'attack' && cancelledAt < 0) {
          cancelledAt = c.rowsDone;
          env.cancel();
        }
      },
    });
    expect(error).toBeInstanceOf(CancelledFailure);
    expect(cancelledAt).toBe(250);
    // Not one more batch after the cancellation.
    expect(Math.max(...heartbeats.filter((h) => h.phase === 'attack').map((h) => h.rowsDone))).toBe(250);
  });
});
