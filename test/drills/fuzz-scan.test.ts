/**
 * Parser fuzzing drill, scan gate (issue 14): every model-file parser the scan gate runs, fed mutated copies of the
 * committed seeds (test/drills/corpus/<format>/) and hand-built inputs whose length fields declare huge sizes.
 *
 * Budget: RUNS_PER_FORMAT (240) mutated inputs per format, deterministic (seeded PRNG; a failure names its seed and
 * run and keeps the input), plus the structure-aware cases. Both drill files together take about 15 s of a 90 s
 * budget on a 2-core machine (`time npx vitest run test/drills/fuzz`); keep any addition inside that budget.
 *
 * What must hold for each input: `scanTargets` (what the gate activity and `mrel scan` call) answers, and in time;
 * no parser crashes into a read error; the process stays under the memory bound; and fail closed — an input the
 * scanner reports clean (no finding at all) must be one that the format's reference reader accepts too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { scanTargets, type FileReport } from '../../activities/scan';
import { parseScanPolicy } from '../../activities/scan/policy';
import {
  GROWTH_BOUND,
  HANG_MS,
  keepFailure,
  mutate,
  peakRss,
  prng,
  referenceCheck,
  RSS_BOUND,
  RUNS_PER_FORMAT,
  seeds,
  withinTime,
} from './fuzz-kit';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mrel-fuzz-scan-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function scanBytes(dir: string, name: string, bytes: Buffer, policy?: unknown): Promise<FileReport> {
  const file = join(dir, name);
  await writeFile(file, bytes);
  const report = await withinTime(
    scanTargets([{ path: name, file, size: bytes.length }], policy ? { policy: parseScanPolicy(policy) } : {}),
    HANG_MS,
    `scan of ${name}`,
  );
  expect(report.files).toHaveLength(1);
  return report.files[0] as FileReport;
}

/** Seeds whose clean outcome no reference reader can confirm (joblib's inline array bytes are not pickle opcodes). */
const NO_REFERENCE = /joblib|\.h5$/;

/** Formats of text files: a mutated binary seed that reads as text is checked the other way round. */
const TEXTUAL = new Set(['text', 'json', 'python']);

const FORMATS: { format: string; seed: number; reference: string | null }[] = [
  { format: 'pickle', seed: 0x5eed01, reference: 'pickle' },
  { format: 'safetensors', seed: 0x5eed02, reference: 'safetensors' },
  { format: 'gguf', seed: 0x5eed03, reference: 'gguf' },
  { format: 'npy', seed: 0x5eed04, reference: 'npy' },
  { format: 'zip', seed: 0x5eed05, reference: 'zip' },
  { format: 'tar', seed: 0x5eed06, reference: 'tar' },
  // HDF5 is read (with jsfive) for its Keras config only, and a file it cannot read is a finding: no second reader
  // is compared here.
  { format: 'hdf5', seed: 0x5eed07, reference: null },
];

describe('scan gate parsers under mutated inputs', () => {
  for (const { format, seed, reference } of FORMATS) {
    test(`${format}: ${RUNS_PER_FORMAT} mutated seeds answer in time, never crash, and fail closed`, async () => {
      const dir = await mkdtemp(join(tmp, `${format}-`));
      const corpus = seeds(format);
      const random = prng(seed);
      const problems: string[] = [];
      const clean: { file: string; format: string; describe: () => string }[] = [];
      let maxRss = 0;
      for (let run = 0; run < RUNS_PER_FORMAT; run++) {
        const s = corpus[run % corpus.length]!;
        const { bytes, how } = mutate(s.bytes, random);
        const name = `${run}-${s.name}`;
        const failure = () => keepFailure(format, s.name, run, how, bytes);
        let report: FileReport;
        try {
          report = await scanBytes(dir, name, bytes);
        } catch (err) {
          problems.push(`${failure()}: ${(err as Error).message}`);
          continue;
        }
        const crash = report.findings.find((f) => f.ruleId === 'scan.read-error');
        if (crash) problems.push(`${failure()}: parser crashed: ${crash.message}`);
        // An empty file holds no code: loaders refuse it, and the scanner reports it as empty.
        if (report.findings.length === 0 && reference && report.format !== 'empty' && !NO_REFERENCE.test(s.name))
          clean.push({ file: join(dir, name), format: report.format, describe: failure });
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
      }
      const verdicts = reference
        ? await referenceCheck(
            reference,
            clean.map((c) => c.file),
          )
        : {};
      for (const c of clean) {
        const why = verdicts[c.file];
        if (TEXTUAL.has(c.format)) {
          // Scanned as text: wrong only if pickle would load it (code disguised as text).
          if (format === 'pickle' && why === null)
            problems.push(`${c.describe()}: scanned as ${c.format}, but it loads as a pickle`);
        } else if (why)
          problems.push(`${c.describe()}: reported clean as ${c.format}, but the reference reader rejects it (${why})`);
      }
      expect(problems).toEqual([]);
      expect(maxRss).toBeLessThan(RSS_BOUND);
      await rm(dir, { recursive: true, force: true });
    });
  }

  test('every seed scans without an incomplete finding, and the hostile one is caught', async () => {
    const dir = await mkdtemp(join(tmp, 'seeds-'));
    for (const { format } of FORMATS) {
      for (const s of seeds(format)) {
        if (s.name.startsWith('regression-')) continue;
        const report = await scanBytes(dir, s.name, s.bytes);
        const incomplete = report.findings.filter((f) =>
          ['scan.read-error', 'format.unknown', 'pickle.parse-error', 'archive.invalid'].includes(f.ruleId),
        );
        expect(incomplete, `${format}/${s.name}`).toEqual([]);
      }
    }
    const evil = seeds('pickle').find((s) => s.name === 'reduce-os-system.pkl')!;
    const report = await scanBytes(dir, evil.name, evil.bytes);
    expect(report.findings.map((f) => f.ruleId)).toContain('pickle.dangerous-global');
  });
});

/** Inputs that once came out clean (fail open), kept in the corpus with the finding each must now produce. */
const REGRESSIONS: Record<string, string> = {
  'pickle/regression-empty-tuple-disguise.pkl': 'pickle.dangerous-global',
  'pickle/regression-short-binbytes-disguise.pkl': 'pickle.dangerous-global',
  'pickle/regression-binary-after-global.pkl': 'pickle.parse-error',
  'npy/regression-duplicate-descr.npy': 'npy.invalid-header',
  'npy/regression-nul-in-descr.npy': 'npy.invalid-header',
  'zip/regression-local-name-differs.pt': 'archive.invalid',
};

test('regression seeds keep the findings that their fixes gave them', async () => {
  const dir = await mkdtemp(join(tmp, 'regressions-'));
  for (const [path, rule] of Object.entries(REGRESSIONS)) {
    const [format, name] = path.split('/') as [string, string];
    const seed = seeds(format).find((s) => s.name === name);
    expect(seed, path).toBeDefined();
    const report = await scanBytes(dir, name, seed!.bytes);
    expect(
      report.findings.map((f) => f.ruleId),
      path,
    ).toContain(rule);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Structure-aware cases: length, count and offset fields that declare sizes far beyond the file.

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const ggufString = (s: string): Buffer => Buffer.concat([u64(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);
const gguf = (tensors: bigint, kvs: bigint, body: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([Buffer.from('GGUF'), u32(3), u64(tensors), u64(kvs), body, Buffer.alloc(64)]);
const npy = (header: string, data = Buffer.alloc(16)): Buffer => {
  const text = `${header}`.padEnd(118, ' ') + '\n';
  return Buffer.concat([
    Buffer.from('\x93NUMPY\x01\x00', 'latin1'),
    Buffer.from([text.length, 0]),
    Buffer.from(text),
    data,
  ]);
};
const pickle = (...parts: (string | Buffer)[]): Buffer =>
  Buffer.concat([Buffer.from([0x80, 4]), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p))]);

function zipWith(seed: string, edit: (zip: Buffer, cd: number, eocd: number) => void): Buffer {
  const zip = Buffer.from(seeds('zip').find((s) => s.name === seed)!.bytes);
  const eocd = zip.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
  const cd = zip.readUInt32LE(eocd + 16);
  edit(zip, cd, eocd);
  return zip;
}

function tarWithSize(field: Buffer): Buffer {
  const tar = Buffer.from(seeds('tar').find((s) => s.name === 'legacy-torch.tar')!.bytes);
  field.copy(tar, 124);
  // The header checksum covers the size field: recompute it so that only the size is hostile.
  Buffer.from('        ').copy(tar, 148);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += tar[i] as number;
  Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `).copy(tar, 148);
  return tar;
}

const STRUCTURE_CASES: { name: string; bytes: () => Buffer; rules: string[]; policy?: unknown }[] = [
  {
    name: 'safetensors header length 2^53',
    bytes: () => Buffer.concat([u64(1n << 53n), Buffer.from('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')]),
    rules: ['format.unknown'],
  },
  {
    name: 'safetensors header length just under the detection bound (2^40 - 1)',
    bytes: () => Buffer.concat([u64((1n << 40n) - 1n), Buffer.from('{"a":{}}')]),
    rules: ['safetensors.invalid-header'],
  },
  {
    name: 'safetensors tensor of shape [2^53, 2^53] at offsets [0, 2^53]',
    bytes: () => {
      const h = Buffer.from(
        `{"a":{"dtype":"F32","shape":[${2 ** 53 - 1},${2 ** 53 - 1}],"data_offsets":[0,${2 ** 53 - 1}]}}`,
      );
      return Buffer.concat([u64(BigInt(h.length)), h, Buffer.alloc(8)]);
    },
    rules: ['safetensors.invalid-tensor', 'safetensors.out-of-bounds'],
  },
  { name: 'GGUF tensor count 2^63', bytes: () => gguf(1n << 63n, 0n), rules: ['gguf.invalid-header'] },
  { name: 'GGUF metadata count 2^63', bytes: () => gguf(0n, 1n << 63n), rules: ['gguf.invalid-header'] },
  {
    name: 'GGUF metadata key of 2^63 bytes',
    bytes: () => gguf(0n, 1n, Buffer.concat([u64(1n << 63n), Buffer.from('key')])),
    rules: ['gguf.invalid-header'],
  },
  {
    name: 'GGUF array of 2^63 elements',
    bytes: () => gguf(0n, 1n, Buffer.concat([ggufString('a'), u32(9), u32(0), u64(1n << 63n)])),
    rules: ['gguf.invalid-header'],
  },
  {
    name: 'GGUF array of 2^24 nested arrays',
    bytes: () => gguf(0n, 1n, Buffer.concat([ggufString('a'), u32(9), u32(9), u64(1n << 24n)])),
    rules: ['gguf.invalid-header'],
  },
  {
    name: 'GGUF tensor with four dimensions of 2^63',
    bytes: () =>
      gguf(
        1n,
        0n,
        Buffer.concat([ggufString('t'), u32(4), ...Array.from({ length: 4 }, () => u64(1n << 63n)), u32(0), u64(0n)]),
      ),
    rules: ['gguf.out-of-bounds'],
  },
  {
    name: 'npy shape (10**12,)',
    bytes: () => npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"),
    rules: ['npy.size-mismatch'],
  },
  {
    name: 'npy shape of 10**30 per dimension',
    bytes: () => npy(`{'descr': '<f8', 'fortran_order': False, 'shape': (${'9'.repeat(30)}, ${'9'.repeat(30)}), }`),
    rules: ['npy.size-mismatch'],
  },
  {
    name: 'npy v2 header length 2^32 - 1',
    bytes: () => Buffer.concat([Buffer.from('\x93NUMPY\x02\x00', 'latin1'), u32(0xffffffff), Buffer.alloc(64)]),
    rules: ['npy.invalid-header'],
  },
  {
    name: 'pickle LONG4 of 2^31 - 1 bytes',
    bytes: () => pickle(Buffer.from([0x8b]), u32(0x7fffffff), '.'),
    rules: ['pickle.parse-error'],
  },
  {
    name: 'pickle BINBYTES8 of 2^63 bytes',
    bytes: () => pickle(Buffer.from([0x8e]), u64(1n << 63n), '.'),
    rules: ['pickle.parse-error'],
  },
  {
    name: 'pickle BINUNICODE8 of 2^64 - 1 bytes',
    bytes: () => pickle(Buffer.from([0x8d]), u64(0xffffffffffffffffn), 'abc.'),
    rules: ['pickle.parse-error'],
  },
  {
    name: 'pickle BINBYTES of 2^32 - 1 bytes',
    bytes: () => pickle(Buffer.from([0x42]), u32(0xffffffff), '.'),
    rules: ['pickle.parse-error'],
  },
  {
    name: 'pickle memo index 2^32 - 1',
    bytes: () => pickle('N', Buffer.from([0x72]), u32(0xffffffff), Buffer.from([0x6a]), u32(0xffffffff), '.'),
    rules: [],
  },
  {
    name: 'pickle of 2^21 MARKs against the default 10^6 stack limit',
    bytes: () => pickle(Buffer.alloc(1 << 21, '('), '.'),
    rules: ['pickle.limit'],
  },
  {
    name: 'zip central directory declaring 65535 entries',
    bytes: () =>
      zipWith(
        'torch-layout.pt',
        (z, _cd, eocd) => (z.writeUInt16LE(0xffff, eocd + 8), z.writeUInt16LE(0xffff, eocd + 10)),
      ),
    rules: ['archive.invalid'],
  },
  {
    name: 'zip entry declaring 2^32 - 1 uncompressed bytes (declared bomb)',
    bytes: () => zipWith('compressed.npz', (z, cd) => z.writeUInt32LE(0xffffffff, cd + 24)),
    rules: ['archive.compression-ratio'],
  },
  {
    name: 'zip entry declaring 2^32 - 1 compressed bytes',
    bytes: () => zipWith('torch-layout.pt', (z, cd) => z.writeUInt32LE(0xffffffff, cd + 20)),
    rules: ['archive.invalid'],
  },
  {
    name: 'zip central directory at offset 2^32 - 1',
    bytes: () => zipWith('torch-layout.pt', (z, _cd, eocd) => z.writeUInt32LE(0xffffffff, eocd + 16)),
    rules: ['archive.invalid'],
  },
  {
    name: 'tar size field of 8 GiB (octal)',
    bytes: () => tarWithSize(Buffer.from('77777777777\0')),
    rules: ['archive.invalid'],
  },
  {
    name: 'tar size field of 2^88 (base-256)',
    bytes: () => tarWithSize(Buffer.from([0x80, ...Array<number>(11).fill(0xff)])),
    rules: ['archive.too-large'],
  },
  {
    name: 'HDF5 superblock addresses set to 2^64 - 1',
    bytes: () => {
      const h5 = Buffer.from(seeds('hdf5').find((s) => s.name === 'dense.h5')!.bytes);
      for (let at = 24; at < 56; at += 8) h5.writeBigUInt64LE(0xffffffffffffffffn, at);
      return h5;
    },
    rules: [],
  },
];

describe('scan gate parsers under declared huge lengths', () => {
  test('each case ends in its finding, in time, without allocating what it declares', async () => {
    const dir = await mkdtemp(join(tmp, 'structure-'));
    const before = peakRss();
    const problems: string[] = [];
    for (const [i, c] of STRUCTURE_CASES.entries()) {
      const bytes = c.bytes();
      let report: FileReport;
      try {
        report = await scanBytes(dir, `case-${i}`, bytes, c.policy);
      } catch (err) {
        problems.push(`${c.name}: ${(err as Error).message}`);
        continue;
      }
      const rules = report.findings.map((f) => f.ruleId as string);
      if (rules.includes('scan.read-error')) problems.push(`${c.name}: parser crashed (${rules.join(', ')})`);
      for (const rule of c.rules) if (!rules.includes(rule)) problems.push(`${c.name}: no ${rule} (got ${rules})`);
    }
    expect(problems).toEqual([]);
    expect(peakRss() - before).toBeLessThan(GROWTH_BOUND);
    expect(process.memoryUsage().rss).toBeLessThan(RSS_BOUND);
  });
});
