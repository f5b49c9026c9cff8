/**
 * The format library's readers on real files written by each format's reference library (test/formats/
 * make-fixtures.py: safetensors, numpy, gguf, h5py) or, where the venv has none (ONNX, TF.js), written here: each
 * reader returns what the reference library reads back, and refuses a broken file with a FormatError that names the
 * file and offset and never quotes its content.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packedBytes, SAFETENSORS_DTYPES } from '../../activities/formats/dtypes';
import { FormatError } from '../../activities/formats/errors';
import { ggufLayoutIssues, ggufMetadata, readGgufHeader } from '../../activities/formats/gguf';
import { readHdf5Datasets, readHdf5RootAttributes } from '../../activities/formats/hdf5';
import { readNpyHeader } from '../../activities/formats/npy';
import { looksLikeOnnxModel, readOnnxModel } from '../../activities/formats/onnx';
import { readSafetensorsHeader } from '../../activities/formats/safetensors';
import { bufferBytes, withFileBytes } from '../../activities/formats/source';
import { readTfjsManifest } from '../../activities/formats/tfjs';
import { externalTensor, ONNX, onnxModel } from './onnx-fixture';

const PYTHON = resolve(import.meta.dirname, '../../.venv/bin/python');
const MAKE = resolve(import.meta.dirname, 'make-fixtures.py');

interface Answers {
  safetensors: { metadata: Record<string, string>; tensors: Record<string, { shape: number[]; bytes: number }> };
  npy: Record<string, { shape: number[]; bytes: number; descr: string }>;
  gguf: { architecture: string; tensors: Record<string, { type: string; elements: number; bytes: number }> };
  hdf5: {
    attributes: string[];
    datasets: Record<string, { shape: number[]; descr: string; bytes: number; numeric: boolean }>;
  };
}

let dir: string;
let answers: Answers;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-formats-'));
  const { stdout } = await promisify(execFile)(PYTHON, [MAKE, dir]);
  answers = JSON.parse(stdout) as Answers;
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const fileIn = (name: string): string => join(dir, name);

describe('safetensors', () => {
  it('reads every tensor with the dtype, shape and byte size the safetensors library reads back', async () => {
    const file = fileIn('model.safetensors');
    const size = (await readFile(file)).length;
    const header = await withFileBytes(file, (b) => readSafetensorsHeader(b, 'model.safetensors', size));
    expect(header.issues).toEqual([]);
    expect(header.metadata).toEqual(answers.safetensors.metadata);
    const read = Object.fromEntries(
      header.tensors.map((t) => [t.name, { shape: t.shape, bytes: Number(t.end - t.begin) }]),
    );
    expect(read).toEqual(answers.safetensors.tensors);
    for (const t of header.tensors) expect(t.bytes).toBe(t.end - t.begin);
    expect(Object.fromEntries(header.tensors.map((t) => [t.name, t.type]))).toEqual({
      'dense.weight': 'f32',
      'embed.weight': 'f16',
      mask: 'bool',
      steps: 'i64',
    });
  });

  it('sizes the narrow dtypes from the shared table: BF16, F8 variants, and packed F4 and F6', () => {
    expect(packedBytes(SAFETENSORS_DTYPES.BF16!, 3n)).toBe(6n);
    expect(packedBytes(SAFETENSORS_DTYPES.F8_E4M3!, 3n)).toBe(3n);
    expect(packedBytes(SAFETENSORS_DTYPES.F8_E5M2!, 3n)).toBe(3n);
    expect(packedBytes(SAFETENSORS_DTYPES.F4!, 6n)).toBe(3n);
    expect(packedBytes(SAFETENSORS_DTYPES.F4!, 3n)).toBeUndefined();
    expect(packedBytes(SAFETENSORS_DTYPES.F6_E2M3!, 4n)).toBe(3n);
  });

  it('refuses a header that is not JSON with a FormatError that names the file and offset, not the bytes', async () => {
    const secret = 'AKIAIOSFODNN7EXAMPLE';
    const h = Buffer.from(`{"${secret}": oops}`);
    const bytes = Buffer.concat([Buffer.alloc(8), h]);
    bytes.writeBigUInt64LE(BigInt(h.length));
    const err = await readSafetensorsHeader(bufferBytes(bytes), 'w.safetensors', bytes.length).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err).toMatchObject({ format: 'safetensors', file: 'w.safetensors', offset: 8 });
    expect((err as Error).message).toMatch(/^w\.safetensors \(byte 8\): header is not valid JSON/);
    expect((err as Error).message).not.toContain(secret);
  });
});

describe('npy', () => {
  it.each(['array.npy', 'big-endian.npy'])('%s: the shape, dtype and data size numpy wrote', async (name) => {
    const bytes = await readFile(fileIn(name));
    const header = await readNpyHeader(bufferBytes(bytes), name);
    const want = answers.npy[name]!;
    expect(header.shape.map(Number)).toEqual(want.shape);
    expect(header.descr).toBe(want.descr);
    expect(header.dataBytes).toBe(BigInt(want.bytes));
    expect(header.dataStart + want.bytes).toBe(bytes.length);
    expect(header.hasObject).toBe(false);
  });

  it('names the shared element type of numeric dtypes', async () => {
    const header = await readNpyHeader(bufferBytes(await readFile(fileIn('array.npy'))), 'array.npy');
    expect(header.type).toBe('f32');
  });

  it('refuses a cut header with a FormatError at the header start', async () => {
    const bytes = (await readFile(fileIn('array.npy'))).subarray(0, 20);
    await expect(readNpyHeader(bufferBytes(bytes), 'cut.npy')).rejects.toMatchObject({
      name: 'FormatError',
      format: 'npy',
      file: 'cut.npy',
      offset: 10,
    });
  });
});

describe('GGUF', () => {
  it('reads the tensors gguf-py reads, with the same ggml types, element counts and byte sizes', async () => {
    const file = fileIn('model.gguf');
    const size = (await readFile(file)).length;
    const header = await withFileBytes(file, (b) =>
      readGgufHeader(b, 'model.gguf', size, { keepString: (k) => k === 'general.architecture' }),
    );
    expect(ggufMetadata(header, 'general.architecture')).toBe(answers.gguf.architecture);
    // Strings not asked for are skipped, not read.
    expect(ggufMetadata(header, 'tokenizer.chat_template')).toBe('');
    const read = Object.fromEntries(
      header.tensors.map((t) => [t.name, { type: t.type?.name, elements: Number(t.elements), bytes: Number(t.bytes) }]),
    );
    expect(read).toEqual(answers.gguf.tensors);
    expect(ggufLayoutIssues(header, size)).toEqual([]);
  });

  it('refuses a truncated header with a FormatError that says where it stopped', async () => {
    const bytes = (await readFile(fileIn('model.gguf'))).subarray(0, 100);
    const err = await readGgufHeader(bufferBytes(bytes), 'cut.gguf', bytes.length).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).reason).toMatch(/^GGUF header is truncated/);
    expect((err as FormatError).offset).toBeGreaterThan(0);
    expect((err as FormatError).offset).toBeLessThanOrEqual(100);
  });

  it('finds a tensor whose data runs past the end of the file', async () => {
    const full = await readFile(fileIn('model.gguf'));
    const cut = full.subarray(0, full.length - 1);
    const header = await readGgufHeader(bufferBytes(cut), 'short.gguf', cut.length);
    expect(ggufLayoutIssues(header, cut.length).map((i) => [i.kind, i.tensor.name])).toEqual([
      ['out-of-bounds', 'blk.0.ffn_up.weight'],
    ]);
  });
});

describe('HDF5', () => {
  it("reads the root group's attributes that h5py wrote", async () => {
    const file = fileIn('model.h5');
    const bytes = await readFile(file);
    const handle = {
      read: async (buf: Buffer, off: number, len: number, pos: number) => ({
        bytesRead: bytes.copy(buf, off, pos, pos + len),
      }),
    };
    const attrs = await readHdf5RootAttributes(handle, 'model.h5', bytes.length);
    expect(Object.keys(attrs).sort()).toEqual(answers.hdf5.attributes);
    expect(JSON.parse(attrs.model_config as string)).toMatchObject({ class_name: 'Sequential' });
  });

  it('lists every dataset with the shape, dtype and byte size h5py reads back, never its data', async () => {
    const bytes = await readFile(fileIn('model.h5'));
    const handle = {
      read: async (buf: Buffer, off: number, len: number, pos: number) => ({
        bytesRead: bytes.copy(buf, off, pos, pos + len),
      }),
    };
    const datasets = await readHdf5Datasets(handle, 'model.h5', bytes.length);
    const read = Object.fromEntries(datasets.map((d) => [d.name, { shape: d.shape, descr: d.descr, bytes: d.bytes }]));
    const want = Object.fromEntries(
      Object.entries(answers.hdf5.datasets).map(([name, d]) => [
        name,
        d.numeric
          ? { shape: d.shape, descr: d.descr, bytes: d.bytes }
          : { shape: d.shape, descr: undefined, bytes: undefined },
      ]),
    );
    expect(read).toEqual(want);
    // The hard link is the kernel again: listed once.
    expect(datasets.filter((d) => d.name.endsWith('kernel') || d.name.endsWith('alias'))).toHaveLength(1);
  });

  it('refuses a file cut short of its stated size', async () => {
    const bytes = (await readFile(fileIn('model.h5'))).subarray(0, 4000);
    const handle = {
      read: async (buf: Buffer, off: number, len: number, pos: number) => ({
        bytesRead: bytes.copy(buf, off, pos, pos + len),
      }),
    };
    await expect(readHdf5RootAttributes(handle, 'cut.h5', 8224)).rejects.toMatchObject({
      name: 'FormatError',
      format: 'hdf5',
      offset: 4000,
    });
  });
});

describe('TF.js', () => {
  it('sizes plain and quantized weights: stored narrow, loaded as their dtype', () => {
    const manifest = readTfjsManifest(
      {
        format: 'layers-model',
        weightsManifest: [
          {
            paths: ['group1-shard1of1.bin'],
            weights: [
              { name: 'dense/kernel', shape: [4, 3], dtype: 'float32' },
              { name: 'dense/bias', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min: 0, scale: 1 } },
              { name: 'embed', shape: [10, 2], dtype: 'float32', quantization: { dtype: 'float16' } },
              { name: 'vocab', shape: [2], dtype: 'string' },
            ],
          },
        ],
      },
      'model.json',
    );
    expect(manifest.issues).toEqual([]);
    expect(manifest.groups[0]!.paths).toEqual(['group1-shard1of1.bin']);
    expect(manifest.groups[0]!.weights.map((w) => [w.name, w.storedBytes, w.memoryBytes])).toEqual([
      ['dense/kernel', 48, 48],
      ['dense/bias', 3, 12],
      ['embed', 40, 80],
      ['vocab', 0, 0],
    ]);
  });

  it('names each bad group or weight, and refuses a manifest that is no list', () => {
    const manifest = readTfjsManifest(
      { weightsManifest: [{ paths: 'x.bin', weights: [{ dtype: 'float99', shape: [1] }] }] },
      'model.json',
    );
    expect(manifest.issues).toEqual([
      'weightsManifest[0].paths is not a list of strings',
      'weightsManifest[0].weights[0] has unknown dtype "float99"',
    ]);
    expect(() => readTfjsManifest({ weightsManifest: {} }, 'model.json')).toThrow(FormatError);
  });
});

describe('ONNX', () => {
  it('lists initializers with dtype, dims and byte size, and where external data lives', async () => {
    const bytes = onnxModel({
      ir_version: 9,
      graph: {
        name: 'g',
        node: [{ input: ['x', 'w'], output: ['y'], op_type: 'MatMul' }],
        initializer: [
          { name: 'w', dims: [4, 3], data_type: 1, raw_data: Buffer.alloc(48) },
          { name: 'b', dims: [3], data_type: 16, raw_data: Buffer.alloc(6) },
          { name: 'q', dims: [5], data_type: 22, raw_data: Buffer.alloc(3) },
          {
            name: 'ext',
            dims: [8],
            data_type: 7,
            data_location: 1,
            external_data: [{ key: 'location', value: 'w.bin' }],
          },
        ],
      },
    });
    await writeFile(fileIn('model.onnx'), bytes);
    const model = readOnnxModel(await readFile(fileIn('model.onnx')), 'model.onnx');
    expect(model.irVersion).toBe(9);
    expect(model.tensors.map((t) => [t.name, t.type, t.dims, t.bytes, t.external?.location])).toEqual([
      ['w', 'f32', [4, 3], 48, undefined],
      ['b', 'bf16', [3], 6, undefined],
      ['q', 'i4', [5], 3, undefined],
      ['ext', 'i64', [8], 64, 'w.bin'],
    ]);
    expect(model.parameters).toBe(12 + 3 + 5 + 8);
  });

  it('refuses bytes that are no ModelProto with a FormatError', () => {
    expect(() => readOnnxModel(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), 'bad.onnx')).toThrow(FormatError);
  });

  it("gives an external tensor's offset and length as written, and NaN for one that is no count", () => {
    const model = readOnnxModel(
      onnxModel({
        ir_version: 9,
        graph: {
          initializer: [
            externalTensor('a', [4], ONNX.FLOAT, 'w.bin', { offset: 64, length: 16 }),
            { ...externalTensor('b', [4], ONNX.FLOAT, 'w.bin'), external_data: [{ key: 'offset', value: '-8' }] },
          ],
        },
      }),
      'model.onnx',
    );
    expect(model.tensors.map((t) => t.external)).toEqual([
      { location: 'w.bin', offset: 64, length: 16 },
      { location: undefined, offset: NaN },
    ]);
  });

  it('tells a ModelProto from other protobufs and other bytes by its top-level fields', async () => {
    const source = (bytes: Buffer) => ({
      read: async (buf: Buffer, off: number, len: number, pos: number) => ({
        bytesRead: bytes.copy(buf, off, pos, Math.min(pos + len, bytes.length)),
      }),
    });
    const model = onnxModel({ ir_version: 9, producer_name: 'pytorch', graph: { name: 'g' } });
    // A SavedModel starts like a ModelProto (a version varint, then field 2) but has no graph (field 7).
    const savedModel = Buffer.from([0x08, 0x01, 0x12, 0x02, 0x0a, 0x00]);
    expect(await looksLikeOnnxModel(source(model), model.length)).toBe(true);
    expect(await looksLikeOnnxModel(source(savedModel), savedModel.length)).toBe(false);
    expect(await looksLikeOnnxModel(source(model.subarray(0, -1)), model.length - 1)).toBe(false);
    const noise = Buffer.alloc(4096, 0x08);
    expect(await looksLikeOnnxModel(source(noise), noise.length)).toBe(false);
  });
});
