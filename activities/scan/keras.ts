/**
 * Keras: Lambda layers (marshalled Python bytecode or a named Python function) and custom objects (classes from
 * outside Keras, which need user code to load), found in the model config — config.json of a .keras archive, the
 * `model_config` attribute of an HDF5 model, or keras_metadata.pb of a SavedModel.
 */
import { FormatError } from '../formats/errors';
import { HDF5_WINDOW_BYTES, hdf5AttributeText, readHdf5RootAttributes } from '../formats/hdf5';
import { finding, printable, printableName, type ScanFinding } from './findings';
import type { RandomAccess } from './reader';

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
          finding('keras.lambda', path, `Lambda layer ${printable(layerName, 80)} runs ${how} when loaded`, at),
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
              `${printableName(className)}${registered ? ` (registered as ${printable(registered, 80)})` : ''} comes from module ${printable(module ?? '?', 80)}: loading needs that Python code`,
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

/** Root attributes that hold a Keras config as JSON (what Keras' legacy HDF5 loader reads back). */
const CONFIG_ATTRIBUTES = ['model_config', 'training_config'] as const;

/**
 * HDF5 Keras models keep their config as JSON in string attributes of the root group. They are read by the shared
 * HDF5 reader from the first `windowBytes` of the file, parsed as JSON and checked like any Keras config, so no
 * spacing or escape can hide a layer. A file the reader cannot examine within the window is reported as not examined
 * (fail closed), never as weights only.
 */
export async function scanHdf5(
  handle: RandomAccess,
  path: string,
  size: number,
  maxJsonBytes: number,
  signal?: AbortSignal,
  windowBytes = HDF5_WINDOW_BYTES,
): Promise<ScanFinding[]> {
  let attrs: Record<string, unknown>;
  try {
    attrs = await readHdf5RootAttributes(handle, path, size, { signal, windowBytes });
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return [finding('hdf5.invalid', path, `HDF5 file not examined: ${err.reason}`)];
  }
  const findings: ScanFinding[] = [];
  let configs = 0;
  for (const name of CONFIG_ATTRIBUTES) {
    if (!(name in attrs)) continue;
    configs++;
    const text = hdf5AttributeText(attrs[name]);
    if (text === undefined) {
      findings.push(finding('keras.invalid-config', path, `the ${name} attribute is not a string`));
      continue;
    }
    if (Buffer.byteLength(text) > maxJsonBytes) {
      findings.push(
        finding(
          'keras.invalid-config',
          path,
          `the ${name} attribute exceeds scan.limits.maxJsonBytes (${maxJsonBytes}): not examined`,
        ),
      );
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      findings.push(finding('keras.invalid-config', path, `the ${name} attribute is not JSON`));
      continue;
    }
    findings.push(...kerasConfigFindings(json, path));
  }
  if (configs === 0)
    return [finding('hdf5.no-model-config', path, 'HDF5 without a Keras model config: weights only, no code')];
  return findings;
}
