/**
 * TensorFlow.js model.json: `weightsManifest` is a list of groups, each naming its shard files (relative to
 * model.json) and the weights packed into them in order: {name, shape, dtype, quantization?}. The reader checks the
 * manifest's shape and sizes every weight from the shared dtype table; the shards themselves are not read.
 */
import { DTYPE_BITS, TFJS_DTYPES, TFJS_QUANTIZED_DTYPES, type Dtype } from './dtypes';
import { FormatError, quote } from './errors';
import { resolveInside } from './paths';

/** The most of a model.json any reader parses. */
export const TFJS_MANIFEST_LIMIT = 64 * 1024 * 1024;

export interface TfjsWeight {
  name: string;
  /** As model.json names it (float32, int32, bool, complex64, string). */
  dtype: string;
  /** Undefined for `string` weights, which have no fixed width. */
  type: Dtype | undefined;
  shape: number[];
  elements: number;
  /** The stored dtype of a quantized weight (uint8, uint16, float16). */
  quantization?: { dtype: string; type: Dtype };
  /** Bytes in the shards (0 for strings, whose length is in the data). */
  storedBytes: number;
  /** Bytes once loaded: quantized weights are dequantized to their dtype. */
  memoryBytes: number;
}

export interface TfjsGroup {
  /** Shard paths as written; undefined when `paths` is not a list of strings (see issues). */
  paths: string[] | undefined;
  weights: TfjsWeight[];
}

export interface TfjsManifest {
  groups: TfjsGroup[];
  /** Problems with single groups or weights, each naming where (weightsManifest[g].weights[i]). */
  issues: string[];
}

/** True when parsed JSON carries a TF.js weights manifest (a layers or graph model.json). */
export function isTfjsModel(json: unknown): json is { weightsManifest: unknown; modelTopology?: unknown } {
  return typeof json === 'object' && json !== null && !Array.isArray(json) && 'weightsManifest' in json;
}

/**
 * Reads the manifest of a parsed model.json. Throws a FormatError when there is no list of groups at all; problems
 * inside a group are returned as issues, so that a scanner can still check the paths of the other groups.
 */
export function readTfjsManifest(json: unknown, file: string): TfjsManifest {
  const manifest = isTfjsModel(json) ? json.weightsManifest : undefined;
  if (!Array.isArray(manifest))
    throw new FormatError('tfjs', file, -1, 'weightsManifest is not a list of weight groups');
  const issues: string[] = [];
  const groups = manifest.map((group: unknown, g): TfjsGroup => {
    const at = `weightsManifest[${g}]`;
    if (typeof group !== 'object' || group === null) {
      issues.push(`${at} is not an object with paths and weights`);
      return { paths: undefined, weights: [] };
    }
    const { paths, weights } = group as { paths?: unknown; weights?: unknown };
    const shardPaths =
      Array.isArray(paths) && paths.every((p) => typeof p === 'string') ? (paths as string[]) : undefined;
    if (!shardPaths) issues.push(`${at}.paths is not a list of strings`);
    if (!Array.isArray(weights)) {
      issues.push(`${at}.weights is not a list`);
      return { paths: shardPaths, weights: [] };
    }
    const read: TfjsWeight[] = [];
    weights.forEach((w: unknown, i) => {
      const weight = readWeight(w, `${at}.weights[${i}]`, issues);
      if (weight) read.push(weight);
    });
    return { paths: shardPaths, weights: read };
  });
  return { groups, issues };
}

function readWeight(w: unknown, at: string, issues: string[]): TfjsWeight | undefined {
  if (typeof w !== 'object' || w === null) {
    issues.push(`${at} is not an object`);
    return undefined;
  }
  const { name, shape, dtype, quantization } = w as Record<string, unknown>;
  if (typeof dtype !== 'string' || (dtype !== 'string' && !Object.hasOwn(TFJS_DTYPES, dtype))) {
    issues.push(`${at} has unknown dtype ${quote(dtype)}`);
    return undefined;
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    issues.push(`${at} has an invalid shape`);
    return undefined;
  }
  const type = dtype === 'string' ? undefined : TFJS_DTYPES[dtype];
  const elements = (shape as number[]).reduce((p, d) => p * d, 1);
  const bytes = (t: Dtype | undefined): number => (t ? (elements * DTYPE_BITS[t]) / 8 : 0);
  const weight: TfjsWeight = {
    name: typeof name === 'string' ? name : '',
    dtype,
    type,
    shape: shape as number[],
    elements,
    storedBytes: bytes(type),
    memoryBytes: bytes(type),
  };
  if (quantization !== undefined) {
    const q = (quantization as { dtype?: unknown } | null)?.dtype;
    if (typeof q !== 'string' || !Object.hasOwn(TFJS_QUANTIZED_DTYPES, q)) {
      issues.push(`${at}.quantization has unknown dtype ${quote(q)}`);
      return undefined;
    }
    const qType = TFJS_QUANTIZED_DTYPES[q]!;
    weight.quantization = { dtype: q, type: qType };
    weight.storedBytes = bytes(qType);
  }
  return weight;
}

/**
 * The model-relative path of a shard named in `modelJson`'s manifest, or undefined when it is absolute, a URL, or
 * climbs out of the model directory (the loader would fetch it from elsewhere).
 */
export function tfjsShardPath(modelJson: string, shard: string): string | undefined {
  return resolveInside(modelJson, shard);
}
