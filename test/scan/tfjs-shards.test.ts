/**
 * TF.js weight shards are raw little-endian tensor bytes, and those can start like a pickle (0x80 0x02 is PROTO 2).
 * A shard whose size is what its model.json declares is TF.js weights unless it walks as a whole pickle; a shard of
 * any other size, or a real pickle put where a shard should be (of any size), is still caught. Findings never carry raw bytes.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect } from 'vitest';
import { gateFindings, scanVerdict } from '../../activities/scan';
import { python, scan, test } from './fixtures';

async function put(root: string, path: string, data: Buffer | string): Promise<string> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), data);
  return path;
}

/**
 * 72 bytes of float32 weights whose first bytes read as PROTO 2 and a GLOBAL whose module and name lines are binary
 * garbage (a terminal escape, 0xff, BEL, a C1 control, NUL), as a trained layer's weights can happen to.
 */
function pickleLookingShard(): Buffer {
  const shard = Buffer.from(Float32Array.from({ length: 18 }, (_, i) => Math.sin(i + 1) / 10).buffer);
  Buffer.from([0x80, 0x02, 0x63, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0x07, 0x0a, 0xc2, 0x9b, 0x00, 0xfe, 0x0a]).copy(
    shard,
  );
  return shard;
}

/** A layers model.json whose one group declares 72 bytes: a 4×4 float32 kernel and a uint8-quantized float32 bias. */
function modelJson(paths: string[], biasShape = [8]): string {
  return JSON.stringify({
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { layers: [] } },
    weightsManifest: [
      {
        paths,
        weights: [
          { name: 'dense/kernel', shape: [4, 4], dtype: 'float32' },
          {
            name: 'dense/bias',
            shape: biasShape,
            dtype: 'float32',
            quantization: { dtype: 'uint8', min: -1, scale: 0.01 },
          },
        ],
      },
    ],
  });
}

const verdictOf = (report: Awaited<ReturnType<typeof scan>>) =>
  scanVerdict(gateFindings(report.findings, [], new Date().toISOString()), 'high');

const dangerous = (report: Awaited<ReturnType<typeof scan>>, path: string) =>
  report.findings.filter((f) => f.path === path && f.ruleId === 'pickle.dangerous-global');

describe('TF.js weight shards that start like a pickle', () => {
  test('a shard of the declared size is TF.js weights: no pickle finding, the scan passes', async ({ tmp }) => {
    await put(tmp, 'model/model.json', modelJson(['group1-shard1of1.bin']));
    await put(tmp, 'model/group1-shard1of1.bin', pickleLookingShard());
    // The shard comes first: the scan must know the manifest before it reaches the shard's bytes.
    const report = await scan(tmp, ['model/group1-shard1of1.bin', 'model/model.json']);
    expect(report.files.map((f) => [f.path, f.format])).toEqual([
      ['model/group1-shard1of1.bin', 'tfjs-weights'],
      ['model/model.json', 'tfjs-model'],
    ]);
    expect(report.findings).toEqual([]);
    expect(verdictOf(report)).toBe('pass');
  });

  test('the same bytes that no model.json names still fail the scan as a pickle', async ({ tmp }) => {
    await put(tmp, 'model/model.json', modelJson(['group1-shard1of1.bin']));
    await put(tmp, 'model/group1-shard1of1.bin', pickleLookingShard());
    await put(tmp, 'model/stray.bin', pickleLookingShard());
    const report = await scan(tmp, ['model/group1-shard1of1.bin', 'model/model.json', 'model/stray.bin']);
    expect(report.files.map((f) => f.format)).toEqual(['tfjs-weights', 'tfjs-model', 'pickle']);
    expect(dangerous(report, 'model/stray.bin')).toHaveLength(1);
    expect(dangerous(report, 'model/group1-shard1of1.bin')).toEqual([]);
    expect(verdictOf(report)).toBe('fail');
  });

  test('a shard larger than declared is still walked as a pickle and fails the scan', async ({ tmp }) => {
    await put(tmp, 'model/model.json', modelJson(['group1-shard1of1.bin']));
    await put(tmp, 'model/group1-shard1of1.bin', Buffer.concat([pickleLookingShard(), Buffer.alloc(4)]));
    const report = await scan(tmp, ['model/model.json', 'model/group1-shard1of1.bin']);
    expect(report.files.map((f) => f.format)).toEqual(['tfjs-model', 'pickle']);
    expect(dangerous(report, 'model/group1-shard1of1.bin')).toEqual([
      expect.objectContaining({ severity: 'critical', message: expect.stringContaining('obfuscation') }),
    ]);
    expect(verdictOf(report)).toBe('fail');
  });

  test('a manifest that declares other shapes does not vouch for the shard', async ({ tmp }) => {
    await put(tmp, 'model/model.json', modelJson(['group1-shard1of1.bin'], [9]));
    await put(tmp, 'model/group1-shard1of1.bin', pickleLookingShard());
    const report = await scan(tmp, ['model/model.json', 'model/group1-shard1of1.bin']);
    expect(dangerous(report, 'model/group1-shard1of1.bin')).toHaveLength(1);
    expect(verdictOf(report)).toBe('fail');
  });

  test('a group split over two shards matches by their total; with one shard missing it does not', async ({ tmp }) => {
    const bytes = pickleLookingShard();
    await put(tmp, 'split/model.json', modelJson(['group1-shard1of2.bin', 'group1-shard2of2.bin']));
    await put(tmp, 'split/group1-shard1of2.bin', bytes.subarray(0, 40));
    await put(tmp, 'split/group1-shard2of2.bin', bytes.subarray(40));
    const whole = await scan(tmp, ['split/group1-shard1of2.bin', 'split/group1-shard2of2.bin', 'split/model.json']);
    expect(whole.files.map((f) => f.format)).toEqual(['tfjs-weights', 'tfjs-weights', 'tfjs-model']);
    expect(whole.findings).toEqual([]);

    const partial = await scan(tmp, ['split/group1-shard1of2.bin', 'split/model.json']);
    expect(dangerous(partial, 'split/group1-shard1of2.bin')).toHaveLength(1);
    expect(partial.findings.map((f) => f.ruleId)).toContain('tfjs.weights-missing');
  });

  test('a real pickle named as the shard, of another size than declared, is caught with its command', async ({
    tmp,
  }) => {
    await put(tmp, 'model/model.json', modelJson(['group1-shard1of1.bin']));
    await python(
      `import os, pickle
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
open('model/group1-shard1of1.bin', 'wb').write(pickle.dumps(Evil(), protocol=2))
`,
      tmp,
    );
    const report = await scan(tmp, ['model/model.json', 'model/group1-shard1of1.bin']);
    expect(dangerous(report, 'model/group1-shard1of1.bin')).toEqual([
      expect.objectContaining({
        severity: 'critical',
        message: expect.stringMatching(/imports posix\.system and calls it with "echo pwned"/),
      }),
    ]);
    expect(verdictOf(report)).toBe('fail');
  });

  test('a real pickle named as the shard, of exactly the declared size, is still caught', async ({ tmp }) => {
    await mkdir(join(tmp, 'model'), { recursive: true });
    await python(
      `import os, pickle
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
data = pickle.dumps(Evil(), protocol=2)
open('model/group1-shard1of1.bin', 'wb').write(data)
open('size', 'w').write(str(len(data)))
`,
      tmp,
    );
    const size = Number(await readFile(join(tmp, 'size'), 'utf8'));
    // A manifest that declares exactly the pickle's bytes: a bool mask of that many elements.
    await put(
      tmp,
      'model/model.json',
      JSON.stringify({
        weightsManifest: [
          { paths: ['group1-shard1of1.bin'], weights: [{ name: 'mask', shape: [size], dtype: 'bool' }] },
        ],
      }),
    );
    const report = await scan(tmp, ['model/model.json', 'model/group1-shard1of1.bin']);
    expect(dangerous(report, 'model/group1-shard1of1.bin')).toHaveLength(1);
    expect(verdictOf(report)).toBe('fail');
  });

  test('a text file listed as a shard of the declared size is still scanned as text', async ({ tmp }) => {
    const text = `aws_key: ${['AKIA', 'Z7Q4EXAMPLE0KEY9'].join('')}\n`;
    await put(tmp, 'model/notes.txt', text);
    await put(
      tmp,
      'model/model.json',
      JSON.stringify({
        weightsManifest: [{ paths: ['notes.txt'], weights: [{ name: 'mask', shape: [text.length], dtype: 'bool' }] }],
      }),
    );
    const report = await scan(tmp, ['model/model.json', 'model/notes.txt']);
    expect(report.findings.map((f) => [f.path, f.ruleId])).toEqual([['model/notes.txt', 'secrets.token']]);
  });
});

describe('findings about imports that are not identifiers', () => {
  test('quote no raw bytes: control and non-ASCII characters are escaped and the name is clipped', async ({ tmp }) => {
    const long = Buffer.from([0x80, 0x02, 0x63, ...Buffer.from(`${'\u0007x'.repeat(60)}\nname\n`), 0x2e]);
    await put(tmp, 'garbage.bin', pickleLookingShard());
    await put(tmp, 'long.pkl', long);
    const report = await scan(tmp, ['garbage.bin', 'long.pkl']);
    const messages = report.findings.filter((f) => f.ruleId === 'pickle.dangerous-global').map((f) => f.message);
    expect(messages).toHaveLength(2);
    for (const message of messages) {
      // Printable ASCII only, and the ellipsis of a clipped name.
      expect(message).toMatch(/^[\x20-\x7e…]*$/);
      expect(message).toContain('obfuscation');
    }
    expect(messages[0]).toContain('"\\x1b[31m\\ufffd\\x07"');
    expect(messages[1]).toContain(`"${'\\x07x'.repeat(20)}"….name`);
  });
});
