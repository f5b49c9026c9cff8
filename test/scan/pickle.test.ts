/**
 * The pickle walker against real pickles made by Python's pickle module: every known way to smuggle a call in is
 * reported with its file and byte offset; torch-style state dicts pass; broken streams are never a pass.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gateFindings, scanVerdict } from '../../activities/scan';
import { makeFixtures, python, scan } from './fixtures';
import { walkPickle, type PickleWalk } from '../../activities/scan/pickle';
import { bufferChunks, ByteReader } from '../../activities/scan/reader';
import { parseScanPolicy } from '../../activities/scan/policy';
import { DEFAULT_SCAN_POLICY } from '../../activities/scan/policy-defaults';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-scan-pickle-'));
  await makeFixtures(dir);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** Python that defines `Evil`, whose pickle calls os.system('echo pwned'), and imports pickle and os. */
const EVIL_PY = `import pickle, os
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
`;

const verdictOf = (report: Awaited<ReturnType<typeof scan>>, failOn: 'high' | 'medium' = 'high') =>
  scanVerdict(gateFindings(report.findings, [], new Date().toISOString()), failOn);

describe('malicious pickles', () => {
  it.each([0, 1, 2, 3, 4, 5])(
    'os.system through __reduce__ at protocol %i is critical, with the command',
    async (p) => {
      const report = await scan(dir, [`evil/os-system-p${p}.pkl`]);
      const [f] = report.findings.filter((x) => x.ruleId === 'pickle.dangerous-global');
      expect(f).toMatchObject({ severity: 'critical', path: `evil/os-system-p${p}.pkl` });
      expect(f?.message).toMatch(/posix\.system and calls it with "echo pwned"/);
      expect(f?.offset).toBeGreaterThan(0);
      expect(verdictOf(report)).toBe('fail');
    },
  );

  it.each([
    ['eval.pkl', /__builtin__\.eval/],
    ['exec.pkl', /builtins\.exec/],
    ['importlib.pkl', /importlib\.import_module and calls it with "os"/],
    ['marshal-function.pkl', /types\.FunctionType|marshal\.loads/],
    ['memo-stack-global.pkl', /os\.system and calls it with "echo pwned"/],
    ['inst.pkl', /os\.system and calls it with "echo pwned" \(INST/],
    ['obj.pkl', /os\.system and calls it with "echo pwned" \(OBJ/],
    ['dotted-name.pkl', /posixpath\.os\.system/],
  ])('%s is reported as a dangerous global', async (file, message) => {
    const report = await scan(dir, [`evil/${file}`]);
    const dangerous = report.findings.filter((f) => f.ruleId === 'pickle.dangerous-global');
    expect(dangerous.map((f) => f.message).join('\n')).toMatch(message);
    expect(dangerous.every((f) => f.severity === 'critical')).toBe(true);
  });

  it('marshal + types.FunctionType reports both the code loader and the function constructor', async () => {
    const report = await scan(dir, ['evil/marshal-function.pkl']);
    const messages = report.findings.map((f) => f.message).join('\n');
    expect(messages).toContain('marshal.loads');
    expect(messages).toContain('types.FunctionType');
  });

  it('a module name computed at load time is a dynamic import', async () => {
    const report = await scan(dir, ['evil/dynamic-import.pkl']);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ ruleId: 'pickle.dynamic-import', severity: 'critical', offset: 30 }),
    );
  });

  it('pickles nested in a PyTorch zip, a legacy tar, an .npy object array, an .npz and joblib are found', async () => {
    const report = await scan(dir, [
      'evil/torch-zip.pt',
      'evil/legacy-tar.pt',
      'evil/object-array.npy',
      'evil/arrays.npz',
      'evil/model.joblib',
    ]);
    const paths = report.findings.filter((f) => f.ruleId === 'pickle.dangerous-global').map((f) => f.path);
    expect(paths).toEqual([
      'evil/torch-zip.pt!archive/data.pkl',
      'evil/legacy-tar.pt!pickle',
      'evil/object-array.npy',
      'evil/arrays.npz!b.npy',
      'evil/model.joblib',
    ]);
    expect(report.files.map((f) => f.format)).toEqual(['torch-zip', 'torch-legacy-tar', 'npy', 'npz', 'joblib']);
  });
});

describe('benign checkpoints', () => {
  it('torch-style state dicts (plain, zip, protocol 4 zip, legacy stream), numpy, joblib and safetensors pass', async () => {
    const files = [
      'benign/state-dict.pkl',
      'benign/torch-zip.pt',
      'benign/torch-zip-p4.bin',
      'benign/legacy.pt',
      'benign/legacy-tar.pt',
      'benign/array.npy',
      'benign/arrays.npz',
      'benign/model.joblib',
      'benign/model.safetensors',
    ];
    const report = await scan(dir, files);
    expect(report.findings).toEqual([]);
    expect(report.files.map((f) => f.format)).toEqual([
      'pickle',
      'torch-zip',
      'torch-zip',
      'torch-legacy',
      'torch-legacy-tar',
      'npy',
      'npz',
      'joblib',
      'safetensors',
    ]);
    expect(verdictOf(report, 'medium')).toBe('pass');
  });
});

describe('policy', () => {
  it('an unknown global is medium; strict mode makes it high; the allowlist clears it; deny makes it critical', async () => {
    await python(
      `import pickle, sys, types\nm = types.ModuleType('my_project.config')\nsys.modules['my_project.config'] = m\nsys.modules['my_project'] = types.ModuleType('my_project')\nclass Config:\n    pass\nConfig.__module__ = 'my_project.config'\nm.Config = Config\nopen('custom.pkl','wb').write(pickle.dumps(Config(), protocol=4))`,
      dir,
    );
    const unknown = await scan(dir, ['custom.pkl']);
    expect(unknown.findings).toEqual([
      expect.objectContaining({
        ruleId: 'pickle.unknown-global',
        severity: 'medium',
        message: expect.stringContaining('my_project.config.Config'),
      }),
    ]);
    expect(verdictOf(unknown)).toBe('warn');
    const strict = await scan(dir, ['custom.pkl'], { strict: true });
    expect(strict.findings).toEqual([expect.objectContaining({ ruleId: 'pickle.not-allowlisted', severity: 'high' })]);
    expect(verdictOf(strict)).toBe('fail');
    expect((await scan(dir, ['custom.pkl'], { allowGlobals: ['my_project.config:Config'] })).findings).toEqual([]);
    expect((await scan(dir, ['custom.pkl'], { allowGlobals: ['my_project.*:*'] })).findings).toEqual([]);
    const denied = await scan(dir, ['custom.pkl'], { denyGlobals: ['my_project.config:*'] });
    expect(denied.findings).toEqual([
      expect.objectContaining({ ruleId: 'pickle.dangerous-global', severity: 'critical' }),
    ]);
  });

  it('an allowlist entry cannot re-open a denied module', async () => {
    const report = await scan(dir, ['evil/inst.pkl'], { allowGlobals: ['os:system'] });
    expect(report.findings).toContainEqual(expect.objectContaining({ ruleId: 'pickle.dangerous-global' }));
  });
});

describe('broken pickles are never a pass', () => {
  it('a truncated pickle reports what it saw and a parse error, so the verdict is at best error', async () => {
    const evil = await readFile(join(dir, 'evil/os-system-p4.pkl'));
    await writeFile(join(dir, 'truncated-evil.pkl'), evil.subarray(0, evil.length - 3));
    const benign = await readFile(join(dir, 'benign/state-dict.pkl'));
    await writeFile(join(dir, 'truncated-benign.pkl'), benign.subarray(0, 120));
    const report = await scan(dir, ['truncated-evil.pkl', 'truncated-benign.pkl']);
    expect(report.findings.map((f) => `${f.path} ${f.ruleId}`)).toEqual([
      'truncated-evil.pkl pickle.dangerous-global',
      'truncated-evil.pkl pickle.parse-error',
      'truncated-benign.pkl pickle.parse-error',
    ]);
    expect(report.incomplete).toBe(true);
    const benignOnly = await scan(dir, ['truncated-benign.pkl']);
    expect(verdictOf(benignOnly)).toBe('error');
  });

  it('an invalid opcode, a memo read before write, and trailing garbage are reported', async () => {
    await writeFile(join(dir, 'bad-opcode.pkl'), Buffer.from([0x80, 0x04, 0xff, 0x2e]));
    await writeFile(join(dir, 'bad-memo.pkl'), Buffer.from([0x80, 0x04, 0x68, 0x07, 0x2e]));
    await writeFile(
      join(dir, 'trailing.pkl'),
      Buffer.concat([Buffer.from([0x80, 0x04, 0x4e, 0x2e]), Buffer.from('junk')]),
    );
    const report = await scan(dir, ['bad-opcode.pkl', 'bad-memo.pkl', 'trailing.pkl']);
    expect(report.findings).toEqual([
      expect.objectContaining({
        path: 'bad-opcode.pkl',
        ruleId: 'pickle.parse-error',
        offset: 2,
        message: expect.stringContaining('invalid opcode 0xff'),
      }),
      expect.objectContaining({
        path: 'bad-memo.pkl',
        ruleId: 'pickle.parse-error',
        message: expect.stringContaining('memo entry 7'),
      }),
      expect.objectContaining({ path: 'trailing.pkl', ruleId: 'pickle.trailing-data', offset: 4 }),
    ]);
  });

  it.each([3, 4])(
    'a 3 MB pickle at protocol %i whose strings, ints and bytes straddle every read boundary is walked exactly',
    async (protocol) => {
      // Strings of every length up to 300 characters, LONG1 ints and short bytes, so that values cross the 64 KiB head
      // read and the 1 MiB chunks after it; the call to os.system comes last.
      await python(
        `${EVIL_PY}items = []
for i in range(60000):
    items.append('x' * (i % 301))
    items.append(2 ** (64 + i % 60) + i)
    items.append(bytes(i % 97))
items.append(Evil())
open('straddle-p${protocol}.pkl', 'wb').write(pickle.dumps(items, protocol=${protocol}))`,
        dir,
      );
      const report = await scan(dir, [`straddle-p${protocol}.pkl`]);
      expect(report.files[0]?.size).toBeGreaterThan(3_000_000);
      expect(report.findings).toEqual([
        expect.objectContaining({
          ruleId: 'pickle.dangerous-global',
          message: expect.stringMatching(/system and calls it with "echo pwned"/),
        }),
      ]);
    },
  );

  it('the walk is the same whatever the chunk sizes: every value split across chunks at every offset', async () => {
    await python(
      `${EVIL_PY}items = []
for i in range(400):
    items += ['x' * (i % 40), 2 ** (64 + i % 60) + i, bytes(i % 17), float(i), (i, str(i))]
items.append(Evil())
open('chunky.pkl', 'wb').write(pickle.dumps(items, protocol=4) + pickle.dumps(items[:50], protocol=2))`,
      dir,
    );
    const bytes = await readFile(join(dir, 'chunky.pkl'));
    const summary = (walk: PickleWalk) => ({
      imports: [...walk.imports.values()],
      findings: walk.findings,
      bytes: walk.bytes,
      pickles: walk.pickles,
    });
    const whole = summary(await walkPickle(new ByteReader(bufferChunks(bytes)), 'chunky.pkl'));
    expect(whole.imports.map((i) => `${i.module}.${i.name}`)).toContain('posix.system');
    expect(whole.bytes).toBe(bytes.length);
    for (const size of [1, 2, 3, 5, 8, 9, 10, 13, 64, 4099]) {
      const chunks = (async function* () {
        for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
      })();
      expect(summary(await walkPickle(new ByteReader(chunks), 'chunky.pkl')), `chunks of ${size}`).toEqual(whole);
    }
  });

  it('names stored at far-apart memo indices are still resolved when fetched for STACK_GLOBAL', async () => {
    const op = (...bytes: number[]) => Buffer.from(bytes);
    const str = (s: string) => Buffer.concat([op(0x8c, s.length), Buffer.from(s)]);
    const sparse = Buffer.concat([
      op(0x80, 0x04),
      str('os'),
      op(0x72, 0xf0, 0xff, 0xff, 0xff, 0x30), // LONG_BINPUT 0xfffffff0, POP
      str('system'),
      op(0x94, 0x30), // MEMOIZE (index 1: one entry so far), POP
      op(0x6a, 0xf0, 0xff, 0xff, 0xff, 0x68, 0x01, 0x93), // LONG_BINGET, BINGET 1, STACK_GLOBAL
      str('echo pwned'),
      op(0x85, 0x52, 0x2e), // TUPLE1, REDUCE, STOP
    ]);
    await writeFile(join(dir, 'sparse-memo.pkl'), sparse);
    const report = await scan(dir, ['sparse-memo.pkl']);
    expect(report.findings).toEqual([
      expect.objectContaining({
        ruleId: 'pickle.dangerous-global',
        severity: 'critical',
        message: expect.stringContaining('os.system and calls it with "echo pwned"'),
      }),
    ]);
  });

  it('an absent scan: section validates to exactly the defaults the scanner uses on its own', () => {
    expect(parseScanPolicy(undefined)).toEqual(DEFAULT_SCAN_POLICY);
    expect(parseScanPolicy({ limits: {} })).toEqual(DEFAULT_SCAN_POLICY);
  });

  it('a bad scan: section names each field and what to write there', () => {
    expect(() => parseScanPolicy({ strikt: true, strict: 'yes', limits: { maxPickleMemo: 0 } }, 'p.yaml')).toThrow(
      [
        'p.yaml: scan.strict: Invalid input: expected boolean, received string',
        'p.yaml: scan.limits.maxPickleMemo: maxPickleMemo must be a positive whole number',
        'p.yaml: scan: has unknown field(s) "strikt"; known fields: failOn, warnOn, strict, allowGlobals, denyGlobals, secrets, limits',
      ].join('\n'),
    );
  });

  it('a memo limit hit is a finding, not a crash', async () => {
    const report = await scan(dir, ['benign/state-dict.pkl'], { limits: { maxPickleMemo: 3 } });
    expect(report.findings).toEqual([expect.objectContaining({ ruleId: 'pickle.limit' })]);
    expect(report.incomplete).toBe(true);
  });
});
