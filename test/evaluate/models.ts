/**
 * Hand-made models with known weights, for known-answer tests: logistic regression as a tfjs layers model and as a
 * graph model (a GraphDef in model.json, as the TensorFlow.js converter writes one).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** Logistic regression p = sigmoid(w·x + b) as a layers model, handed over in memory. */
export async function linearModel(w: number[], b: number): Promise<tf.io.IOHandler> {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [w.length], units: 1, activation: 'sigmoid' })],
  });
  model.setWeights([tf.tensor2d(w, [w.length, 1]), tf.tensor1d([b])]);
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  model.dispose();
  return tf.io.fromMemory(saved!);
}

const FLOAT = { type: 'DT_FLOAT' };
const shape = (...dims: number[]) => ({ dim: dims.map((d) => ({ size: String(d) })) });

/**
 * The same logistic regression as a graph model (Placeholder → MatMul → BiasAdd → Sigmoid), written to `dir` as
 * model.json + one shard. Returns its artifacts as well.
 */
export async function writeGraphModel(
  dir: string,
  w: number[],
  b: number,
  metadata?: Record<string, unknown>,
): Promise<tf.io.ModelArtifacts> {
  const graph = {
    node: [
      { name: 'x', op: 'Placeholder', attr: { dtype: FLOAT, shape: { shape: shape(-1, w.length) } } },
      {
        name: 'w',
        op: 'Const',
        attr: { dtype: FLOAT, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shape(w.length, 1) } } },
      },
      {
        name: 'b',
        op: 'Const',
        attr: { dtype: FLOAT, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shape(1) } } },
      },
      {
        name: 'mm',
        op: 'MatMul',
        input: ['x', 'w'],
        attr: { T: FLOAT, transpose_a: { b: false }, transpose_b: { b: false } },
      },
      // data_format "NHWC", base64 as in a converted GraphDef.
      { name: 'logit', op: 'BiasAdd', input: ['mm', 'b'], attr: { T: FLOAT, data_format: { s: 'TkhXQw==' } } },
      { name: 'p', op: 'Sigmoid', input: ['logit'], attr: { T: FLOAT } },
    ],
    versions: { producer: 1 },
  };
  const weights = Buffer.from(new Float32Array([...w, b]).buffer);
  const weightSpecs: tf.io.WeightsManifestEntry[] = [
    { name: 'w', shape: [w.length, 1], dtype: 'float32' },
    { name: 'b', shape: [1], dtype: 'float32' },
  ];
  const json = {
    format: 'graph-model',
    generatedBy: 'modelrelease test/evaluate/models.ts',
    convertedBy: null,
    modelTopology: graph,
    weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: weightSpecs }],
    ...(metadata ? { userDefinedMetadata: metadata } : {}),
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
  await writeFile(join(dir, 'group1-shard1of1.bin'), weights);
  return {
    modelTopology: graph,
    format: 'graph-model',
    weightSpecs,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    userDefinedMetadata: metadata as tf.io.ModelArtifacts['userDefinedMetadata'],
  };
}
