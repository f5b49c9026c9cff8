/** The footprint read from weight headers, checked against what the reference libraries read back. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { CostError } from '../../activities/cost/errors';
import { readFootprint } from '../../activities/cost/footprint';
import type { ArtifactFile } from '../../contract/types';
import { PYTHON, referenceWeights, test, tfjsModel } from './fixtures';
import { stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Runs a few lines of Python in the project's venv (numpy, h5py) and returns what they print as JSON. */
async function python<T>(lines: string[], ...args: string[]): Promise<T> {
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', lines.join('\n'), ...args]);
  return JSON.parse(stdout) as T;
}

async function filesOf(dir: string, paths: string[]): Promise<ArtifactFile[]> {
  return Promise.all(paths.map(async (path) => ({ path, size: (await stat(join(dir, path))).size, sha256: '' })));
}

const inDir = (dir: string) => (f: ArtifactFile) => join(dir, f.path);

describe('readFootprint', () => {
  test('safetensors: parameters and bytes per dtype as the safetensors library reads them', async ({ tmp }) => {
    const expected = await referenceWeights('safetensors', join(tmp, 'model.safetensors'));
    const footprint = await readFootprint(await filesOf(tmp, ['model.safetensors']), inDir(tmp));
    expect(footprint.parameters).toBe(expected.parameters);
    expect(footprint.storedBytes).toBe(expected.bytes);
    expect(footprint.memoryBytes).toBe(expected.bytes);
    expect(footprint.byDtype).toEqual(expected.byDtype);
    expect(footprint.formats).toEqual(['safetensors']);
  });

  test('GGUF: quantized block sizes and the KV cache shape as the gguf library reads them', async ({ tmp }) => {
    const expected = await referenceWeights('gguf', join(tmp, 'model.gguf'));
    const footprint = await readFootprint(await filesOf(tmp, ['model.gguf']), inDir(tmp));
    expect(footprint.parameters).toBe(expected.parameters);
    expect(footprint.storedBytes).toBe(expected.bytes);
    expect(footprint.byDtype).toEqual(expected.byDtype);
    // 2 layers × 2 KV heads × (64 / 4) wide × keys and values × 2 bytes (f16).
    expect(footprint.llm).toEqual({
      architecture: 'llama',
      contextLength: 512,
      kvCacheBytesPerToken: 2 * 2 * 2 * 16 * 2,
    });
  });

  test('tfjs: quantized weights count stored bytes on disk and float32 bytes once loaded', async ({ tmp }) => {
    await tfjsModel(tmp);
    const footprint = await readFootprint(await filesOf(tmp, ['group1-shard1of1.bin', 'model.json']), inDir(tmp));
    expect(footprint.parameters).toBe(5050);
    expect(footprint.storedBytes).toBe(5000 + 200);
    expect(footprint.memoryBytes).toBe(5050 * 4);
    expect(footprint.byDtype).toEqual({
      'float32<-uint8': { parameters: 5000, bytes: 5000 },
      float32: { parameters: 50, bytes: 200 },
    });
    // The shard is covered by the manifest, not reported as an unknown file.
    expect(footprint.unread).toEqual([]);
  });

  test('sizes come from headers, not names: a renamed safetensors file reads the same', async ({ tmp }) => {
    const expected = await referenceWeights('safetensors', join(tmp, 'weights.bin'));
    const footprint = await readFootprint(await filesOf(tmp, ['weights.bin']), inDir(tmp));
    expect(footprint.parameters).toBe(expected.parameters);
  });

  test('npy: a numeric array counts its elements and data bytes as numpy reads them', async ({ tmp }) => {
    const expected = await python<{ parameters: number; bytes: number }>(
      [
        'import json, sys, numpy as np',
        'a = np.ones((300, 700), dtype="<f2")',
        'np.save(sys.argv[1], a)',
        'print(json.dumps({"parameters": int(np.load(sys.argv[1]).size), "bytes": int(np.load(sys.argv[1]).nbytes)}))',
      ],
      join(tmp, 'embeddings.npy'),
    );
    const footprint = await readFootprint(await filesOf(tmp, ['embeddings.npy']), inDir(tmp));
    expect(footprint).toMatchObject({
      parameters: expected.parameters,
      storedBytes: expected.bytes,
      memoryBytes: expected.bytes,
      byDtype: { f16: { parameters: expected.parameters, bytes: expected.bytes } },
      formats: ['npy'],
      unread: [],
    });
  });

  test('npy: an object array is a pickle, not weights, and counts at its size', async ({ tmp }) => {
    await referenceWeights('safetensors', join(tmp, 'model.safetensors'));
    await python(
      [
        'import json, sys, numpy as np',
        'np.save(sys.argv[1], np.array([b"x" * (2 << 20), 1], dtype=object), allow_pickle=True)',
        'print("{}")',
      ],
      join(tmp, 'objects.npy'),
    );
    const files = await filesOf(tmp, ['model.safetensors', 'objects.npy']);
    const footprint = await readFootprint(files, inDir(tmp));
    expect(footprint.formats).toEqual(['safetensors']);
    expect(footprint.unread).toEqual([{ path: 'objects.npy', size: files[1]!.size }]);
  });

  test('HDF5 (Keras .h5): the model weights as h5py reads them, without the optimizer state', async ({ tmp }) => {
    const expected = await python<{ parameters: number; bytes: number; byDtype: Record<string, object> }>(
      [
        'import json, sys, numpy as np, h5py',
        'with h5py.File(sys.argv[1], "w") as f:',
        '    f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})',
        '    f.create_dataset("model_weights/dense/dense/kernel:0", data=np.ones((64, 32), dtype="<f4"))',
        '    f.create_dataset("model_weights/dense/dense/bias:0", data=np.ones((32,), dtype="<f4"))',
        '    f.create_dataset("model_weights/embed/embed/embeddings:0", data=np.ones((100, 16), dtype="<f2"))',
        '    f.create_dataset("optimizer_weights/Adam/iter:0", data=np.zeros((), dtype="<i8"))',
        '    f.create_dataset("optimizer_weights/Adam/dense/kernel/m:0", data=np.ones((64, 32), dtype="<f4"))',
        'with h5py.File(sys.argv[1], "r") as f:',
        '    ds = []',
        '    f["model_weights"].visititems(lambda n, o: ds.append(o) if isinstance(o, h5py.Dataset) else None)',
        '    by = {}',
        '    for d in ds:',
        '        k = {"float32": "f32", "float16": "f16"}[d.dtype.name]',
        '        e = by.setdefault(k, {"parameters": 0, "bytes": 0})',
        '        e["parameters"] += int(d.size); e["bytes"] += int(d.size * d.dtype.itemsize)',
        '    print(json.dumps({"parameters": sum(int(d.size) for d in ds),',
        '                      "bytes": sum(int(d.size * d.dtype.itemsize) for d in ds), "byDtype": by}))',
      ],
      join(tmp, 'model.h5'),
    );
    const footprint = await readFootprint(await filesOf(tmp, ['model.h5']), inDir(tmp));
    expect(footprint).toMatchObject({
      parameters: expected.parameters,
      storedBytes: expected.bytes,
      memoryBytes: expected.bytes,
      byDtype: expected.byDtype,
      formats: ['hdf5'],
    });
  });

  test('.keras (a Keras v3 archive): the weights file inside it, without the optimizer state', async ({ tmp }) => {
    const expected = await python<{ parameters: number; bytes: number }>(
      [
        'import io, json, sys, zipfile, numpy as np, h5py',
        'buf = io.BytesIO()',
        'with h5py.File(buf, "w") as f:',
        '    f.create_dataset("layers/dense/vars/0", data=np.ones((128, 64), dtype="<f4"))',
        '    f.create_dataset("layers/dense/vars/1", data=np.ones((64,), dtype="<f4"))',
        '    f.create_dataset("optimizer/vars/0", data=np.zeros((), dtype="<i8"))',
        '    f.create_dataset("optimizer/vars/1", data=np.ones((128, 64), dtype="<f4"))',
        'with zipfile.ZipFile(sys.argv[1], "w", compression=zipfile.ZIP_DEFLATED) as z:',
        '    z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))',
        '    z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))',
        '    z.writestr("model.weights.h5", buf.getvalue())',
        'print(json.dumps({"parameters": 128 * 64 + 64, "bytes": (128 * 64 + 64) * 4}))',
      ],
      join(tmp, 'model.keras'),
    );
    const footprint = await readFootprint(await filesOf(tmp, ['model.keras']), inDir(tmp));
    expect(footprint).toMatchObject({
      parameters: expected.parameters,
      storedBytes: expected.bytes,
      byDtype: { f32: { parameters: expected.parameters, bytes: expected.bytes } },
      formats: ['hdf5'],
      unread: [],
    });
  });

  test('large files no reader knows count at their size toward memory and are listed', async ({ tmp }) => {
    await referenceWeights('safetensors', join(tmp, 'model.safetensors'));
    await writeFile(join(tmp, 'extra.pt'), Buffer.alloc(2 * 1024 * 1024, 1));
    await writeFile(join(tmp, 'config.json'), '{"hidden": 64}');
    const footprint = await readFootprint(
      await filesOf(tmp, ['config.json', 'extra.pt', 'model.safetensors']),
      inDir(tmp),
    );
    expect(footprint.unread).toEqual([{ path: 'extra.pt', size: 2 * 1024 * 1024 }]);
    expect(footprint.memoryBytes).toBe(footprint.storedBytes + 2 * 1024 * 1024);
  });

  test('a model without any readable weights is an UnreadableModel error naming its files', async ({ tmp }) => {
    await writeFile(join(tmp, 'pytorch_model.bin'), Buffer.alloc(4096, 7));
    const err = await readFootprint(await filesOf(tmp, ['pytorch_model.bin']), inDir(tmp)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CostError);
    expect(err).toMatchObject({ code: 'UnreadableModel', message: expect.stringContaining('pytorch_model.bin') });
  });

  test('a corrupt safetensors header is an UnreadableModel error naming the file and tensor', async ({ tmp }) => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [10, 10], data_offsets: [0, 100] } });
    const buf = Buffer.alloc(8 + header.length + 400);
    buf.writeBigUInt64LE(BigInt(header.length), 0);
    buf.write(header, 8);
    await writeFile(join(tmp, 'bad.safetensors'), buf);
    await expect(readFootprint(await filesOf(tmp, ['bad.safetensors']), inDir(tmp))).rejects.toThrow(
      /bad\.safetensors: tensor "w" spans 100 bytes but F32\[10,10\] needs 400/,
    );
  });

  test('a truncated GGUF is an UnreadableModel error', async ({ tmp }) => {
    await referenceWeights('gguf', join(tmp, 'full.gguf'));
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(join(tmp, 'full.gguf'));
    await writeFile(join(tmp, 'cut.gguf'), bytes.subarray(0, 200));
    await expect(readFootprint(await filesOf(tmp, ['cut.gguf']), inDir(tmp))).rejects.toThrow(
      /cut\.gguf: GGUF header is truncated/,
    );
  });

  test('a tfjs manifest naming a missing shard is an error', async ({ tmp }) => {
    await tfjsModel(tmp);
    await expect(readFootprint(await filesOf(tmp, ['model.json']), inDir(tmp))).rejects.toThrow(
      /names shard "group1-shard1of1.bin", which is not among the model's files/,
    );
  });
});
