/**
 * The evaluation worker against the shared Temporal dev server: it serves the three gate activities on its own
 * task queue, and their GateInput and GateResult travel through Temporal intact.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject } from 'vitest';
import type { BackendInfo } from '../../activities/evaluate';
import { createEvaluationWorker } from '../../workers/evaluation-worker';
import type { Settings } from '../../workers/settings';
import type { GateResult } from '../../contract/types';
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

let backend: BackendInfo;
let root: string;
let model: ModelFixture;

beforeAll(async () => {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed in this process by another suite: one runtime per process.
  }
  backend = await useBackend();
  root = await mkdtemp(join(tmpdir(), 'evaluate-worker-'));
  model = await trainModelFixture(root, 'biased', 1500);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('evaluation worker', () => {
  test('serves fairness, robustness and explain on its task queue for a workflow', async ({
    tmp,
    storeRoot,
    store,
  }) => {
    const address = inject('temporalAddress');
    const suffix = Math.random().toString(36).slice(2, 8);
    const settings: Settings = {
      address,
      namespace: 'default',
      taskQueue: `evaluate-wf-${suffix}`,
      dataDir: tmp,
      storeRoot,
      gitopsRepo: join(tmp, 'unused.git'),
      gitopsBranch: 'main',
      gitopsWorkRoot: join(tmp, 'unused'),
    };
    const connection = await NativeConnection.connect({ address });
    const evaluationQueue = `evaluation-${suffix}`;
    const evaluation = await createEvaluationWorker(settings, { backend, connection, taskQueue: evaluationQueue });
    const workflows = await Worker.create({
      connection,
      taskQueue: settings.taskQueue,
      workflowsPath: fileURLToPath(new URL('./evaluation-workflow.ts', import.meta.url)),
    });
    const client = new Client({ connection: await Connection.connect({ address }) });
    try {
      // As a release sends it: the manifest by digest and the dataset pinned in the store the worker reads.
      const input = gateInput(await storeModel(model.dir, storeRoot), model.data, {
        dataset: await pinDataset(storeRoot, model.data),
      });
      const results = await Promise.all([evaluation.run(), workflows.run(), run()]).then((r) => r[2]);
      async function run(): Promise<GateResult[]> {
        try {
          return await client.workflow.execute('evaluateOnQueue', {
            taskQueue: settings.taskQueue,
            workflowId: `evaluate-${suffix}`,
            args: [input, evaluationQueue],
          });
        } finally {
          evaluation.shutdown();
          workflows.shutdown();
        }
      }
      expect(results.map((r) => [r.gate, r.verdict])).toEqual([
        ['fairness', 'fail'],
        ['robustness', 'pass'],
        ['explain', 'warn'],
      ]);
      for (const r of results) {
        expect(r.metrics.backend).toBe(backend.name);
        expect(r.metrics.throughputRowsPerSecond).toBeGreaterThan(0);
        const evidence = await readGateEvidence(store, r);
        expect(evidence).toMatchObject({ releaseId: input.releaseId, gate: r.gate, verdict: r.verdict });
        expect(evidence.report.dataset.sha256).toBe(input.dataset!.sha256);
        expect(r.throughput).toMatchObject({ unit: 'rows', backend: backend.name });
      }
      expect(results[0]!.annotations).toEqual({ 'bias-drift-threshold': '0.05' });
    } finally {
      await client.connection.close();
      await connection.close();
    }
  });
});
