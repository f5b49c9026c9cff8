/**
 * The served model: loaded and wrapped exactly as the evaluation gates load it (activities/evaluate/model.ts), with
 * the same feature spec (activities/evaluate/spec.ts), so a row gets here the score it got in evaluation. Tabular
 * rows are preprocessed as the evaluation table preprocesses dataset rows: standardised continuous features, one-hot
 * categorical ones in the spec's column order.
 */
import * as tf from '@tensorflow/tfjs';
import { valueKey } from '../activities/evaluate/dataset';
import { findModelJson, loadClassifier, readerIOHandler, type Classifier } from '../activities/evaluate/model';
import { inputColumns, resolveModelSpec, type FeatureSpec, type InputColumn } from '../activities/evaluate/spec';
import type { VerifiedModel } from './model-files';

export interface Predictor {
  inputDim: number;
  /** The model's feature columns, when its metadata names them (else only the 2-D form is served). */
  features?: FeatureSpec[];
  /** Why the tabular form is unavailable. */
  featuresProblem?: string;
  columns?: InputColumn[];
  /** Class labels (comparison keys) in output order, and the threshold on the second class's probability. */
  classes: [string, string];
  /** The classes as JSON values: numbers where the key is numeric. */
  classValues: [string | number, string | number];
  threshold: number;
  /** [n, 2] class probabilities for row-major x (n × inputDim). */
  predict(x: Float32Array, rows: number): Float32Array;
  dispose(): void;
}

/** Loads the verified model; throws (EvaluationError) when it is not a binary classifier the gates could load. */
export async function loadPredictor(model: VerifiedModel): Promise<Predictor> {
  const read = async (path: string): Promise<Uint8Array> => {
    const bytes = model.bytes.get(path);
    if (!bytes) throw new Error(`${path} is not a file of the verified model`);
    return bytes;
  };
  const handler = readerIOHandler(read, findModelJson({ files: model.files } as Parameters<typeof findModelJson>[0]));
  let classifier: Classifier = await loadClassifier(handler);
  let features: FeatureSpec[] | undefined;
  let featuresProblem: string | undefined;
  let classes: [string, string] = ['0', '1'];
  let threshold = 0.5;
  try {
    const spec = resolveModelSpec(classifier.metadata);
    if (spec.output) {
      const declared = await loadClassifier(handler, spec.output);
      classifier.dispose();
      classifier = declared;
    }
    const columns = inputColumns(spec, []);
    if (columns.length !== classifier.inputDim) {
      featuresProblem = `the model takes ${classifier.inputDim} inputs but its metadata's features give ${columns.length}`;
    } else {
      features = spec.features;
    }
    classes = spec.classes;
    threshold = spec.threshold;
  } catch (err) {
    featuresProblem = (err as Error).message.split('\n')[0];
  }
  const run = classifier;
  return {
    inputDim: run.inputDim,
    ...(features ? { features, columns: inputColumns({ features } as Parameters<typeof inputColumns>[0], []) } : {}),
    ...(featuresProblem ? { featuresProblem } : {}),
    classes,
    classValues: classes.map((c) => (Number.isFinite(Number(c)) && c !== '' ? Number(c) : c)) as [
      string | number,
      string | number,
    ],
    threshold,
    predict(x, rows) {
      return tf.tidy(
        () => run.probabilities(tf.tensor2d(x, [rows, run.inputDim], 'float32')).dataSync() as Float32Array,
      );
    },
    dispose: () => run.dispose(),
  };
}

/** Index into classes of each row's predicted class, as the evaluation decides it. */
export function decide(probabilities: Float32Array, rows: number, threshold: number): Uint8Array {
  const out = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) out[r] = probabilities[r * 2 + 1]! >= threshold ? 1 : 0;
  return out;
}

/** A problem with one input value: the caller names the tensor and row; the value itself is never repeated. */
export class ValueError extends Error {
  constructor(
    readonly feature: string,
    readonly row: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The model's input matrix from one array of raw values per feature (numbers, or strings for categories and
 * numeric text). Values read as the evaluation table reads dataset cells (valueKey for categories).
 */
export function encodeTabular(
  features: readonly FeatureSpec[],
  width: number,
  values: ReadonlyMap<string, readonly unknown[]>,
  rows: number,
): Float32Array {
  const x = new Float32Array(rows * width);
  let offset = 0;
  for (const f of features) {
    const column = values.get(f.name)!;
    if (f.type === 'categorical' && f.categories) {
      const keys = f.categories.map((c) => valueKey(c));
      for (let r = 0; r < rows; r++) {
        const v = column[r];
        const hit = typeof v === 'string' || typeof v === 'number' ? keys.indexOf(valueKey(v)) : -1;
        if (hit === -1) throw new ValueError(f.name, r, `not a known category (known: ${keys.join(', ')})`);
        x[r * width + offset + hit] = 1;
      }
      offset += keys.length;
    } else {
      for (let r = 0; r < rows; r++) {
        const v = column[r];
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
        if (!Number.isFinite(n)) throw new ValueError(f.name, r, 'not a finite number');
        x[r * width + offset] = f.type === 'continuous' ? (n - f.mean) / f.std : n;
      }
      offset += 1;
    }
  }
  return x;
}

/**
 * The raw feature values behind a preprocessed matrix (the 2-D form), for the inference log: drift compares raw
 * columns with the evaluation dataset. A one-hot block that is not exactly one 1 gives null.
 */
export function decodeMatrix(
  features: readonly FeatureSpec[],
  width: number,
  x: Float32Array,
  rows: number,
): Record<string, (number | string | null)[]> {
  const out: Record<string, (number | string | null)[]> = {};
  let offset = 0;
  for (const f of features) {
    const column: (number | string | null)[] = new Array(rows);
    if (f.type === 'categorical' && f.categories) {
      const keys = f.categories.map((c) => valueKey(c));
      for (let r = 0; r < rows; r++) {
        let hit = -1;
        let ones = 0;
        for (let k = 0; k < keys.length; k++) {
          const v = x[r * width + offset + k]!;
          if (v === 1) {
            hit = k;
            ones++;
          } else if (v !== 0) ones = 2;
        }
        column[r] = ones === 1 ? keys[hit]! : null;
      }
      offset += keys.length;
    } else {
      for (let r = 0; r < rows; r++) {
        const v = x[r * width + offset]!;
        // Back to the unit the dataset has; float32 rounding is kept to 6 significant digits.
        column[r] = f.type === 'continuous' ? Number((v * f.std + f.mean).toPrecision(7)) : v;
      }
      offset += 1;
    }
    out[f.name] = column;
  }
  return out;
}
