/**
 * `mrel evaluate`: the three gates on a model directory without Temporal, with documented exit codes.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { register } from '../../client/commands/evaluate';
import type { FairnessReport } from '../../activities/evaluate/fairness-report';
import type { RobustnessReport } from '../../activities/evaluate/run-robustness';
import type { GateResult } from '../../contract/types';
import { cli, readEvidence, test, trainFixtures, useBackend, type TrainedFixtures } from './fixtures';

let models: TrainedFixtures;
let backendName: string;

beforeAll(async () => {
  backendName = (await useBackend()).name;
  models = await trainFixtures(2000);
});
afterAll(() => models.close());

const evaluate = (m: { dir: string; data: string }, ...extra: string[]) =>
  cli(register, ['evaluate', '--model', m.dir, '--data', m.data, '--protected', 'group,sex', ...extra]);

describe('mrel evaluate', () => {
  test('the biased model fails (exit 1), the fair one passes (exit 0)', async () => {
    const biased = await evaluate(models.biased, '--format', 'json');
    expect(biased.code).toBe(1);
    const report = JSON.parse(biased.out) as {
      verdict: string;
      backend: string;
      results: GateResult[];
      reports: { fairness: FairnessReport };
    };
    expect(report.verdict).toBe('fail');
    expect(report.backend).toBe(backendName);
    expect(report.results.map((r) => [r.gate, r.verdict])).toEqual([
      ['fairness', 'fail'],
      ['robustness', 'pass'],
      ['explain', 'warn'],
    ]);
    expect(report.reports.fairness.attributes.group!.groups.a!.count).toBeGreaterThan(0);

    const fair = await evaluate(models.fair);
    expect(fair.code).toBe(0);
    expect(fair.out).toContain(`backend: ${backendName}`);
    expect(fair.out).toMatch(/^fairness: PASS/m);
  });

  test('--gates picks gates, --evidence writes the full evidence per gate', async ({ tmp }) => {
    const run = await evaluate(models.fair, '--gates', 'robustness', '--evidence', join(tmp, 'ev'), '--format', 'json');
    expect(run.code).toBe(0);
    const { results } = JSON.parse(run.out) as { results: GateResult[] };
    expect(results.map((r) => r.gate)).toEqual(['robustness']);
    expect(results[0]!.evidence).toBe(join(tmp, 'ev', 'robustness.json'));
    const evidence = await readEvidence<RobustnessReport>(join(tmp, 'ev', 'robustness.json'));
    expect(evidence.report.epsilons.map((e) => e.epsilon)).toEqual([0.05, 0.1, 0.2]);
  });

  test('bad usage and bad inputs exit 2 with a message that says what to fix', async ({ tmp }) => {
    const gate = await evaluate(models.fair, '--gates', 'fairness,speed');
    expect(gate.code).toBe(2);
    expect(gate.err).toContain('unknown gate(s) speed');

    const noModel = await evaluate({ dir: join(tmp, 'nothing'), data: models.fair.data });
    expect(noModel.code).toBe(2);
    expect(noModel.err).toMatch(/cannot read .*model\.json/);

    const wrongFeatures = await evaluate(models.fair, '--features', 'income,tenure');
    expect(wrongFeatures.code).toBe(2);
    expect(wrongFeatures.err).toContain('the model takes 6 inputs but its features give 2');

    const column = await evaluate(models.fair, '--label', 'outcome');
    expect(column.err).toContain('column outcome: not in the CSV header');
  });
});
