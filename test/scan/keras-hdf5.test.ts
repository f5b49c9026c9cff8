/**
 * Keras HDF5 models: the `model_config` and `training_config` root attributes are read with an HDF5 reader and parsed
 * as JSON, so a config written with any JSON spacing or escapes is checked; an HDF5 file that cannot be read keeps
 * the gate from passing. Fixtures are written by h5py, as Keras writes them.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { SyncFile } from '../../activities/scan/reader';
import { scanHdf5 } from '../../activities/scan/keras';
import { python, scan, test } from './fixtures';

/** Writes `name` with h5py: root attributes given as Python expressions, plus one small weights dataset. */
async function h5(dir: string, name: string, attrs: Record<string, string>, weightsFirst = false): Promise<string> {
  const lines = Object.entries(attrs).map(([k, v]) => `    f.attrs[${JSON.stringify(k)}] = ${v}`);
  const weights = `    f.create_dataset("model_weights/dense/kernel", data=np.ones((${weightsFirst ? '512, 512' : '4, 2'}), dtype="f4"))`;
  await python(
    [
      'import h5py, json, numpy as np',
      LAYERS,
      `with h5py.File(${JSON.stringify(name)}, "w") as f:`,
      ...(weightsFirst ? [weights, ...lines] : [...lines, weights]),
    ].join('\n'),
    dir,
  );
  return name;
}

/** A Keras 2 style Sequential model with a Lambda layer (marshalled bytecode) and a custom layer. */
const LAYERS = `
lam = {"build_config": {}, "class_name": "Lambda", "config": {"name": "hidden", "function": ["4wEAAAAA", None, None], "function_type": "lambda"}}
custom = {"build_config": {}, "class_name": "Gate", "module": "evil_layers", "registered_name": "Custom>Gate", "config": {"name": "g"}}
dense = {"class_name": "Dense", "config": {"name": "d", "units": 2}}
model = {"build_config": {}, "class_name": "Sequential", "config": {"name": "m", "layers": [dense, lam, custom]}}
lambda_only = {"class_name": "Sequential", "config": {"name": "m", "layers": [dense, lam]}}
plain = {"class_name": "Sequential", "config": {"name": "m", "layers": [dense]}}
`;

const rules = (report: Awaited<ReturnType<typeof scan>>): string[] => report.findings.map((f) => f.ruleId).sort();

describe('Keras HDF5 model config', () => {
  test('compact JSON with sorted keys: the Lambda layer and the custom object are found', async ({ tmp }) => {
    await h5(tmp, 'm.h5', {
      model_config: 'json.dumps(model, separators=(",", ":"), sort_keys=True).encode()',
      keras_version: '"2.15.0"',
    });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.custom-object', 'keras.lambda']);
  });

  test('a space before each colon does not hide a Lambda layer', async ({ tmp }) => {
    await h5(tmp, 'm.h5', { model_config: 'json.dumps(lambda_only, separators=(", ", " : "))' });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.lambda']);
    expect(report.findings[0]?.severity).toBe('critical');
  });

  test('keys written with \\u005f escapes do not hide a Lambda layer', async ({ tmp }) => {
    await h5(tmp, 'm.h5', {
      model_config: 'json.dumps(lambda_only).replace("class_name", "class\\\\u005fname")',
    });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.lambda']);
  });

  test('pretty-printed JSON with newlines: the Lambda layer and the custom object are found', async ({ tmp }) => {
    await h5(tmp, 'm.h5', { model_config: 'json.dumps(model, indent=2)' });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.custom-object', 'keras.lambda']);
  });

  test('training_config is checked too: a custom loss needs Python code to load', async ({ tmp }) => {
    await h5(tmp, 'm.h5', {
      model_config: 'json.dumps(plain)',
      training_config:
        'json.dumps({"loss": {"module": "my_losses", "class_name": "FocalLoss", "config": {}, "registered_name": "Custom>FocalLoss"}})',
    });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.custom-object']);
    expect(report.findings[0]?.message).toContain('my_losses');
  });

  test('a model config that is not JSON keeps the gate from passing', async ({ tmp }) => {
    await h5(tmp, 'm.h5', { model_config: '"{not json"' });
    const report = await scan(tmp, ['m.h5']);
    expect(rules(report)).toEqual(['keras.invalid-config']);
    expect(report.incomplete).toBe(true);
  });

  test('a weights-only file still scans as weights and passes', async ({ tmp }) => {
    await h5(tmp, 'w.h5', { layer_names: 'np.array([b"dense"])', keras_version: '"2.15.0"' });
    const report = await scan(tmp, ['w.h5']);
    expect(rules(report)).toEqual(['hdf5.no-model-config']);
    expect(report.incomplete).toBe(false);
  });

  test('a truncated superblock gives a finding that keeps the gate from passing', async ({ tmp }) => {
    await h5(tmp, 'w.h5', { keras_version: '"2.15.0"' });
    const bytes = await readFile(join(tmp, 'w.h5'));
    await writeFile(join(tmp, 'cut.h5'), bytes.subarray(0, 40));
    const report = await scan(tmp, ['cut.h5']);
    expect(rules(report)).toEqual(['hdf5.invalid']);
    expect(report.incomplete).toBe(true);
    expect(report.findings[0]?.message).toMatch(/cut\.h5|HDF5/);
  });

  test('attributes beyond the bytes the reader may load fail closed; within them they are read', async ({ tmp }) => {
    // The weights come first, so the attributes set afterwards land after 1 MiB of data.
    await h5(tmp, 'late.h5', { model_config: 'json.dumps(lambda_only)' }, true);
    const file = join(tmp, 'late.h5');
    const size = (await readFile(file)).length;
    const read = async (window: number) => {
      const handle = SyncFile.open(file);
      try {
        return (await scanHdf5(handle, 'late.h5', size, 1 << 20, undefined, window)).map((f) => f.ruleId);
      } finally {
        handle.close();
      }
    };
    expect(await read(64 << 10)).toEqual(['hdf5.invalid']);
    expect(await read(size)).toEqual(['keras.lambda']);
  });
});
