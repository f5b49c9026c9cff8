/**
 * HDF5 (Keras .h5 models), read with a pure-JS HDF5 reader (jsfive):
 * - the root group's attributes, from the first `windowBytes` of the file. Keras writes its configs (model_config,
 *   training_config) there, before the weights, so a window holds them without reading the weights into memory; a
 *   file whose root group lies past the window is an error, never a short read taken for the whole.
 * - every dataset's type and shape (the weights' sizes), from the whole file, without decoding the data.
 */
import { DTYPE_BITS, type Dtype } from './dtypes';
import { FormatError } from './errors';
import { npyDtype } from './npy';
import type { PositionalRead } from './source';

/** The most of an HDF5 file read into memory to find its root attributes. */
export const HDF5_WINDOW_BYTES = 64 << 20;

/**
 * The most of an HDF5 file read into memory to list its datasets: h5py writes each dataset's header next to the data
 * of the one before, so no window short of the whole file holds them all.
 */
export const HDF5_DATASETS_LIMIT = 1 << 30;

/** Groups nest; deeper than this is no model a framework writes. */
const MAX_GROUP_DEPTH = 64;
/** More datasets than any model has: a file of more is not read on. */
const MAX_DATASETS = 1_000_000;

/** Thrown when the reader asks for bytes past the window: the file is not examined rather than read short. */
class PastWindow extends Error {}

/** True when the bytes start with the HDF5 signature (at offset 0, where Keras writes it). */
export function isHdf5(head: Buffer): boolean {
  return head.length >= 8 && head.toString('latin1', 0, 8) === '\x89HDF\r\n\x1a\n';
}

/**
 * The root group's attributes (strings, or byte arrays for bytes attributes). Throws a FormatError saying why when
 * the structure does not read, and the signal's reason when cancelled (checked between 1 MiB reads).
 */
export async function readHdf5RootAttributes(
  handle: PositionalRead,
  file: string,
  size: number,
  options: { signal?: AbortSignal; windowBytes?: number } = {},
): Promise<Record<string, unknown>> {
  const length = Math.min(size, options.windowBytes ?? HDF5_WINDOW_BYTES);
  const window = await readWindow(handle, file, size, length, options.signal);
  // ArrayBuffer.slice clamps silently: a short read of a name or a value must stop the reader, not truncate it.
  Object.defineProperty(window, 'slice', {
    value(begin: number, end?: number): ArrayBuffer {
      if (begin > length || (end !== undefined && end > length)) throw new PastWindow();
      return ArrayBuffer.prototype.slice.call(window, begin, end);
    },
  });
  try {
    const { File } = await import('jsfive');
    return new File(window, file).attrs;
  } catch (err) {
    if (length < size && (err instanceof PastWindow || err instanceof RangeError))
      throw new FormatError(
        'hdf5',
        file,
        length,
        `its root group lies past the first ${length} bytes that are read (file of ${size} bytes); save the model with Keras so that its config comes first, or as .keras or safetensors`,
      );
    // The reader's reason by its error class only: its messages can quote bytes of the file.
    const why = err instanceof Error ? `${err.name}: corrupt or of a layout the reader does not know` : 'unreadable';
    throw new FormatError('hdf5', file, -1, `the HDF5 structure does not read (${why})`);
  }
}

/** The first `length` bytes of a file, read in 1 MiB steps with a check for cancellation between them. */
async function readWindow(
  handle: PositionalRead,
  file: string,
  size: number,
  length: number,
  signal: AbortSignal | undefined,
): Promise<ArrayBuffer> {
  if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
  const window = new ArrayBuffer(length);
  const bytes = Buffer.from(window);
  for (let done = 0; done < length;) {
    if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
    const { bytesRead } = await handle.read(bytes, done, Math.min(1 << 20, length - done), done);
    if (bytesRead === 0)
      throw new FormatError('hdf5', file, done, `the file ends at byte ${done}, before its stated size ${size}`);
    done += bytesRead;
  }
  return window;
}

/** An attribute's text: Keras writes its configs as str or bytes, which the reader gives as a string or bytes. */
export function hdf5AttributeText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}

export interface Hdf5Dataset {
  /** Its path from the root group, e.g. `/model_weights/dense/dense/kernel:0`. */
  name: string;
  /** The element type as numpy writes it (`<f4`), for the numeric types; undefined for strings, compounds and the rest. */
  descr: string | undefined;
  /** The shared element type, for fixed-width numeric data. */
  type: Dtype | undefined;
  shape: number[];
  elements: number;
  /** Bytes the data takes once loaded (elements times the type's width), for fixed-width numeric data. */
  bytes: number | undefined;
}

interface JsfiveNode {
  readonly keys?: string[];
  get?(name: string): JsfiveNode | null;
  readonly shape?: number[] | null;
  readonly dtype?: unknown;
  readonly _dataobjects?: { offset?: number };
}

/**
 * Every dataset of an HDF5 file with its type and shape, read from the whole file in memory (callers bound it with
 * {@link HDF5_DATASETS_LIMIT}); the data itself is never decoded. Hard links to a group or dataset already seen are
 * followed once, so a cycle or an alias neither loops nor counts twice. Throws a FormatError when the structure does
 * not read, and the signal's reason when cancelled.
 */
export async function readHdf5Datasets(
  handle: PositionalRead,
  file: string,
  size: number,
  options: { signal?: AbortSignal } = {},
): Promise<Hdf5Dataset[]> {
  const window = await readWindow(handle, file, size, size, options.signal);
  const datasets: Hdf5Dataset[] = [];
  try {
    const { File } = await import('jsfive');
    const root = new File(window, file) as unknown as JsfiveNode;
    const seen = new Set<number>(root._dataobjects?.offset === undefined ? [] : [root._dataobjects.offset]);
    const visit = (group: JsfiveNode, path: string, depth: number): void => {
      if (depth > MAX_GROUP_DEPTH)
        throw new FormatError('hdf5', file, -1, `groups nest deeper than ${MAX_GROUP_DEPTH}`);
      for (const key of group.keys ?? []) {
        options.signal?.throwIfAborted();
        const node = group.get?.(key);
        // A soft link that leads nowhere: nothing stored under it.
        if (!node) continue;
        const address = node._dataobjects?.offset;
        if (address !== undefined) {
          if (seen.has(address)) continue;
          seen.add(address);
        }
        const name = `${path}/${key}`;
        if (Array.isArray(node.keys)) {
          visit(node, name, depth + 1);
          continue;
        }
        if (datasets.length >= MAX_DATASETS)
          throw new FormatError('hdf5', file, -1, `more than ${MAX_DATASETS} datasets: not a model's weights`);
        datasets.push(dataset(name, node));
      }
    };
    visit(root, '', 0);
  } catch (err) {
    if (err instanceof FormatError || options.signal?.aborted) throw err;
    // jsfive throws strings as well as errors, and its messages can quote bytes of the file: only the class is kept.
    const why = err instanceof Error ? `${err.name}: corrupt or of a layout the reader does not know` : 'unreadable';
    throw new FormatError('hdf5', file, -1, `the HDF5 structure does not read (${why})`);
  }
  return datasets;
}

function dataset(name: string, node: JsfiveNode): Hdf5Dataset {
  const shape = Array.isArray(node.shape) ? node.shape.map(Number) : [];
  const elements = shape.reduce((p, d) => p * d, 1);
  const descr = typeof node.dtype === 'string' ? node.dtype : undefined;
  const type = descr === undefined ? undefined : npyDtype(descr);
  return {
    name,
    descr: type === undefined ? undefined : descr,
    type,
    shape,
    elements,
    bytes: type === undefined ? undefined : Math.ceil((elements * DTYPE_BITS[type]) / 8),
  };
}
