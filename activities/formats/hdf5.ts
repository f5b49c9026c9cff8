/**
 * HDF5 (Keras .h5 models): the root group's attributes, read with a pure-JS HDF5 reader (jsfive) from the first
 * `windowBytes` of the file. Keras writes its configs (model_config, training_config) there, before the weights, so
 * a window holds them without reading the weights into memory; a file whose root group lies past the window is an
 * error, never a short read taken for the whole.
 */
import { FormatError } from './errors';
import type { PositionalRead } from './source';

/** The most of an HDF5 file read into memory to find its root attributes. */
export const HDF5_WINDOW_BYTES = 64 << 20;

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
  const { signal } = options;
  if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
  const length = Math.min(size, options.windowBytes ?? HDF5_WINDOW_BYTES);
  const window = new ArrayBuffer(length);
  const bytes = Buffer.from(window);
  for (let done = 0; done < length;) {
    if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
    const { bytesRead } = await handle.read(bytes, done, Math.min(1 << 20, length - done), done);
    if (bytesRead === 0)
      throw new FormatError('hdf5', file, done, `the file ends at byte ${done}, before its stated size ${size}`);
    done += bytesRead;
  }
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

/** An attribute's text: Keras writes its configs as str or bytes, which the reader gives as a string or bytes. */
export function hdf5AttributeText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}
