/**
 * The cost gate on a model shipped as ONNX with its weights as external data: the footprint reads the initializers
 * through the shared ONNX reader, so the gate reports the parameter count and sizes memory from it, and the data
 * file is the model's weights rather than an unread file counted at its size.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect } from 'vitest';
import { stringify } from 'yaml';
import { createCostActivities } from '../../activities/cost';
import { FilesystemStore } from '../../activities/store';
import type { GateResult } from '../../contract/types';
import { externalTensor, ONNX, onnxModel } from '../formats/onnx-fixture';
import { earlierGate, gateInput, measured, request, smallCatalog, storeModel, test } from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const declared = { averageRequestsPerSecond: 40, peakRequestsPerSecond: 100, latencySloMs: 100, daysPerMonth: 30 };

async function costOf(tmp: string, files: Record<string, Buffer>): Promise<GateResult> {
  const dir = join(tmp, 'model');
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  const manifest = await storeModel(join(tmp, 'store'), dir, Object.keys(files));
  const { file: _f, digest: _d, ...pricing } = smallCatalog() as { file?: string; digest?: string };
  const pricingFile = join(tmp, 'pricing.yaml');
  await writeFile(pricingFile, stringify(pricing));
  const activities = createCostActivities({ store: new FilesystemStore(join(tmp, 'store')), pricingFile });
  const input = gateInput(manifest, request(declared), {
    earlier: [earlierGate('fairness', 'pass', {}, measured(50, 'tensorflow'))],
  });
  const env = new MockActivityEnvironment(undefined, { logger: silent });
  try {
    return (await env.run(activities.estimateCost, input)) as GateResult;
  } catch (err) {
    throw err instanceof ApplicationFailure ? new Error(`cost gate failed: ${err.message}`) : err;
  }
}

describe('cost gate on an ONNX model', () => {
  test('reports the parameter count of the initializers and reads the external data as weights', async ({ tmp }) => {
    // 1024×512 f32 + 512 f32 bias inline + 256×1024 f16: 2 MiB + 2 KiB + 512 KiB.
    const model = onnxModel({
      ir_version: 9,
      producer_name: 'pytorch',
      opset_import: [{ version: 17 }],
      graph: {
        name: 'g',
        node: [{ input: ['x', 'w'], output: ['y'], op_type: 'MatMul' }],
        initializer: [
          externalTensor('w', [1024, 512], ONNX.FLOAT, 'model.onnx.data', { offset: 0, length: 2 << 20 }),
          { name: 'b', dims: [512], data_type: ONNX.FLOAT, raw_data: Buffer.alloc(2048) },
          externalTensor('e', [256, 1024], ONNX.FLOAT16, 'model.onnx.data', { offset: 2 << 20 }),
        ],
      },
    });
    const result = await costOf(tmp, {
      'model.onnx': model,
      'model.onnx.data': Buffer.alloc((2 << 20) + (512 << 10), 1),
    });
    expect(result.metrics).toMatchObject({
      parameters: 1024 * 512 + 512 + 256 * 1024,
      weightBytes: (2 << 20) + 2048 + (512 << 10),
      loadedWeightBytes: (2 << 20) + 2048 + (512 << 10),
      weightFormats: 'onnx',
      weightDtypes: 'f16,f32',
    });
    expect(result.findings.map((f) => f.ruleId)).not.toContain('unread-weights');
    expect(['pass', 'warn']).toContain(result.verdict);
  });

  test('an ONNX model whose external data is not among its files is an error naming the tensor', async ({ tmp }) => {
    const model = onnxModel({
      ir_version: 9,
      graph: { name: 'g', initializer: [externalTensor('w', [1024], ONNX.FLOAT, 'gone.bin')] },
    });
    const result = await costOf(tmp, { 'model.onnx': model });
    expect(result).toMatchObject({ verdict: 'error', metrics: { error: 'UnreadableModel' } });
    expect(result.summary).toContain(
      `model.onnx: ONNX tensor "w" reads external data from "gone.bin", which is not among the model's files`,
    );
  });
});
