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

/** The most of an HDF5 file read into memory to find its root attributes (Keras writes them before the weights). */
export const HDF5_WINDOW_BYTES = 64 << 20;

/** Root attributes that hold a Keras config as JSON (what Keras' legacy HDF5 loader reads back). */
const CONFIG_ATTRIBUTES = ['model_config', 'training_config'] as const;

/** Thrown when the reader asks for bytes past the window: the file is not examined rather than read short. */
class PastWindow extends Error {}

/**
 * HDF5 Keras models keep their config as JSON in string attributes of the root group. They are read with an HDF5
 * reader (jsfive) from the first `windowBytes` of the file, parsed as JSON and checked like any Keras config, so no
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
  if (signal?.aborted) throw signal.reason ?? new Error('scan cancelled');
  const length = Math.min(size, windowBytes);
  const window = new ArrayBuffer(length);
  const bytes = Buffer.from(window);
  for (let done = 0; done < length;) {
    // In 1 MiB reads, so that a cancelled scan stops within one of them.
    if (signal?.aborted) throw signal.reason ?? new Error('scan cancelled');
    const { bytesRead } = await handle.read(bytes, done, Math.min(1 << 20, length - done), done);
    if (bytesRead === 0) return [unreadable(path, `the file ends at byte ${done}, before its stated size ${size}`)];
    done += bytesRead;
  }
  // ArrayBuffer.slice clamps silently: a short read of a name or a value must stop the reader, not truncate it.
  Object.defineProperty(window, 'slice', {
    value(begin: number, end?: number): ArrayBuffer {
      if (begin > length || (end !== undefined && end > length)) throw new PastWindow();
      return ArrayBuffer.prototype.slice.call(window, begin, end);
    },
  });
  let attrs: Record<string, unknown>;
  try {
    const { File } = await import('jsfive');
    attrs = new File(window, path).attrs;
  } catch (err) {
    if (length < size && (err instanceof PastWindow || err instanceof RangeError))
      return [
        unreadable(
          path,
          `its root group lies past the first ${length} bytes that the scanner reads (file of ${size} bytes); save the model with Keras so that its config comes first, or as .keras or safetensors`,
        ),
      ];
    return [unreadable(path, `the HDF5 structure does not read (${describe(err)})`)];
  }
  const findings: ScanFinding[] = [];
  let configs = 0;
  for (const name of CONFIG_ATTRIBUTES) {
    if (!(name in attrs)) continue;
    configs++;
    const text = attributeText(attrs[name]);
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

/** Keras writes its configs as str or bytes; jsfive reads them as a string or a byte array. */
function attributeText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}

function unreadable(path: string, why: string): ScanFinding {
  return finding('hdf5.invalid', path, `HDF5 file not examined: ${why}`);
}

/** The reader's reason by its error class only: its messages can quote bytes of the file. */
function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: corrupt or of a layout the reader does not know` : 'unreadable';
}
