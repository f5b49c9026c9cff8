/**
 * Loads a TensorFlow.js model (layers or graph, model.json + weight shards) through an IOHandler that reads files
 * by digest from the artifact store (or from a directory, for the CLI), and wraps it as a binary classifier whose
 * class probabilities are differentiable with tf.grad.
 */
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import type { ArtifactStore } from '../store/artifact-store';

/** Largest model file the evaluation reads whole (TF.js shards are a few MB; a model for these gates fits in memory). */
const MAX_MODEL_FILE_BYTES = 4 * 1024 * 1024 * 1024;
import type { ArtifactManifest } from '../../contract/types';
import { FormatError } from '../formats/errors';
import { readTfjsManifest, tfjsShardPath } from '../formats/tfjs';
import { WalkError, walkModelDirectory } from '../formats/walk';
import { EvaluationError } from './errors';
import type { ModelSpec } from './spec';

/** Reads a model file by its path relative to the model root. */
export type ModelFileReader = (path: string) => Promise<Uint8Array>;

/** Files of an acquired model, read by sha256 from the content-addressed store: only what the manifest lists. */
export function manifestReader(manifest: ArtifactManifest, store: ArtifactStore): ModelFileReader {
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  return async (path) => {
    const file = byPath.get(path);
    if (!file) throw new EvaluationError('InvalidModel', `${path} is not in the model's manifest`);
    return store.read(file.sha256, MAX_MODEL_FILE_BYTES);
  };
}

/**
 * Files of a model directory on disk (mrel evaluate --model <dir>), listed as acquire lists a `file://` source
 * (activities/formats/walk.ts): only those files are read, so the command loads what the gates would.
 */
export function directoryReader(dir: string): ModelFileReader {
  let listing: Promise<Map<string, string>> | undefined;
  return async (path) => {
    listing ??= walkModelDirectory(dir).then((d) => new Map(d.files.map((f) => [f.path, f.realPath])));
    let real: string | undefined;
    try {
      real = (await listing).get(path);
    } catch (err) {
      if (!(err instanceof WalkError)) throw err;
      throw new EvaluationError('InvalidModel', `cannot read ${path} from ${dir}: ${err.message}`, { cause: err });
    }
    if (real === undefined)
      throw new EvaluationError('InvalidModel', `cannot read ${path}: it is not a file of the model directory ${dir}`);
    try {
      return await readFile(real);
    } catch (err) {
      throw new EvaluationError('InvalidModel', `cannot read ${path} from ${dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
}

/** The model.json of an acquired model: at the root, else the shallowest one. */
export function findModelJson(manifest: ArtifactManifest): string {
  const candidates = manifest.files
    .map((f) => f.path)
    .filter((p) => p === 'model.json' || p.endsWith('/model.json'))
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  if (candidates.length === 0) {
    throw new EvaluationError(
      'InvalidModel',
      `no model.json in the model's files (${manifest.files.map((f) => f.path).join(', ')}); the evaluation gates need a TensorFlow.js model`,
    );
  }
  return candidates[0]!;
}

/**
 * An IOHandler over a file reader: parses model.json and concatenates the weight shards its manifest names
 * (relative to model.json), as tf.io.http does for URLs.
 */
export function readerIOHandler(read: ModelFileReader, modelJsonPath = 'model.json'): tf.io.IOHandler {
  return {
    async load() {
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(Buffer.from(await read(modelJsonPath)).toString('utf8')) as tf.io.ModelJSON;
      } catch (err) {
        if (err instanceof EvaluationError) throw err;
        // JSON.parse quotes the text it could not parse; keep only the position.
        const position = /position (\d+)/.exec((err as Error).message)?.[1];
        throw new EvaluationError(
          'InvalidModel',
          `${modelJsonPath} is not valid JSON${position === undefined ? '' : ` (at character ${position})`}`,
        );
      }
      if (!json.modelTopology) throw new EvaluationError('InvalidModel', `${modelJsonPath} has no modelTopology`);
      // The shared manifest reader checks the groups and resolves each shard inside the model, as the scan gate did.
      let manifest;
      try {
        manifest = readTfjsManifest(json, modelJsonPath);
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        throw new EvaluationError('InvalidModel', err.message, { cause: err });
      }
      if (manifest.issues[0] !== undefined)
        throw new EvaluationError('InvalidModel', `${modelJsonPath}: ${manifest.issues[0]}`);
      const shards = manifest.groups.flatMap((g) => g.paths ?? []);
      return tf.io.getModelArtifactsForJSON(json, async (weightsManifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of weightsManifest) specs.push(...group.weights);
        for (const p of shards) {
          const shard = tfjsShardPath(modelJsonPath, p);
          if (shard === undefined)
            throw new EvaluationError(
              'InvalidModel',
              `${modelJsonPath} names weight shard ${JSON.stringify(p)}, outside the model directory`,
            );
          const bytes = await read(shard);
          buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** A binary classifier over the model's input vector. */
export interface Classifier {
  kind: 'layers' | 'graph';
  inputDim: number;
  /** [n, 2] class probabilities in spec.classes order; differentiable (use inside tf.tidy / tf.grad). */
  probabilities(x: tf.Tensor2D): tf.Tensor2D;
  /** userDefinedMetadata of model.json. */
  metadata: unknown;
  dispose(): void;
}

/** Loads a model with the handler and wraps it; `spec.output` overrides what is inferred about the output. */
export async function loadClassifier(handler: tf.io.IOHandler, output?: ModelSpec['output']): Promise<Classifier> {
  const artifacts = await handler.load!();
  // Load from memory so the weights are read once and both model kinds see the same artifacts.
  const memory = tf.io.fromMemory(artifacts);
  const topology = artifacts.modelTopology as Record<string, unknown> | undefined;
  const isLayers = artifacts.format === 'layers-model' || (topology !== undefined && 'class_name' in topology);
  try {
    if (isLayers) {
      const model = await tf.loadLayersModel(memory);
      const inputShape = model.inputs[0]!.shape;
      const outputShape = model.outputs[0]!.shape;
      const last = model.layers[model.layers.length - 1]!.getConfig() as { activation?: string };
      const inferred = last.activation === 'linear' ? 'logits' : 'probabilities';
      const apply = (x: tf.Tensor2D) => model.apply(x, { training: false }) as tf.Tensor;
      return wrap(
        'layers',
        model,
        denseStack(model, apply) ?? apply,
        inputShape,
        outputShape,
        output ?? inferred,
        artifacts.userDefinedMetadata,
      );
    }
    const model = await tf.loadGraphModel(memory);
    const input = model.inputs[0];
    const out = model.outputs[0];
    if (!input || !out || model.inputs.length !== 1 || model.outputs.length !== 1) {
      throw new Error('the evaluation gates handle graph models with one input and one output');
    }
    const inputShape = input.shape ?? [-1, -1];
    let outputShape = out.shape ?? [-1, -1];
    const inputDim = inputShape[inputShape.length - 1] ?? -1;
    // Graph signatures often leave the output width unknown: one probe row tells.
    if (!((outputShape[outputShape.length - 1] ?? -1) > 0) && inputDim > 0) {
      outputShape = tf.tidy(() => (model.execute(tf.zeros([1, inputDim])) as tf.Tensor).shape);
    }
    return wrap(
      'graph',
      model,
      (x) => model.execute(x) as tf.Tensor,
      inputShape,
      outputShape,
      output ?? 'probabilities',
      artifacts.userDefinedMetadata,
    );
  } catch (err) {
    if (err instanceof EvaluationError) throw err;
    throw new EvaluationError('InvalidModel', `cannot load the model: ${(err as Error).message}`, { cause: err });
  }
}

const ACTIVATIONS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  linear: (x) => x,
  relu: (x) => tf.relu(x),
  sigmoid: (x) => tf.sigmoid(x),
  tanh: (x) => tf.tanh(x),
  softmax: (x) => tf.softmax(x),
  elu: (x) => tf.elu(x),
  selu: (x) => tf.selu(x),
};

/**
 * A Sequential stack of Dense layers as plain tensor ops over the model's own weights. The attacks and attributions
 * call the model thousands of times per batch, and going through the layers engine each time costs more than the
 * arithmetic of a small network. Used only when it computes what the model computes (checked on probe rows).
 */
function denseStack(
  model: tf.LayersModel,
  apply: (x: tf.Tensor2D) => tf.Tensor,
): ((x: tf.Tensor2D) => tf.Tensor) | undefined {
  if (!(model instanceof tf.Sequential)) return undefined;
  const layers: { kernel: tf.Tensor2D; bias?: tf.Tensor1D; activation: (x: tf.Tensor) => tf.Tensor }[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'Dense') return undefined;
    const config = layer.getConfig() as { activation?: string; useBias?: boolean };
    const activation = ACTIVATIONS[config.activation ?? 'linear'];
    const weights = layer.getWeights();
    if (!activation || weights.length !== (config.useBias === false ? 1 : 2)) return undefined;
    layers.push({ kernel: weights[0] as tf.Tensor2D, bias: weights[1] as tf.Tensor1D | undefined, activation });
  }
  const run = (x: tf.Tensor2D): tf.Tensor => {
    let h: tf.Tensor = x;
    for (const l of layers) {
      const z = tf.matMul(h as tf.Tensor2D, l.kernel);
      h = l.activation(l.bias ? tf.add(z, l.bias) : z);
    }
    return h;
  };
  const inputDim = model.inputs[0]!.shape[1] ?? 0;
  const same = tf.tidy(() => {
    const probe = tf.randomUniform([4, inputDim], -2, 2, 'float32', 1) as tf.Tensor2D;
    return tf.max(tf.abs(tf.sub(run(probe), apply(probe)))).dataSync()[0]! < 1e-5;
  });
  return same ? run : undefined;
}

function wrap(
  kind: 'layers' | 'graph',
  model: { dispose(): void },
  run: (x: tf.Tensor2D) => tf.Tensor,
  inputShape: (number | null)[],
  outputShape: (number | null)[],
  output: 'probabilities' | 'logits',
  metadata: unknown,
): Classifier {
  const inputDim = inputShape[inputShape.length - 1] ?? -1;
  const outputs = outputShape[outputShape.length - 1] ?? -1;
  if (inputShape.length !== 2 || !(inputDim > 0)) {
    throw new EvaluationError(
      'InvalidModel',
      `the model's input shape is [${inputShape.join(', ')}]; expected [batch, features]`,
    );
  }
  if (outputs !== 1 && outputs !== 2) {
    throw new EvaluationError(
      'InvalidModel',
      `the model has ${outputs} outputs; the evaluation gates handle binary classifiers (1 sigmoid or 2 softmax outputs)`,
    );
  }
  return {
    kind,
    inputDim,
    metadata,
    probabilities(x) {
      const y = run(x) as tf.Tensor2D;
      if (outputs === 1) {
        const p1 = output === 'logits' ? tf.sigmoid(y) : y;
        return tf.concat([tf.sub(1, p1), p1], 1) as tf.Tensor2D;
      }
      return output === 'logits' ? tf.softmax(y) : y;
    },
    dispose: () => model.dispose(),
  };
}
