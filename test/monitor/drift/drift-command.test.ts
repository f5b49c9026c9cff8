/**
 * `mrel drift` against scipy on generated data: reference.py (the project venv's scipy 1.17) writes datasets and
 * scipy's values for them; the command must agree per feature (KS statistic to 1e-9 and p-value to 1e-6, Wasserstein,
 * chi-square, Jensen–Shannon, Evidently's PSI) and on every drift decision, and refuse bad input with exit 2.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../../../client/commands/drift';
import { EXIT } from '../../../client/errors';
import { runCommand } from '../../helpers/command';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

interface Expected {
  type: string;
  method: string;
  ks?: { statistic: number; pValue: number };
  wasserstein?: { distance: number; normed: number };
  chiSquare?: { statistic: number | null; pValue: number };
  jensenShannon?: number;
  psi: number;
  drifted: boolean;
}

interface Case {
  reference: string;
  current: string;
  categorical: string[];
  columns: Record<string, Expected>;
  driftedShare: number;
  datasetDrift: boolean;
}

let dir: string;
let cases: Record<string, Case>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-drift-'));
  const { stdout } = await promisify(execFile)(
    join(REPO, '.venv', 'bin', 'python'),
    [join(REPO, 'test', 'monitor', 'drift', 'reference.py'), dir],
    { maxBuffer: 16 << 20 },
  );
  cases = JSON.parse(stdout) as Record<string, Case>;
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** |a − b| within tol, relative to b when b is large. */
function close(actual: number | null, expected: number | null, tol: number, what: string): void {
  if (expected === null) {
    expect(actual, what).toBeNull();
    return;
  }
  expect(actual, what).not.toBeNull();
  const diff = Math.abs(actual! - expected);
  expect(diff, `${what}: ${actual} vs scipy ${expected}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected)));
}

const CASES = ['small-same', 'small-shift', 'large', 'asymptotic', 'asymptotic-small', 'jsonl-new-category'];

describe('mrel drift equals scipy', () => {
  it.each(CASES)('%s', async (name) => {
    const c = cases[name]!;
    const args = ['drift', '--reference', c.reference, '--current', c.current, '--format', 'json'];
    if (c.categorical.length > 0) args.push('--categorical', c.categorical.join(','));
    const run = await runCommand(register, args);
    expect(run.err).toBe('');
    expect(run.code).toBe(c.datasetDrift ? EXIT.fail : EXIT.ok);
    const report = JSON.parse(run.out) as {
      verdict: string;
      columns: Record<string, Expected & { statistic: number; threshold: number }>;
      driftedShare: number;
      datasetDrift: boolean;
    };
    expect(report.verdict).toBe(c.datasetDrift ? 'fail' : 'pass');
    expect(Object.keys(report.columns).sort()).toEqual(Object.keys(c.columns).sort());
    for (const [column, want] of Object.entries(c.columns)) {
      const got = report.columns[column]!;
      const at = `${name}.${column}`;
      expect(got.type, at).toBe(want.type);
      expect(got.method, at).toBe(want.method);
      if (want.ks) {
        close(got.ks!.statistic, want.ks.statistic, 1e-9, `${at} ks statistic`);
        expect(
          Math.abs(got.ks!.pValue - want.ks.pValue),
          `${at} ks p ${got.ks!.pValue} vs ${want.ks.pValue}`,
        ).toBeLessThanOrEqual(1e-6);
        close(got.wasserstein!.distance, want.wasserstein!.distance, 1e-9, `${at} wasserstein`);
        close(got.wasserstein!.normed, want.wasserstein!.normed, 1e-9, `${at} normed wasserstein`);
      }
      if (want.chiSquare) {
        close(got.chiSquare!.statistic, want.chiSquare.statistic, 1e-9, `${at} chi-square statistic`);
        expect(Math.abs(got.chiSquare!.pValue - want.chiSquare.pValue), `${at} chi-square p`).toBeLessThanOrEqual(1e-6);
        close(got.jensenShannon!, want.jensenShannon!, 1e-9, `${at} jensen-shannon`);
      }
      close(got.psi, want.psi, 1e-9, `${at} psi`);
      expect(got.drifted, `${at} drifted`).toBe(want.drifted);
    }
    expect(report.driftedShare).toBeCloseTo(c.driftedShare, 12);
    expect(report.datasetDrift).toBe(c.datasetDrift);
  });

  it('covers both decisions, every method and an infinite chi-square statistic', () => {
    const all = Object.values(cases).flatMap((c) => Object.values(c.columns));
    expect(new Set(all.map((c) => c.method))).toEqual(new Set(['ks', 'wasserstein', 'chisquare', 'jensenshannon']));
    expect(all.some((c) => c.drifted) && all.some((c) => !c.drifted)).toBe(true);
    expect(all.some((c) => c.chiSquare?.statistic === null)).toBe(true);
    expect(Object.values(cases).map((c) => c.datasetDrift)).toContain(false);
  });
});

describe('mrel drift input and policy', () => {
  it('writes a table per feature by default', async () => {
    const c = cases['small-shift']!;
    const run = await runCommand(register, ['drift', '--reference', c.reference, '--current', c.current]);
    expect(run.code).toBe(EXIT.fail);
    expect(run.out).toMatch(/^a\s+numerical\s+ks\s/m);
    expect(run.out).toMatch(/^DRIFT {2}\d of 5 features drifted/m);
  });

  it('compares only --columns', async () => {
    const c = cases['small-shift']!;
    const run = await runCommand(register, [
      'drift',
      '--reference',
      c.reference,
      '--current',
      c.current,
      '--columns',
      'b',
      '--format',
      'json',
    ]);
    expect(run.code).toBe(EXIT.ok);
    expect(Object.keys((JSON.parse(run.out) as { columns: object }).columns)).toEqual(['b']);
  });

  it('refuses a column the files lack, naming the file and the column (exit 2)', async () => {
    const c = cases['small-same']!;
    const run = await runCommand(register, [
      'drift',
      '--reference',
      c.reference,
      '--current',
      c.current,
      '--columns',
      'a,income',
    ]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain(`--reference ${c.reference}: column income not found`);
  });

  it('refuses a non-numeric value in a numerical column, naming file, column and line, not the value', async () => {
    const ref = join(dir, 'bad-reference.csv');
    const cur = join(dir, 'bad-current.csv');
    await writeFile(ref, 'age,city\n31,x\n40,y\n');
    await writeFile(cur, 'age,city\n33,x\nsecret-token-123,y\n');
    const run = await runCommand(register, ['drift', '--reference', ref, '--current', cur]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain(`--current ${cur} line 3: column age is numerical`);
    expect(run.err).not.toContain('secret-token-123');
  });

  it('refuses a file that is not there (exit 2)', async () => {
    const c = cases['small-same']!;
    const run = await runCommand(register, ['drift', '--reference', join(dir, 'none.csv'), '--current', c.current]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toMatch(/--reference .*none\.csv cannot be read/);
  });

  it('takes methods and thresholds per feature from the policy, and refuses a wrong one (exit 5)', async () => {
    const c = cases['small-same']!;
    const policy = join(dir, 'drift-policy.yaml');
    await writeFile(
      policy,
      'monitor:\n  drift:\n    driftShare: 0.3\n    features:\n      a: { method: wasserstein, threshold: 0.0001 }\n',
    );
    const run = await runCommand(register, [
      'drift',
      '--reference',
      c.reference,
      '--current',
      c.current,
      '--policy',
      policy,
      '--format',
      'json',
    ]);
    const report = JSON.parse(run.out) as {
      columns: Record<string, { method: string; threshold: number; drifted: boolean }>;
    };
    expect(report.columns.a).toMatchObject({ method: 'wasserstein', threshold: 0.0001, drifted: true });
    expect(report.columns.b).toMatchObject({ method: 'ks', threshold: 0.05 });
    expect(run.code).toBe(EXIT.fail);

    const broken = join(dir, 'broken-policy.yaml');
    await writeFile(broken, 'monitor:\n  drift:\n    features:\n      a: { method: magic }\n');
    const bad = await runCommand(register, [
      'drift',
      '--reference',
      c.reference,
      '--current',
      c.current,
      '--policy',
      broken,
    ]);
    expect(bad.code).toBe(EXIT.config);
    expect(bad.err).toContain('monitor.drift.features.a.method');
  });
});
