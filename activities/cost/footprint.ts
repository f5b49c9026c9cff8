/**
 * The model's footprint read from its weight headers: parameter count and bytes per dtype, from safetensors headers,
 * tfjs weights manifests (model.json, with quantization), GGUF tensor infos, ONNX models (initializers and node
 * constants, inline or external data), .npy arrays and HDF5 datasets (Keras .h5 files and the weights file of a
 * .keras archive). Every format is read by the shared readers in activities/formats and sized from their one dtype
 * table, so the scanner and this footprint agree on every tensor's bytes. Sizes come from the headers, never from
 * file names; a file is recognised by its content (magic bytes, header shape), except that only `*.json` files are
 * parsed as possible tfjs manifests. Reads are bounded: safetensors, GGUF, tfjs and npy headers are read without
 * their tensors; an ONNX model (a protobuf, at most 2 GiB) and an HDF5 file or a .keras archive's weights (up to
 * {@link HDF5_DATASETS_LIMIT}) are read whole, since their headers lie among the data, but no tensor is decoded.
 */
import { open, readFile } from 'node:fs/promises';
import type { ArtifactFile } from '../../contract/types';
import { DTYPE_BITS } from '../formats/dtypes';
import { FormatError, quote } from '../formats/errors';
import { ggufLayoutIssues, ggufMetadata, isGguf, readGgufHeader, type GgufHeader } from '../formats/gguf';
import { HDF5_DATASETS_LIMIT, isHdf5, readHdf5Datasets, type Hdf5Dataset } from '../formats/hdf5';
import { isNpy, readNpyHeader } from '../formats/npy';
import { looksLikeOnnxModel, readOnnxModel } from '../formats/onnx';
import { resolveInside } from '../formats/paths';
import { looksLikeSafetensors, readSafetensorsHeader, SAFETENSORS_HEADER_LIMIT } from '../formats/safetensors';
import { readHead, withFileBytes } from '../formats/source';
import { readTfjsManifest, TFJS_MANIFEST_LIMIT, tfjsShardPath } from '../formats/tfjs';
import { findZipMember } from '../formats/zip';
import { CostError } from './errors';

export type WeightFormat = 'safetensors' | 'tfjs' | 'gguf' | 'onnx' | 'npy' | 'hdf5';

export interface DtypeFootprint {
  parameters: number;
  /** Bytes as stored in the files. */
  bytes: number;
}

export interface WeightFileFootprint {
  path: string;
  format: WeightFormat;
  tensors: number;
  parameters: number;
  storedBytes: number;
  /**
   * Bytes the weights take once loaded (tfjs dequantizes to float32; the other formats load as stored, HDF5 datasets
   * uncompressed).
   */
  memoryBytes: number;
  byDtype: Record<string, DtypeFootprint>;
}

export interface LlmShape {
  architecture: string;
  contextLength?: number;
  /** KV-cache bytes per token of context (f16 keys and values over all layers), when the header says enough. */
  kvCacheBytesPerToken?: number;
}

export interface ModelFootprint {
  parameters: number;
  storedBytes: number;
  /** Loaded weights, plus files no reader recognised (counted at their size, to err on the side of more memory). */
  memoryBytes: number;
  byDtype: Record<string, DtypeFootprint>;
  formats: WeightFormat[];
  files: WeightFileFootprint[];
  /** Files over {@link UNREAD_THRESHOLD_BYTES} that are no weight format this reader knows; counted at file size. */
  unread: { path: string; size: number }[];
  llm?: LlmShape;
}

export interface FootprintOptions {
  signal?: AbortSignal;
  onProgress?: (progress: { file: string; done: number; total: number }) => void;
}

export { HDF5_DATASETS_LIMIT, SAFETENSORS_HEADER_LIMIT, TFJS_MANIFEST_LIMIT };
/** GGUF metadata holds tokenizer vocabularies (a few MB); anything far beyond is not a header we should read. */
export const GGUF_HEADER_LIMIT = 256 * 1024 * 1024;
/** Smaller unrecognised files (configs, tokenizers, licences) do not move a memory estimate. */
export const UNREAD_THRESHOLD_BYTES = 1024 * 1024;
/** Protobuf's own limit: an ONNX model larger than this keeps its weights as external data. */
export const ONNX_MODEL_LIMIT = 2 ** 31 - 1;

/**
 * Reads the footprint of every weight file in `files`. `locate` maps a manifest entry to the path of its bytes (the
 * artifact store in the gate, a model directory in the CLI). Throws CostError('UnreadableModel') when a weight header
 * is corrupt or no weight file is found at all.
 */
export async function readFootprint(
  files: ArtifactFile[],
  locate: (file: ArtifactFile) => string,
  options: FootprintOptions = {},
): Promise<ModelFootprint> {
  const results: WeightFileFootprint[] = [];
  const covered = new Set<string>();
  const candidates: ArtifactFile[] = [];
  let llm: LlmShape | undefined;
  const byPath = new Map(files.map((f) => [f.path, f]));
  let done = 0;
  // Manifests first, so that their shards (raw tensor bytes) are never sniffed as another format.
  const ordered = [...files.filter((f) => f.path.endsWith('.json')), ...files.filter((f) => !f.path.endsWith('.json'))];
  for (const file of ordered) {
    options.signal?.throwIfAborted();
    options.onProgress?.({ file: file.path, done, total: files.length });
    done += 1;
    if (covered.has(file.path)) continue;
    const path = locate(file);
    const magic = await readHead(path, 16);
    if (file.path.endsWith('.json')) {
      const tfjs = magic.toString('utf8').trimStart().startsWith('{')
        ? await readTfjsManifestFile(path, file, byPath)
        : undefined;
      if (tfjs) {
        results.push(tfjs.footprint);
        covered.add(file.path);
        for (const shard of tfjs.shards) covered.add(shard);
      } else {
        candidates.push(file);
      }
    } else if (isGguf(magic)) {
      const gguf = await readGguf(path, file);
      results.push(gguf.footprint);
      llm ??= gguf.llm;
      covered.add(file.path);
    } else if (looksLikeSafetensors(magic)) {
      results.push(await readSafetensors(path, file));
      covered.add(file.path);
    } else if (isNpy(magic)) {
      const npy = await readNpy(path, file);
      if (npy) {
        results.push(npy);
        covered.add(file.path);
      } else candidates.push(file);
    } else if (isHdf5(magic) && file.size <= HDF5_DATASETS_LIMIT) {
      const hdf5 = await readHdf5(path, file, options.signal);
      if (hdf5) {
        results.push(hdf5);
        covered.add(file.path);
      } else candidates.push(file);
    } else if (magic.toString('latin1', 0, 4) === 'PK\x03\x04') {
      const keras = await readKerasArchive(path, file, options.signal);
      if (keras) {
        results.push(keras);
        covered.add(file.path);
      } else candidates.push(file);
    } else if (magic[0] === 0x08 && (await isOnnx(path, file.size))) {
      const onnx = await readOnnx(path, file, byPath);
      results.push(onnx.footprint);
      covered.add(file.path);
      for (const data of onnx.dataFiles) covered.add(data);
    } else {
      candidates.push(file);
    }
  }
  const unread = candidates
    .filter((f) => !covered.has(f.path) && f.size > UNREAD_THRESHOLD_BYTES)
    .map((f) => ({ path: f.path, size: f.size }));
  if (results.length === 0) {
    const listed = files.map((f) => f.path).join(', ');
    throw new CostError(
      'UnreadableModel',
      `the model's size cannot be read: no safetensors, GGUF or tfjs model.json among its files (${listed}), nor an ONNX model, a numeric .npy array, or Keras weights in HDF5 or .keras; ship weights in one of these formats`,
    );
  }
  const byDtype: Record<string, DtypeFootprint> = {};
  for (const r of results) {
    for (const [dtype, d] of Object.entries(r.byDtype)) {
      const sum = (byDtype[dtype] ??= { parameters: 0, bytes: 0 });
      sum.parameters += d.parameters;
      sum.bytes += d.bytes;
    }
  }
  const unreadBytes = unread.reduce((s, f) => s + f.size, 0);
  return {
    parameters: sum(results.map((r) => r.parameters)),
    storedBytes: sum(results.map((r) => r.storedBytes)),
    memoryBytes: sum(results.map((r) => r.memoryBytes)) + unreadBytes,
    byDtype,
    formats: [...new Set(results.map((r) => r.format))].sort(),
    files: results,
    unread,
    ...(llm ? { llm } : {}),
  };
}

function sum(values: number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

function unreadable(file: ArtifactFile, why: string): CostError {
  return new CostError('UnreadableModel', `${file.path}: ${why}; the model's size cannot be read`);
}

/** Runs a format reader; its FormatError becomes the gate's UnreadableModel, with the reason and not the bytes. */
async function reading<T>(file: ArtifactFile, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof FormatError) throw unreadable(file, err.reason);
    throw err;
  }
}

function add(byDtype: Record<string, DtypeFootprint>, key: string, parameters: number, bytes: number): void {
  const d = (byDtype[key] ??= { parameters: 0, bytes: 0 });
  d.parameters += parameters;
  d.bytes += bytes;
}

async function readSafetensors(path: string, file: ArtifactFile): Promise<WeightFileFootprint> {
  const header = await reading(file, () =>
    withFileBytes(path, (bytes) => readSafetensorsHeader(bytes, file.path, file.size, SAFETENSORS_HEADER_LIMIT)),
  );
  // Unclaimed bytes do not change a size; every other issue means the header does not describe the file.
  const problem = header.issues.find((i) => i.kind !== 'gap');
  if (problem) throw unreadable(file, problem.reason);
  const byDtype: Record<string, DtypeFootprint> = {};
  let parameters = 0;
  let storedBytes = 0;
  for (const t of header.tensors) {
    const bytes = Number(t.end - t.begin);
    add(byDtype, t.dtype, Number(t.elements), bytes);
    parameters += Number(t.elements);
    storedBytes += bytes;
  }
  return {
    path: file.path,
    format: 'safetensors',
    tensors: header.tensors.length,
    parameters,
    storedBytes,
    memoryBytes: storedBytes,
    byDtype,
  };
}

async function readTfjsManifestFile(
  path: string,
  file: ArtifactFile,
  byPath: Map<string, ArtifactFile>,
): Promise<{ footprint: WeightFileFootprint; shards: string[] } | undefined> {
  if (file.size > TFJS_MANIFEST_LIMIT) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    // Not JSON after all (or not ours to judge): some other file that merely starts with a brace.
    return undefined;
  }
  if (!Array.isArray((doc as { weightsManifest?: unknown } | null)?.weightsManifest)) return undefined;
  const manifest = await reading(file, async () => readTfjsManifest(doc, file.path));
  if (manifest.issues[0] !== undefined) throw unreadable(file, manifest.issues[0]);
  const byDtype: Record<string, DtypeFootprint> = {};
  const shards: string[] = [];
  let parameters = 0;
  let storedBytes = 0;
  let memoryBytes = 0;
  let tensors = 0;
  let shardBytes = 0;
  manifest.groups.forEach((group, g) => {
    for (const p of group.paths ?? []) {
      const shard = tfjsShardPath(file.path, p);
      if (shard === undefined)
        throw unreadable(file, `weightsManifest[${g}] names shard ${JSON.stringify(p)}, outside the model directory`);
      const entry = byPath.get(shard);
      if (!entry)
        throw unreadable(file, `weightsManifest[${g}] names shard "${shard}", which is not among the model's files`);
      shards.push(shard);
      shardBytes += entry.size;
    }
    for (const w of group.weights) {
      // Strings have no fixed width; they are vocabularies, not parameters.
      if (w.type === undefined) continue;
      const key = w.quantization ? `${w.dtype}<-${w.quantization.dtype}` : w.dtype;
      add(byDtype, key, w.elements, w.storedBytes);
      parameters += w.elements;
      storedBytes += w.storedBytes;
      memoryBytes += w.memoryBytes;
      tensors += 1;
    }
  });
  if (storedBytes > shardBytes) {
    throw unreadable(file, `the weights need ${storedBytes} bytes but the shards hold only ${shardBytes}`);
  }
  return {
    footprint: { path: file.path, format: 'tfjs', tensors, parameters, storedBytes, memoryBytes, byDtype },
    shards,
  };
}

/** A numeric .npy array; undefined for object arrays (a pickle), strings, dates and records, which are no weights. */
async function readNpy(path: string, file: ArtifactFile): Promise<WeightFileFootprint | undefined> {
  const header = await reading(file, () => withFileBytes(path, (bytes) => readNpyHeader(bytes, file.path)));
  if (header.type === undefined || header.dataBytes === undefined) return undefined;
  const data = BigInt(file.size - header.dataStart);
  // numpy.load refuses a file whose data is not exactly what the header promises; so does the scanner.
  if (data < header.dataBytes)
    throw unreadable(file, `the header promises ${header.dataBytes} bytes of data but the file ends first`);
  if (data > header.dataBytes)
    throw unreadable(file, `bytes after the ${header.dataBytes}-byte array data are not part of the array`);
  const parameters = Number(header.elements);
  const storedBytes = Number(header.dataBytes);
  return {
    path: file.path,
    format: 'npy',
    tensors: 1,
    parameters,
    storedBytes,
    memoryBytes: storedBytes,
    byDtype: { [header.type]: { parameters, bytes: storedBytes } },
  };
}

/**
 * Keras keeps the optimizer's state beside the weights: `optimizer_weights` in a full-model .h5, `optimizer` in a v3
 * archive's weights file. Serving loads only the model's weights.
 */
const OPTIMIZER_GROUPS = ['/optimizer_weights/', '/optimizer/'];

/** The numeric datasets of an HDF5 file; undefined when it holds none (no weights: a data file, a config). */
async function readHdf5(
  path: string,
  file: ArtifactFile,
  signal: AbortSignal | undefined,
): Promise<WeightFileFootprint | undefined> {
  const datasets = await reading(file, async () => {
    const handle = await open(path, 'r');
    try {
      return await readHdf5Datasets(handle, file.path, file.size, { signal });
    } finally {
      await handle.close();
    }
  });
  return hdf5Footprint(file, datasets);
}

/** The weights of a Keras v3 archive (.keras: a zip of config.json, metadata.json and this HDF5 file). */
const KERAS_WEIGHTS_MEMBER = 'model.weights.h5';

/** A zip that is a Keras archive, sized from its weights file; undefined for any other zip (PyTorch, npz, …). */
async function readKerasArchive(
  path: string,
  file: ArtifactFile,
  signal: AbortSignal | undefined,
): Promise<WeightFileFootprint | undefined> {
  const member = await reading(file, () => findZipMember(path, file.path, KERAS_WEIGHTS_MEMBER, HDF5_DATASETS_LIMIT));
  // Weights past the limit are not read into memory: the archive counts at its size, as an unread file.
  if (!member.found || member.bytes === undefined) return undefined;
  const bytes = member.bytes;
  const source = {
    read: async (buf: Buffer, offset: number, length: number, position: number) => ({
      bytesRead: bytes.copy(buf, offset, position, Math.min(position + length, bytes.length)),
    }),
  };
  const datasets = await reading(file, () =>
    readHdf5Datasets(source, `${file.path}!${KERAS_WEIGHTS_MEMBER}`, bytes.length, { signal }),
  );
  return hdf5Footprint(file, datasets);
}

function hdf5Footprint(file: ArtifactFile, datasets: Hdf5Dataset[]): WeightFileFootprint | undefined {
  const weights = datasets.filter((d) => d.type !== undefined && !OPTIMIZER_GROUPS.some((g) => d.name.startsWith(g)));
  if (weights.length === 0) return undefined;
  const byDtype: Record<string, DtypeFootprint> = {};
  let parameters = 0;
  let storedBytes = 0;
  for (const d of weights) {
    add(byDtype, d.type!, d.elements, d.bytes!);
    parameters += d.elements;
    storedBytes += d.bytes!;
  }
  return {
    path: file.path,
    format: 'hdf5',
    tensors: weights.length,
    parameters,
    storedBytes,
    memoryBytes: storedBytes,
    byDtype,
  };
}

async function isOnnx(path: string, size: number): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    return await looksLikeOnnxModel(handle, size);
  } finally {
    await handle.close();
  }
}

/**
 * An ONNX model's tensors: initializers (of subgraphs too) and the constants in its nodes, which older exporters use
 * for weights. External data must lie inside the model directory, among its files, and hold every byte its tensors
 * name; those files are covered by the model rather than counted again.
 */
async function readOnnx(
  path: string,
  file: ArtifactFile,
  byPath: Map<string, ArtifactFile>,
): Promise<{ footprint: WeightFileFootprint; dataFiles: string[] }> {
  if (file.size > ONNX_MODEL_LIMIT)
    throw unreadable(
      file,
      `${file.size} bytes is more than a protobuf can hold (2 GiB); save the weights as ONNX external data`,
    );
  const bytes = await readFile(path);
  const model = await reading(file, async () => readOnnxModel(bytes, file.path));
  const byDtype: Record<string, DtypeFootprint> = {};
  const dataFiles = new Set<string>();
  let parameters = 0;
  let storedBytes = 0;
  let tensors = 0;
  for (const t of model.tensors) {
    const name = quote(t.name || '?');
    if (t.type === undefined) {
      // Strings have no fixed width; they are labels and vocabularies, not parameters.
      if (t.dataType === 8) continue;
      throw unreadable(file, `ONNX tensor ${name} has unknown data type ${t.dataType}`);
    }
    const tensorBytes = Math.ceil((t.elements * DTYPE_BITS[t.type]) / 8);
    if (t.external) {
      const { location, offset = 0, length } = t.external;
      if (location === undefined) throw unreadable(file, `ONNX tensor ${name} is external but names no location`);
      const data = resolveInside(file.path, location);
      if (data === undefined)
        throw unreadable(
          file,
          `ONNX tensor ${name} reads external data from ${quote(location)}, outside the model directory`,
        );
      const entry = byPath.get(data);
      if (!entry)
        throw unreadable(
          file,
          `ONNX tensor ${name} reads external data from ${quote(data)}, which is not among the model's files`,
        );
      if (Number.isNaN(offset) || (length !== undefined && length !== tensorBytes))
        throw unreadable(
          file,
          `ONNX tensor ${name} has an external offset or length that does not describe its ${tensorBytes} bytes`,
        );
      if (offset + tensorBytes > entry.size)
        throw unreadable(
          file,
          `ONNX tensor ${name} needs bytes ${offset} to ${offset + tensorBytes} of ${quote(data)}, which holds ${entry.size}`,
        );
      dataFiles.add(data);
    }
    add(byDtype, t.type, t.elements, tensorBytes);
    parameters += t.elements;
    storedBytes += tensorBytes;
    tensors += 1;
  }
  return {
    footprint: {
      path: file.path,
      format: 'onnx',
      tensors,
      parameters,
      storedBytes,
      // ONNX Runtime holds initializers as stored (external data is read or mapped in full).
      memoryBytes: storedBytes,
      byDtype,
    },
    dataFiles: [...dataFiles],
  };
}

/** Strings the footprint keeps from a GGUF header: the architecture, which names the other keys it reads. */
const GGUF_KEPT_STRINGS = new Set(['general.architecture']);

async function readGguf(path: string, file: ArtifactFile): Promise<{ footprint: WeightFileFootprint; llm?: LlmShape }> {
  const header = await reading(file, () =>
    withFileBytes(path, (bytes) =>
      readGgufHeader(bytes, file.path, file.size, {
        keepString: (key) => GGUF_KEPT_STRINGS.has(key),
        maxHeaderBytes: GGUF_HEADER_LIMIT,
      }),
    ),
  );
  const unknown = header.tensors.find((t) => t.type === undefined);
  if (unknown) throw unreadable(file, `GGUF tensor "${unknown.name}" has unknown ggml type ${unknown.typeId}`);
  const layout = ggufLayoutIssues(header, file.size)[0];
  if (layout) throw unreadable(file, layout.reason);
  const byDtype: Record<string, DtypeFootprint> = {};
  let parameters = 0;
  let storedBytes = 0;
  for (const t of header.tensors) {
    // Inside the file and without overlap (checked above): both fit a double exactly.
    add(byDtype, t.type!.name, Number(t.elements), Number(t.bytes));
    parameters += Number(t.elements);
    storedBytes += Number(t.bytes);
  }
  return {
    footprint: {
      path: file.path,
      format: 'gguf',
      tensors: header.tensors.length,
      parameters,
      storedBytes,
      // llama.cpp and its kin serve GGUF weights as stored (memory-mapped, quantized).
      memoryBytes: storedBytes,
      byDtype,
    },
    llm: llmShape(header),
  };
}

function llmShape(header: GgufHeader): LlmShape | undefined {
  const arch = ggufMetadata(header, 'general.architecture');
  if (typeof arch !== 'string') return undefined;
  const num = (key: string): number | undefined => {
    const raw = ggufMetadata(header, `${arch}.${key}`);
    const v = typeof raw === 'bigint' ? Number(raw) : raw;
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const layers = num('block_count');
  const embedding = num('embedding_length');
  const heads = num('attention.head_count');
  const kvHeads = num('attention.head_count_kv') ?? heads;
  const contextLength = num('context_length');
  const shape: LlmShape = { architecture: arch, ...(contextLength ? { contextLength } : {}) };
  if (layers && embedding && heads && kvHeads) {
    // Keys and values, per layer, per KV head of width embedding/heads, in f16.
    shape.kvCacheBytesPerToken = 2 * layers * kvHeads * (embedding / heads) * 2;
  }
  return shape;
}
