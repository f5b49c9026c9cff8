/**
 * The scanner and the cost footprint read weight headers through the same format readers, so they agree on every
 * tensor's byte size: a file one accepts as well-formed the other sizes, and a file whose ranges do not match its
 * shapes and dtypes is refused by both. (The two used to carry their own dtype tables: cost did not know F4/F6
 * safetensors, so a file the scan gate passed stopped the cost gate.) ONNX models and .npy arrays agree the same way.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CostError } from '../../activities/cost/errors';
import { readFootprint } from '../../activities/cost/footprint';
import { scanTargets } from '../../activities/scan/scan';
import { ggufFile } from '../scan/fixtures';
import { externalTensor, ONNX, onnxModel } from './onnx-fixture';

const PYTHON = resolve(import.meta.dirname, '../../.venv/bin/python');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-formats-agree-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** A safetensors file from {name: [dtype, shape, bytes]}, tensors packed in order, with `data` bytes of data. */
function safetensors(tensors: Record<string, [string, number[], number]>, data?: number): Buffer {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, [dtype, shape, bytes]] of Object.entries(tensors)) {
    header[name] = { dtype, shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  const h = Buffer.from(JSON.stringify(header));
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([n, h, Buffer.alloc(data ?? at, 1)]);
}

/** What each gate makes of one file: the scanner's findings and the footprint's stored bytes (or its error code). */
async function bothRead(name: string, bytes: Buffer): Promise<{ rules: string[]; stored: number | string }> {
  const file = join(dir, name);
  await writeFile(file, bytes);
  const size = (await stat(file)).size;
  const report = await scanTargets([{ path: name, file, size }]);
  const stored = await readFootprint([{ path: name, size, sha256: '0'.repeat(64) }], () => file).then(
    (f) => f.storedBytes,
    (err: unknown) => {
      if (err instanceof CostError) return err.code;
      throw err;
    },
  );
  return { rules: report.findings.map((f) => f.ruleId), stored };
}

describe('safetensors', () => {
  it('narrow dtypes (BF16, F8, packed F4 and F6): the scanner finds nothing, the footprint sizes every byte', async () => {
    const bytes = safetensors({
      a: ['BF16', [4, 2], 16],
      b: ['F8_E4M3', [8], 8],
      c: ['F8_E5M2', [3], 3],
      d: ['F4', [6], 3],
      e: ['F6_E3M2', [4], 3],
      f: ['I8', [5], 5],
    });
    expect(await bothRead('narrow.safetensors', bytes)).toEqual({ rules: [], stored: 38 });
  });

  it('a range that does not match its shape is refused by both', async () => {
    const bytes = safetensors({ a: ['F4', [6], 6] });
    expect(await bothRead('wide-f4.safetensors', bytes)).toEqual({
      rules: ['safetensors.invalid-tensor'],
      stored: 'UnreadableModel',
    });
  });

  it('a tensor past the end of the data is refused by both', async () => {
    const bytes = safetensors({ a: ['BF16', [8], 16] }, 15);
    expect(await bothRead('short.safetensors', bytes)).toEqual({
      rules: ['safetensors.out-of-bounds'],
      stored: 'UnreadableModel',
    });
  });
});

describe('GGUF', () => {
  // Q4_K: 256 elements in a 144-byte block; IQ4_NL: 32 in 18; BF16: 2 bytes each.
  it.each([
    [12, [512n, 2n], 4 * 144],
    [20, [64n, 2n], 4 * 18],
    [30, [7n, 3n], 42],
  ])(
    'ggml type %i: the scanner finds the data in bounds and the footprint stores exactly it',
    async (type, dims, dataBytes) => {
      const bytes = ggufFile({ tensor: 'blk.0.w', dims, type, dataBytes });
      expect(await bothRead(`t${type}.gguf`, bytes)).toEqual({ rules: [], stored: dataBytes });
    },
  );

  it.each([12, 20, 30])('ggml type %i one byte short: both refuse it', async (type) => {
    const sizes: Record<number, [bigint[], number]> = {
      12: [[512n, 2n], 576],
      20: [[64n, 2n], 72],
      30: [[7n, 3n], 42],
    };
    const [dims, dataBytes] = sizes[type]!;
    const bytes = ggufFile({ tensor: 'blk.0.w', dims, type, dataBytes: dataBytes - 1 });
    expect(await bothRead(`short-${type}.gguf`, bytes)).toEqual({
      rules: ['gguf.out-of-bounds'],
      stored: 'UnreadableModel',
    });
  });
});

describe('TF.js', () => {
  const modelJson = (weights: object[]): string =>
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { layers: [] } },
      weightsManifest: [{ paths: ['shard.bin'], weights }],
    });

  async function both(weights: object[], shardBytes: number): Promise<{ rules: string[]; stored: number | string }> {
    const sub = await mkdtemp(join(dir, 'tfjs-'));
    await writeFile(join(sub, 'model.json'), modelJson(weights));
    await writeFile(join(sub, 'shard.bin'), Buffer.alloc(shardBytes, 2));
    const files = [
      { path: 'model.json', size: (await stat(join(sub, 'model.json'))).size, sha256: '' },
      { path: 'shard.bin', size: shardBytes, sha256: '' },
    ];
    const report = await scanTargets(files.map((f) => ({ path: f.path, file: join(sub, f.path), size: f.size })));
    const stored = await readFootprint(files, (f) => join(sub, f.path)).then(
      (f) => f.storedBytes,
      (err: unknown) => (err instanceof CostError ? err.code : Promise.reject(err)),
    );
    return { rules: report.findings.map((f) => f.ruleId), stored };
  }

  it('a quantized manifest: the scanner takes the shard for its tensor data, the footprint sizes it', async () => {
    const weights = [
      { name: 'k', shape: [4, 3], dtype: 'float32', quantization: { dtype: 'uint8', min: 0, scale: 1 } },
      { name: 'b', shape: [3], dtype: 'float32', quantization: { dtype: 'float16' } },
    ];
    expect(await both(weights, 18)).toEqual({ rules: [], stored: 18 });
  });

  it('a weight of an unknown quantization is malformed to the scanner and unreadable to the footprint', async () => {
    const weights = [{ name: 'k', shape: [4], dtype: 'float32', quantization: { dtype: 'int3' } }];
    expect(await both(weights, 4)).toEqual({ rules: ['tfjs.invalid'], stored: 'UnreadableModel' });
  });
});

/** What each gate makes of a model of several files: the scanner's findings and the footprint's stored bytes. */
async function bothReadModel(
  files: Record<string, Buffer>,
): Promise<{ rules: string[]; stored: number | string; unread?: string[] }> {
  const sub = await mkdtemp(join(dir, 'model-'));
  const listed = [];
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(dirname(join(sub, path)), { recursive: true });
    await writeFile(join(sub, path), bytes);
    listed.push({ path, size: bytes.length, sha256: '' });
  }
  const report = await scanTargets(listed.map((f) => ({ path: f.path, file: join(sub, f.path), size: f.size })));
  const footprint = await readFootprint(listed, (f) => join(sub, f.path)).then(
    (f) => ({ stored: f.storedBytes, unread: f.unread.map((u) => u.path) }),
    (err: unknown) => (err instanceof CostError ? { stored: err.code } : Promise.reject(err)),
  );
  return { rules: report.findings.map((f) => f.ruleId), ...footprint };
}

describe('npy', () => {
  /** Arrays numpy writes, with the bytes of data numpy says each holds. */
  let arrays: Record<string, { bytes: Buffer; nbytes: number }>;
  beforeAll(async () => {
    const script = [
      'import io, json, sys, numpy as np',
      'out = {}',
      'for name, dtype, shape in [("f16", "<f2", (3, 5)), ("f32", "<f4", (4, 4)), ("i64-be", ">i8", (2, 3)),',
      '                           ("bool", "?", (7,)), ("c64", "<c8", (2,)), ("fortran", "<f8", (3, 2))]:',
      '    a = np.zeros(shape, dtype=dtype, order="F" if name == "fortran" else "C")',
      '    b = io.BytesIO(); np.save(b, a)',
      '    out[name] = {"hex": b.getvalue().hex(), "nbytes": int(a.nbytes)}',
      'json.dump(out, sys.stdout)',
    ].join('\n');
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', script]);
    const parsed = JSON.parse(stdout) as Record<string, { hex: string; nbytes: number }>;
    arrays = Object.fromEntries(
      Object.entries(parsed).map(([k, v]) => [k, { bytes: Buffer.from(v.hex, 'hex'), nbytes: v.nbytes }]),
    );
  });

  it.each(['f16', 'f32', 'i64-be', 'bool', 'c64', 'fortran'])(
    'an array numpy wrote (%s): the scanner finds nothing, the footprint stores exactly its data',
    async (name) => {
      const { bytes, nbytes } = arrays[name]!;
      expect(await bothRead(`${name}.npy`, bytes)).toEqual({ rules: [], stored: nbytes });
    },
  );

  it('an array one byte short, or with a byte after its data, is refused by both', async () => {
    const { bytes } = arrays.f32!;
    expect(await bothRead('short.npy', bytes.subarray(0, -1))).toEqual({
      rules: ['npy.size-mismatch'],
      stored: 'UnreadableModel',
    });
    expect(await bothRead('long.npy', Buffer.concat([bytes, Buffer.from([0])]))).toEqual({
      rules: ['npy.size-mismatch'],
      stored: 'UnreadableModel',
    });
  });

  it('a header numpy.load refuses is refused by both', async () => {
    const { bytes } = arrays.f32!;
    const bad = Buffer.from(bytes);
    // A duplicated key: Python keeps the last value, a pattern would find the first.
    const header = bad.toString('latin1', 10, 10 + bad.readUInt16LE(8));
    const extra = ", 'descr': '<f8'";
    // Written over the header's padding, so the header keeps its length.
    const twice = header.replace("'<f4',", `'<f4'${extra},`).replace(`${' '.repeat(extra.length)}\n`, '\n');
    expect(twice).toHaveLength(header.length);
    bad.write(twice, 10, 'latin1');
    expect(await bothRead('dup.npy', bad)).toEqual({ rules: ['npy.invalid-header'], stored: 'UnreadableModel' });
  });
});

describe('ONNX', () => {
  const model = (initializer: object[], node: object[] = []): Buffer =>
    onnxModel({
      ir_version: 9,
      producer_name: 'pytorch',
      opset_import: [{ version: 17 }],
      graph: { name: 'g', node, initializer },
    });

  it('inline initializers and node constants in narrow dtypes: the scanner finds nothing, the footprint sizes each', async () => {
    const bytes = model(
      [
        { name: 'w', dims: [4, 3], data_type: ONNX.FLOAT, raw_data: Buffer.alloc(48) },
        { name: 'b', dims: [3], data_type: ONNX.BFLOAT16, raw_data: Buffer.alloc(6) },
        { name: 'q', dims: [5], data_type: ONNX.INT4, raw_data: Buffer.alloc(3) },
        { name: 'labels', dims: [2], data_type: ONNX.STRING },
      ],
      [
        {
          output: ['c'],
          op_type: 'Constant',
          attribute: [
            { name: 'value', type: 4, t: { dims: [10], data_type: ONNX.FLOAT16, raw_data: Buffer.alloc(20) } },
          ],
        },
      ],
    );
    expect(await bothReadModel({ 'model.onnx': bytes })).toEqual({ rules: [], stored: 48 + 6 + 3 + 20, unread: [] });
  });

  it('external data in the model directory: the scanner takes it for tensor data, the footprint sizes it once', async () => {
    const data = Buffer.alloc(2 << 20, 7);
    const bytes = model([
      externalTensor('w', [1024, 256], ONNX.FLOAT, 'weights/w.bin', { offset: 0, length: 1 << 20 }),
      externalTensor('e', [512, 1024], ONNX.FLOAT16, 'weights/w.bin', { offset: 1 << 20 }),
    ]);
    expect(await bothReadModel({ 'onnx/model.onnx': bytes, 'onnx/weights/w.bin': data })).toEqual({
      rules: [],
      stored: 2 << 20,
      unread: [],
    });
  });

  it.each([
    ['../../outside.bin', 'onnx.external-data-escape'],
    ['/etc/passwd', 'onnx.external-data-escape'],
    ['missing.bin', 'onnx.external-data-missing'],
  ])('external data at %s is reported by the scanner and refused by the footprint', async (location, rule) => {
    const bytes = model([externalTensor('w', [4], ONNX.FLOAT, location)]);
    expect(await bothReadModel({ 'onnx/model.onnx': bytes })).toEqual({ rules: [rule], stored: 'UnreadableModel' });
  });
});
