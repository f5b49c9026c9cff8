/**
 * Keras: Lambda layers (marshalled Python bytecode or a named Python function) and custom objects (classes from
 * outside Keras, which need user code to load), found in the model config — config.json of a .keras archive, the
 * `model_config` attribute of an HDF5 model, or keras_metadata.pb of a SavedModel.
 */
import type { RandomAccess } from './reader';
import { finding, type ScanFinding } from './findings';

const KERAS_MODULES = /^(keras|tf_keras|tensorflow|tensorflow\.keras|keras_core|keras_nlp|keras_hub|keras_cv)(\.|$)/;

/** Findings for a parsed Keras model config (any nesting of layers). */
export function kerasConfigFindings(config: unknown, path: string, offset?: number): ScanFinding[] {
  const findings: ScanFinding[] = [];
  const seen = new Set<string>();
  const at = offset === undefined ? {} : { offset };
  const visit = (node: unknown, depth: number): void => {
    if (depth > 200 || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const item of node) visit(item, depth + 1);
      return;
    }
    const obj = node as Record<string, unknown>;
    const className = typeof obj.class_name === 'string' ? obj.class_name : undefined;
    if (className) {
      const cfg = (obj.config ?? {}) as Record<string, unknown>;
      const layerName = typeof cfg.name === 'string' ? cfg.name : '?';
      if (className === 'Lambda') {
        const fn = cfg.function;
        const how =
          typeof fn === 'string' || Array.isArray(fn)
            ? 'marshalled Python bytecode'
            : fn &&
                typeof fn === 'object' &&
                'class_name' in fn &&
                (fn as { class_name: unknown }).class_name === '__lambda__'
              ? 'marshalled Python bytecode'
              : 'a Python function';
        findings.push(
          finding('keras.lambda', path, `Lambda layer ${JSON.stringify(layerName)} runs ${how} when loaded`, at),
        );
      }
      const module = typeof obj.module === 'string' ? obj.module : undefined;
      const registered = typeof obj.registered_name === 'string' ? obj.registered_name : undefined;
      const custom =
        (module !== undefined && !KERAS_MODULES.test(module)) ||
        (registered !== undefined && registered.includes('>') && !registered.startsWith('keras'));
      if (custom && className !== 'Lambda') {
        const key = `${module ?? ''}:${registered ?? className}`;
        if (!seen.has(key)) {
          seen.add(key);
          findings.push(
            finding(
              'keras.custom-object',
              path,
              `${className}${registered ? ` (registered as ${JSON.stringify(registered)})` : ''} comes from module ${JSON.stringify(module ?? '?')}: loading needs that Python code`,
              at,
            ),
          );
        }
      }
    }
    for (const value of Object.values(obj)) visit(value, depth + 1);
  };
  visit(config, 0);
  return findings;
}

/** Keras model configs in HDF5 start like this (the `model_config` attribute value). */
const CONFIG_START = Buffer.from('{"class_name": "');
const CONFIG_START_COMPACT = Buffer.from('{"class_name":"');
const LAMBDA_MARK = /"class_name":\s*"Lambda"/;

/**
 * HDF5 Keras models keep their config as a JSON string attribute, stored contiguously and uncompressed; we find it by
 * its opening bytes and parse it, so no HDF5 library is needed. A Lambda marker anywhere in the file is reported even
 * if no config parses (fail closed).
 */
export async function scanHdf5(
  handle: RandomAccess,
  path: string,
  size: number,
  maxJsonBytes: number,
  signal?: AbortSignal,
): Promise<ScanFinding[]> {
  const chunk = Buffer.alloc(1 << 20);
  const overlap = 64;
  let configAt = -1;
  let lambdaAt = -1;
  for (let pos = 0; pos < size; pos += chunk.length - overlap) {
    if (signal?.aborted) throw signal.reason ?? new Error('scan cancelled');
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, pos);
    const view = chunk.subarray(0, bytesRead);
    if (configAt < 0) {
      const i = Math.max(view.indexOf(CONFIG_START), -1);
      const j = view.indexOf(CONFIG_START_COMPACT);
      const k = i < 0 ? j : j < 0 ? i : Math.min(i, j);
      if (k >= 0) configAt = pos + k;
    }
    if (lambdaAt < 0) {
      const m = LAMBDA_MARK.exec(view.toString('latin1'));
      if (m) lambdaAt = pos + m.index;
    }
    if (bytesRead < chunk.length) break;
  }
  if (configAt < 0) {
    if (lambdaAt >= 0)
      return [finding('keras.lambda', path, 'a Keras Lambda layer config appears in the file', { offset: lambdaAt })];
    return [finding('hdf5.no-model-config', path, 'HDF5 without a Keras model config: weights only, no code')];
  }
  const json = await readJsonObject(handle, configAt, Math.min(maxJsonBytes, size - configAt));
  if (json === undefined) {
    const out = [
      finding('keras.invalid-config', path, 'the Keras model config could not be parsed', { offset: configAt }),
    ];
    if (lambdaAt >= 0)
      out.push(finding('keras.lambda', path, 'a Keras Lambda layer config appears in the file', { offset: lambdaAt }));
    return out;
  }
  const found = kerasConfigFindings(json, path, configAt);
  if (lambdaAt >= 0 && !found.some((f) => f.ruleId === 'keras.lambda'))
    found.push(finding('keras.lambda', path, 'a Keras Lambda layer config appears in the file', { offset: lambdaAt }));
  return found;
}

/** Reads one JSON object starting at `start` by matching braces outside strings. */
async function readJsonObject(handle: RandomAccess, start: number, max: number): Promise<unknown> {
  const parts: Buffer[] = [];
  const chunk = Buffer.alloc(1 << 20);
  let depth = 0;
  let inString = false;
  let escaped = false;
  let read = 0;
  while (read < max) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, max - read), start + read);
    if (bytesRead === 0) return undefined;
    for (let i = 0; i < bytesRead; i++) {
      const c = chunk[i] as number;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b) depth++;
      else if (c === 0x7d && --depth === 0) {
        parts.push(Buffer.from(chunk.subarray(0, i + 1)));
        try {
          return JSON.parse(Buffer.concat(parts).toString('utf8'));
        } catch {
          return undefined;
        }
      }
    }
    parts.push(Buffer.from(chunk.subarray(0, bytesRead)));
    read += bytesRead;
  }
  return undefined;
}
