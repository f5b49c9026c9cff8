/**
 * Parser fuzzing drill, the other gates' readers (issue 14): the cost gate's footprint reader (safetensors and GGUF
 * headers), the evaluation dataset reader (CSV) and the YAML readers (config/ files, `mrel start` request files), fed
 * mutated copies of the committed seeds (test/drills/corpus/<format>/).
 *
 * Budget: RUNS_PER_FORMAT (240) deterministic inputs per reader; with fuzz-scan.test.ts the drill takes about 15 s
 * (budget: 90 s) on a 2-core machine (`time npx vitest run test/drills/fuzz`).
 *
 * What must hold: each reader answers in time and either returns or throws its own typed error (CostError,
 * EvaluationError, ConfigError, ReleaseClientError), which its gate or command turns into a verdict or an exit code.
 * Anything else (a TypeError, a RangeError) escapes the gate as a crash that Temporal retries forever.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readRequestFile } from '../../client/cli';
import { ReleaseClientError } from '../../client/errors';
import { ConfigError, loadApprovers, loadPolicy } from '../../config/loader';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import { CostError } from '../../activities/cost/errors';
import { readFootprint } from '../../activities/cost/footprint';
import { readDataset } from '../../activities/evaluate/dataset';
import { EvaluationError } from '../../activities/evaluate/errors';
import { HANG_MS, keepFailure, mutate, prng, RSS_BOUND, RUNS_PER_FORMAT, seeds, withinTime } from './fuzz-kit';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mrel-fuzz-readers-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/**
 * Runs `read` over mutated seeds of `formats`; returns the inputs on which it hung or threw something other than
 * its typed error (`expected`), or returned something `check` rejects.
 */
async function fuzz(
  label: string,
  formats: string[],
  seed: number,
  read: (file: string, name: string, bytes: Buffer) => Promise<unknown>,
  expected: (err: unknown) => boolean,
  check: (result: unknown, bytes: Buffer) => string | undefined = () => undefined,
): Promise<string[]> {
  const dir = await mkdtemp(join(tmp, `${label}-`));
  const corpus = formats.flatMap((f) => seeds(f));
  const random = prng(seed);
  const problems: string[] = [];
  for (let run = 0; run < RUNS_PER_FORMAT; run++) {
    const s = corpus[run % corpus.length]!;
    const { bytes, how } = mutate(s.bytes, random);
    const file = join(dir, s.name);
    await writeFile(file, bytes);
    try {
      const result = await withinTime(read(file, s.name, bytes), HANG_MS, `${label} of ${s.name}`);
      const bad = check(result, bytes);
      if (bad) problems.push(`${keepFailure(label, s.name, run, how, bytes)}: ${bad}`);
    } catch (err) {
      if (!expected(err))
        problems.push(
          `${keepFailure(label, s.name, run, how, bytes)}: ${(err as Error).name}: ${(err as Error).message}`,
        );
    }
  }
  expect(process.memoryUsage().rss).toBeLessThan(RSS_BOUND);
  return problems;
}

describe('cost gate footprint reader under mutated weight headers', () => {
  test(`safetensors and GGUF: ${RUNS_PER_FORMAT} inputs give a sane footprint or an UnreadableModel CostError`, async () => {
    const problems = await fuzz(
      'footprint',
      ['safetensors', 'gguf'],
      0x5eed11,
      (file, name, bytes) => readFootprint([{ path: name, size: bytes.length, sha256: '0'.repeat(64) }], () => file),
      (err) => err instanceof CostError && err.code === 'UnreadableModel',
      (result, bytes) => {
        const f = result as { parameters: number; storedBytes: number };
        if (!Number.isFinite(f.parameters) || f.parameters < 0) return `parameters ${f.parameters}`;
        if (!(f.storedBytes >= 0 && f.storedBytes <= bytes.length)) return `stored bytes ${f.storedBytes}`;
        return undefined;
      },
    );
    expect(problems).toEqual([]);
  });
});

describe('cost gate footprint reader under hostile headers', () => {
  test('null tensor entries and huge declared lengths end in an UnreadableModel CostError', async () => {
    const dir = await mkdtemp(join(tmp, 'footprint-cases-'));
    const safetensors = (header: string, declared?: bigint): Buffer => {
      const h = Buffer.from(header);
      const n = Buffer.alloc(8);
      n.writeBigUInt64LE(declared ?? BigInt(h.length));
      return Buffer.concat([n, h, Buffer.alloc(16)]);
    };
    const cases: { name: string; bytes: Buffer }[] = [
      { name: 'null.safetensors', bytes: safetensors('{"a":null}') },
      { name: 'number.safetensors', bytes: safetensors('{"a":7}') },
      {
        name: 'huge-shape.safetensors',
        bytes: safetensors(`{"a":{"dtype":"F32","shape":[${2 ** 53 - 1}],"data_offsets":[0,4]}}`),
      },
      {
        name: 'model.json',
        bytes: Buffer.from('{"format":"layers-model","weightsManifest":[{"paths":[],"weights":[null]}]}'),
      },
      {
        name: 'model.json',
        bytes: Buffer.from(
          '{"weightsManifest":[{"paths":[],"weights":[{"dtype":"float32","shape":[1],"quantization":null}]}]}',
        ),
      },
    ];
    const problems: string[] = [];
    for (const c of cases) {
      const file = join(dir, c.name);
      await writeFile(file, c.bytes);
      const err = await readFootprint(
        [{ path: c.name, size: c.bytes.length, sha256: '0'.repeat(64) }],
        () => file,
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(err instanceof CostError)) problems.push(`${c.name} ${c.bytes.subarray(0, 80).toString()}: ${String(err)}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('evaluation dataset reader under mutated CSV', () => {
  test(`${RUNS_PER_FORMAT} inputs read to the end or stop with an EvaluationError`, async () => {
    const problems = await fuzz(
      'dataset',
      ['csv'],
      0x5eed12,
      async (file, name) => {
        const columns = name.startsWith('quoted') ? ['age', 'label'] : ['age', 'group', 'label'];
        const reader = readDataset(file, columns, { format: 'csv', batchRows: 16 });
        let rows = 0;
        for await (const batch of reader.batches) rows += batch.rows.length;
        return { rows, info: reader.info() };
      },
      (err) => err instanceof EvaluationError,
    );
    expect(problems).toEqual([]);
  });
});

describe('YAML readers under mutated config and request files', () => {
  test(`config/ files: ${RUNS_PER_FORMAT} inputs load or stop with a ConfigError`, async () => {
    const base = join(tmp, 'config');
    await mkdir(join(base, 'policies'), { recursive: true });
    const corpus = join(import.meta.dirname, 'corpus', 'yaml');
    const problems = await fuzz(
      'config',
      ['yaml'],
      0x5eed13,
      async (file, name) => {
        // Each input stands in for the file it was made from; the other stays the committed seed.
        await copyFile(join(corpus, 'approvers.yaml'), join(base, 'approvers.yaml'));
        await copyFile(join(corpus, 'policy-default.yaml'), join(base, 'policies', 'default.yaml'));
        if (name === 'approvers.yaml') await copyFile(file, join(base, 'approvers.yaml'));
        else if (name === 'policy-default.yaml') await copyFile(file, join(base, 'policies', 'default.yaml'));
        else return readRequestFile(file);
        return loadPolicy('default', await loadApprovers(base), GATE_POLICY_SECTIONS, base);
      },
      (err) => err instanceof ConfigError || err instanceof ReleaseClientError,
    );
    expect(problems).toEqual([]);
  });

  test('an alias bomb (billion laughs) is refused as invalid, not expanded', async () => {
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const next = String.fromCharCode(97 + i);
      laughs.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const base = join(tmp, 'bomb');
    await mkdir(join(base, 'policies'), { recursive: true });
    await writeFile(join(base, 'approvers.yaml'), `${laughs.join('\n')}\n`);
    await writeFile(join(base, 'request.yaml'), `${laughs.join('\n')}\n`);
    await expect(withinTime(loadApprovers(base), HANG_MS, 'approvers')).rejects.toBeInstanceOf(ConfigError);
    await expect(withinTime(readRequestFile(join(base, 'request.yaml')), HANG_MS, 'request')).rejects.toBeInstanceOf(
      ReleaseClientError,
    );
  });
});
