/**
 * `mrel fairness` and the metrics under it: known answers from Fairlearn and AIF360 (run from the project venv on
 * the same generated CSV), seeded bootstrap intervals, insufficient-data groups, and data errors that name the
 * column and row.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { SeededRandom } from '../../activities/evaluate/random';
import { createFairnessCommand, register } from '../../client/commands/fairness';
import type { FairnessReport } from '../../activities/evaluate/fairness-report';
import { toCsv, toJsonl } from '../../scripts/credit-data';
import { cli, runPythonJson, test } from './fixtures';

interface PredictionRow {
  approved: string;
  predicted: string;
  race: string;
  sex: string;
}

/** Rows whose label and prediction rates differ by group; group "w" is tiny and never approved. */
function predictions(n: number, seed: number): PredictionRow[] {
  const rng = new SeededRandom(seed);
  const rows: PredictionRow[] = [];
  const rates: Record<string, [number, number]> = { x: [0.6, 0.55], y: [0.45, 0.3], z: [0.5, 0.5] };
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    const race = u < 0.5 ? 'x' : u < 0.8 ? 'y' : 'z';
    const sex = rng.next() < 0.45 ? 'f' : 'm';
    const [base, sel] = rates[race]!;
    const approved = rng.next() < base + (sex === 'f' ? -0.05 : 0) ? 'yes' : 'no';
    // Predictions agree with the label 80 % of the time, and lean towards the group's selection rate otherwise.
    const predicted = rng.next() < 0.8 ? approved : rng.next() < sel ? 'yes' : 'no';
    rows.push({ approved, predicted, race, sex });
  }
  for (let i = 0; i < 5; i++) rows.push({ approved: 'no', predicted: i < 2 ? 'yes' : 'no', race: 'w', sex: 'm' });
  return rows;
}

const args = (data: string, ...extra: string[]) => [
  'fairness',
  '--data',
  data,
  '--label',
  'approved',
  '--prediction',
  'predicted',
  '--protected',
  'race,sex',
  '--favorable',
  'yes',
  ...extra,
];

describe('mrel fairness', () => {
  test('equals Fairlearn (and AIF360 for the privileged metrics) to 1e-9, per group and between groups', async ({
    tmp,
  }) => {
    const data = join(tmp, 'predictions.csv');
    await writeFile(data, toCsv(predictions(6000, 1)));

    const run = await cli(register, [
      ...args(data, '--privileged', 'race=x', '--min-group-size', '1', '--resamples', '200'),
      '--format',
      'json',
    ]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const ours = JSON.parse(run.out) as FairnessReport;
    const reference = (await runPythonJson('fairlearn_reference.py', [
      data,
      'approved',
      'predicted',
      'yes',
      'race,sex',
      'race=x',
    ])) as { attributes: Record<string, Record<string, unknown> & { groups: Record<string, Record<string, number>> }> };

    expect(Object.keys(ours.attributes).sort()).toEqual(Object.keys(reference.attributes).sort());
    let compared = 0;
    for (const [attribute, expected] of Object.entries(reference.attributes)) {
      const actual = ours.attributes[attribute]!;
      expect(Object.keys(actual.groups).sort()).toEqual(Object.keys(expected.groups).sort());
      for (const [group, stats] of Object.entries(expected.groups)) {
        for (const [k, v] of Object.entries(stats)) {
          expect(
            actual.groups[group]![k as keyof (typeof actual.groups)[string]],
            `${attribute}=${group} ${k}`,
          ).toBeCloseTo(v, 9);
          compared++;
        }
      }
      for (const [metric, v] of Object.entries(expected)) {
        if (metric === 'groups') continue;
        expect(actual[metric as keyof typeof actual], `${attribute} ${metric}`).toBeCloseTo(v as number, 9);
        compared++;
      }
    }
    // race has AIF360's three metrics too, with x as the privileged group.
    expect(ours.attributes.race!.privileged).toBe('x');
    // 13 groups × 6 figures, 6 metrics per attribute and AIF360's 3 for race.
    expect(compared).toBe(99);
  });

  test('bootstrap intervals are seeded, contain the estimate, and tighten with more data', async ({ tmp }) => {
    const small = join(tmp, 'small.csv');
    const large = join(tmp, 'large.csv');
    await writeFile(small, toCsv(predictions(2000, 2)));
    await writeFile(large, toCsv(predictions(32000, 2)));
    const json = async (data: string, seed: string) => {
      const run = await cli(register, [...args(data, '--seed', seed, '--resamples', '500'), '--format', 'json']);
      expect(run.code).toBe(0);
      return (JSON.parse(run.out) as FairnessReport).attributes.race!;
    };
    const a = await json(small, '7');
    const b = await json(small, '7');
    const c = await json(small, '8');
    expect(a.ci).toEqual(b.ci);
    expect(a.ci.demographicParityDifference).not.toEqual(c.ci.demographicParityDifference);
    for (const [metric, ci] of Object.entries(a.ci)) {
      const point = a[metric as keyof typeof a] as number;
      expect(ci.lower, metric).toBeLessThanOrEqual(point + 1e-12);
      expect(ci.upper, metric).toBeGreaterThanOrEqual(point - 1e-12);
    }
    const big = await json(large, '7');
    const width = (ci: { lower: number; upper: number }) => ci.upper - ci.lower;
    // 16× the rows: intervals about 4× narrower.
    expect(width(big.ci.demographicParityDifference!)).toBeLessThan(width(a.ci.demographicParityDifference!) / 2.5);
  });

  test('a group smaller than the minimum is reported as insufficient data and left out of the comparison', async ({
    tmp,
  }) => {
    const data = join(tmp, 'predictions.csv');
    await writeFile(data, toCsv(predictions(3000, 3)));
    const run = await cli(register, [...args(data, '--resamples', '0'), '--format', 'json']);
    const race = (JSON.parse(run.out) as FairnessReport).attributes.race!;
    expect(race.insufficientGroups).toEqual(['w']);
    expect(race.groups.w!.count).toBe(5);
    // w (selection rate 0.4 on 5 rows) would otherwise set the maximum.
    const rates = ['x', 'y', 'z'].map((g) => race.groups[g]!.selectionRate);
    expect(race.demographicParityDifference).toBeCloseTo(Math.max(...rates) - Math.min(...rates), 12);

    const text = await cli(register, args(data, '--resamples', '0'));
    expect(text.out).toMatch(/w\s+5 .*\(insufficient data\)/);
    expect(text.out).toContain('demographicParityDifference');
  });

  test('reads JSON Lines the same as CSV', async ({ tmp }) => {
    const rows = predictions(1500, 4);
    await writeFile(join(tmp, 'p.csv'), toCsv(rows));
    await writeFile(join(tmp, 'p.jsonl'), toJsonl(rows));
    const csv = await cli(register, [...args(join(tmp, 'p.csv')), '--format', 'json']);
    const jsonl = await cli(register, [...args(join(tmp, 'p.jsonl')), '--format', 'json']);
    expect(jsonl.code).toBe(0);
    expect(JSON.parse(jsonl.out)).toEqual(JSON.parse(csv.out));
  });

  test('bad data is an error naming the column and row (exit 2)', async ({ tmp }) => {
    const rows = predictions(10, 5);
    rows[6]!.approved = 'maybe';
    await writeFile(join(tmp, 'third.csv'), toCsv(rows));
    const third = await cli(register, args(join(tmp, 'third.csv')));
    expect(third.code).toBe(2);
    expect(third.err).toMatch(/^mrel fairness: column approved row 7: the value is a third distinct outcome/);
    expect(third.err).not.toContain('maybe');

    const missing = await cli(register, [...args(join(tmp, 'third.csv')).slice(0, -4), '--protected', 'race,age']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('column age: not in the CSV header');

    await writeFile(join(tmp, 'bad.jsonl'), `${JSON.stringify(rows[0])}\n[1, 2]\n`);
    const jsonl = await cli(register, args(join(tmp, 'bad.jsonl')));
    expect(jsonl.err).toContain('row 2: each line must be a JSON object');

    await writeFile(join(tmp, 'clean.csv'), toCsv(predictions(10, 5)));
    const favorable = await cli(register, [...args(join(tmp, 'clean.csv')).slice(0, -2), '--favorable', 'approved']);
    expect(favorable.err).toContain('the favorable value "approved" occurs in neither');
  });

  test('--policy judges the bounds: exit 1 when one is exceeded, with the finding', async ({ tmp }) => {
    const configDir = join(tmp, 'config');
    await mkdir(join(configDir, 'policies'), { recursive: true });
    await copyFile(new URL('../../config/approvers.yaml', import.meta.url), join(configDir, 'approvers.yaml'));
    const policy = (bound: number) =>
      [
        'approval:',
        '  timeout: 72h',
        '  environments:',
        '    production: { minApprovers: 1, allowedRoles: [release-manager] }',
        'evaluation:',
        '  fairness:',
        '    judge: point',
        `    bounds: { demographicParityDifference: { max: ${bound} } }`,
        '',
      ].join('\n');
    await writeFile(join(configDir, 'policies', 'strict.yaml'), policy(0.05));
    await writeFile(join(configDir, 'policies', 'lenient.yaml'), policy(0.5));
    await writeFile(join(configDir, 'policies', 'broken.yaml'), policy(0.5).replace('judge: point', 'judge: maybe'));
    const data = join(tmp, 'p.csv');
    await writeFile(data, toCsv(predictions(3000, 6)));
    const command = createFairnessCommand({ configDir });

    const strict = await cli(command, [...args(data, '--policy', 'strict', '--no-intersections'), '--format', 'json']);
    expect(strict.code).toBe(1);
    const judged = JSON.parse(strict.out) as { verdict: string; findings: { ruleId: string; location: string }[] };
    expect(judged.verdict).toBe('fail');
    expect(judged.findings).toContainEqual(
      expect.objectContaining({ ruleId: 'fairness.demographicParityDifference', location: 'race' }),
    );

    const lenient = await cli(command, args(data, '--policy', 'lenient'));
    expect(lenient.code).toBe(0);
    expect(lenient.out).toMatch(/^WARN  fairness within bounds/m);

    const broken = await cli(command, args(data, '--policy', 'broken'));
    expect(broken.code).toBe(5);
    expect(broken.err).toContain('--policy broken: config/policies/broken.yaml does not load');
    expect(broken.err).toMatch(/evaluation\.fairness\.judge:? judge must be point or ci/);
  });
});

describe('seeded sampling', () => {
  test('binomial draws have the right mean and variance in both regimes (inversion and BTRD)', () => {
    for (const [n, p] of [
      [50, 0.05],
      [1000, 0.3],
      [1_000_000, 0.0004],
      [1_000_000, 0.9],
    ] as const) {
      const rng = new SeededRandom(n);
      const draws = 20_000;
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < draws; i++) {
        const k = rng.binomial(n, p);
        expect(k).toBeGreaterThanOrEqual(0);
        expect(k).toBeLessThanOrEqual(n);
        sum += k;
        sq += k * k;
      }
      const mean = sum / draws;
      const variance = sq / draws - mean * mean;
      const sd = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(mean - n * p), `mean of Binomial(${n}, ${p})`).toBeLessThan((5 * sd) / Math.sqrt(draws));
      expect(variance / (n * p * (1 - p)), `variance of Binomial(${n}, ${p})`).toBeGreaterThan(0.94);
      expect(variance / (n * p * (1 - p)), `variance of Binomial(${n}, ${p})`).toBeLessThan(1.06);
    }
  });
});
