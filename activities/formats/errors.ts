/**
 * The one error the format readers throw: which format, which file, at which byte, and why. The reason is written
 * by the reader from what it expected, never from the file's bytes, so a message cannot carry a model's content (or
 * a secret that a hostile file put where a header should be) into logs, reports or workflow history.
 */
export type WeightFormatName = 'safetensors' | 'gguf' | 'tfjs' | 'npy' | 'onnx' | 'hdf5' | 'zip';

export class FormatError extends Error {
  override readonly name = 'FormatError';
  readonly code = 'FormatError';

  constructor(
    readonly format: WeightFormatName,
    /** The file as its caller named it (a model-relative path). */
    readonly file: string,
    /** Byte offset in the file where the reader stopped; -1 when the problem is not at one place. */
    readonly offset: number,
    /** Why, without the file name: scanners put it into findings that carry the path themselves. */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${file}${offset >= 0 ? ` (byte ${offset})` : ''}: ${reason}`, options);
  }
}

/** A name or value from a file, quoted and cut to 64 characters: enough to find it, too little to carry a payload. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 63)}…` : text;
}
