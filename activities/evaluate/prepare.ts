/**
 * What the three model gates share: the loaded classifier, its resolved spec, and the dataset as typed arrays. The
 * gates of one release run in parallel on the same worker, so preparations are shared while in use.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DatasetFormat } from './dataset';
import { EvaluationError } from './errors';
import { loadClassifier, type Classifier } from './model';
import { resolveModelSpec, type ModelSpec } from './spec';
import { loadEvaluationTable, type EvaluationTable } from './table';

export interface PrepareInput {
  /** Identifies the model's bytes (manifest digest, or a directory path for the CLI). */
  modelId: string;
  handler: tf.io.IOHandler;
  datasetPath: string;
  /** CSV or JSON Lines; from the path's extension when not given (a blob in the store has none). */
  datasetFormat?: DatasetFormat;
  protectedAttributes: string[];
  /** Overrides of the model metadata: label, favorable, features, classes, threshold (request or CLI). */
  overrides?: Record<string, unknown>;
  signal?: AbortSignal;
  onRowsRead?: (rows: number) => void;
}

export interface PreparedEvaluation {
  modelId: string;
  model: Classifier;
  spec: ModelSpec;
  table: EvaluationTable;
  protectedAttributes: string[];
}

/** Loads the model and the dataset and checks that they fit each other. */
export async function prepareEvaluation(input: PrepareInput): Promise<PreparedEvaluation> {
  if (input.protectedAttributes.length === 0) {
    throw new EvaluationError('InvalidEvaluationConfig', 'evaluation.protected: name at least one protected attribute');
  }
  const model = await loadClassifier(input.handler);
  try {
    const spec = resolveModelSpec(model.metadata, input.overrides);
    const table = await loadEvaluationTable(input.datasetPath, spec, input.protectedAttributes, {
      signal: input.signal,
      onProgress: input.onRowsRead,
      ...(input.datasetFormat ? { format: input.datasetFormat } : {}),
    });
    if (table.columns.length !== model.inputDim) {
      throw new EvaluationError(
        'InvalidModel',
        `the model takes ${model.inputDim} inputs but its features give ${table.columns.length} (${table.columns
          .map((c) => (c.category === undefined ? c.feature : `${c.feature}=${c.category}`))
          .join(', ')}); fix userDefinedMetadata.features or the request's evaluation.features`,
      );
    }
    // Reload with the declared output kind (probabilities or logits) when the spec states it.
    const classifier = spec.output ? await loadClassifier(input.handler, spec.output) : model;
    if (classifier !== model) model.dispose();
    return {
      modelId: input.modelId,
      model: classifier,
      spec,
      table,
      protectedAttributes: input.protectedAttributes,
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * Shares one preparation among the gates that ask for the same model and dataset at the same time; the last user
 * releases it (and its model's tensors).
 */
export class PreparationCache {
  private readonly entries = new Map<string, { promise: Promise<PreparedEvaluation>; users: number }>();

  async acquire(
    key: string,
    prepare: () => Promise<PreparedEvaluation>,
  ): Promise<{
    prepared: PreparedEvaluation;
    release: () => void;
  }> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { promise: prepare(), users: 0 };
      this.entries.set(key, entry);
      entry.promise.catch(() => this.entries.delete(key));
    }
    entry.users++;
    const current = entry;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      current.users--;
      if (current.users === 0) {
        this.entries.delete(key);
        current.promise.then((p) => p.model.dispose()).catch(() => {});
      }
    };
    try {
      return { prepared: await current.promise, release };
    } catch (err) {
      release();
      throw err;
    }
  }
}
