/**
 * The bias provider on inference logs written in the server's format: group-biased predictions breach, fair ones do
 * not, feedback brings in the fairness gate's label-based metrics, too few rows per group is inconclusive, and the
 * bootstrap interval is seeded.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluationBaseline, MeasureInput, MonitorMetric } from '../../../contract/monitoring';
import { measureBias, type BiasResult } from '../../../activities/monitor/bias/provider';

const LABELS = {
  releaseId: 'credit-1.2.0-prod',
  model: 'credit',
  version: '1.2.0',
  environment: 'prod',
  manifestDigest: `sha256:${'d'.repeat(64)}`,
};
const WINDOW = '2026-12-01T10:00:00.000Z';
const FAV = 'approved';
const UNFAV = 'denied';

/** One row as the server logs it: the group columns, the prediction and (when posted) the true label. */
interface Row {
  sex: string;
  race?: string;
  prediction: string;
  label?: string;
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mrel-bias-provider-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `n` rows of `sex`, the first `favorable` of them predicted favorable. */
function group(sex: string, n: number, favorable: number, extra: Partial<Row> = {}): Row[] {
  return Array.from({ length: n }, (_, i) => ({ sex, prediction: i < favorable ? FAV : UNFAV, ...extra }));
}

/** Rows with labels: TPR = tp/pos and FPR = fp/neg exactly. */
function labelled(sex: string, pos: number, tp: number, neg: number, fp: number): Row[] {
  return [
    ...Array.from({ length: pos }, (_, i) => ({ sex, label: FAV, prediction: i < tp ? FAV : UNFAV })),
    ...Array.from({ length: neg }, (_, i) => ({ sex, label: UNFAV, prediction: i < fp ? FAV : UNFAV })),
  ];
}

/** Interleaves the groups' rows into requests of 10 rows; labelled requests get a feedback line. */
async function writeLog(name: string, rows: Row[]): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const order = rows.map((r, i) => ({ r, key: (i * 7919) % rows.length })).sort((a, b) => a.key - b.key);
  const shuffled = order.map((o) => o.r);
  const requests: string[] = [];
  const feedback: string[] = [];
  for (let start = 0, n = 0; start < shuffled.length; start += 10, n++) {
    const part = shuffled.slice(start, start + 10);
    const id = `req-${n}`;
    const groups: Record<string, string[]> = { sex: part.map((r) => r.sex) };
    if (part.every((r) => r.race !== undefined)) groups.race = part.map((r) => r.race!);
    requests.push(
      JSON.stringify({
        id,
        time: new Date(Date.parse(WINDOW) + 1000 * (n + 1)).toISOString(),
        ...LABELS,
        rows: part.length,
        inputs: { income: part.map((_, i) => 1000 + i) },
        groups,
        predictions: part.map((r) => r.prediction),
      }),
    );
    if (part.every((r) => r.label !== undefined)) {
      feedback.push(JSON.stringify({ id, time: '2026-12-01T12:00:00Z', labels: part.map((r) => r.label) }));
    }
  }
  await writeFile(join(dir, 'inference-1764583200000-9-1.jsonl'), `${requests.join('\n')}\n`);
  if (feedback.length > 0) await writeFile(join(dir, 'feedback-1764583200000-9-1.jsonl'), `${feedback.join('\n')}\n`);
  return dir;
}

function metric(bias: Extract<MonitorMetric['provider'], { bias: unknown }>['bias'] = {}): MonitorMetric {
  return {
    name: 'bias',
    provider: { bias },
    args: {},
    failureLimit: 0,
    inconclusiveLimit: 0,
    consecutiveErrorLimit: 4,
  };
}

function input(baseline: Partial<EvaluationBaseline> = {}, m: MonitorMetric = metric()): MeasureInput {
  return {
    metric: m,
    labels: LABELS,
    windowStart: WINDOW,
    index: 1,
    baseline: {
      protected: ['sex'],
      favorable: FAV,
      label: 'outcome',
      fairness: { 'sex.demographicParityDifference': 0.02, 'sex.equalizedOddsDifference': 0.03 },
      biasDriftThreshold: 0.05,
      ...baseline,
    },
  };
}

describe('measureBias', () => {
  it('breaches on group-biased predictions, with the selection rates and a bootstrap interval', async () => {
    const dir = await writeLog('biased', [...group('f', 200, 40), ...group('m', 200, 120)]);
    const outcome = await measureBias(input(), { logDir: dir });
    expect(outcome.inconclusive).toBeUndefined();
    const result = outcome.result as BiasResult;
    const dpd = result.metrics['sex.demographicParityDifference']!;
    expect(dpd.live).toBeCloseTo(0.4, 12);
    expect(dpd.evaluation).toBe(0.02);
    expect(dpd.delta).toBeCloseTo(0.38, 12);
    expect(dpd.breached).toBe(true);
    expect(dpd.basis).toBe('predictions');
    expect(dpd.interval![0]).toBeLessThan(0.4);
    expect(dpd.interval![1]).toBeGreaterThan(0.4);
    expect(dpd.interval![0]).toBeGreaterThan(0.2);
    expect(result.groups['sex=f']).toMatchObject({ rows: 200, selectionRate: 0.2, labelledRows: 0 });
    expect(result.groups['sex=m']).toMatchObject({ rows: 200, selectionRate: 0.6 });
    expect(result).toMatchObject({ rows: 400, labelledRows: 0, threshold: 0.05, breached: true });
    expect(outcome.value).toBe('bias drift: sex.demographicParityDifference 0.02 → 0.4 (Δ 0.38 > 0.05)');
  });

  it('does not breach when the groups are treated as in evaluation', async () => {
    const dir = await writeLog('fair', [...group('f', 150, 75), ...group('m', 250, 130)]);
    const outcome = await measureBias(input(), { logDir: dir });
    const result = outcome.result as BiasResult;
    expect(result.metrics['sex.demographicParityDifference']).toMatchObject({ breached: false });
    expect(result.metrics['sex.demographicParityDifference']!.live).toBeCloseTo(0.02, 12);
    expect(result.breached).toBe(false);
    // Without feedback the label-based metric the evaluation recorded cannot be measured, and says why.
    expect(result.metrics['sex.equalizedOddsDifference']).toMatchObject({
      evaluation: 0.03,
      live: null,
      breached: false,
      basis: 'feedback',
    });
    expect(result.metrics['sex.equalizedOddsDifference']!.note).toMatch(/labelled rows/);
    expect(outcome.value).toMatch(/^within 0\.05 of evaluation on 1 metric\(s\) \(400 rows, 0 labelled\)$/);
  });

  it("brings in the fairness gate's label-based metrics where feedback was posted", async () => {
    // Equal selection rates (0.5 each), but the model errs differently: TPR 0.8 vs 0.9, FPR 0.2 vs 0.1.
    const dir = await writeLog('feedback', [...labelled('f', 50, 40, 50, 10), ...labelled('m', 50, 45, 50, 5)]);
    const outcome = await measureBias(input(), { logDir: dir });
    const result = outcome.result as BiasResult;
    expect(result.labelledRows).toBe(200);
    expect(result.metrics['sex.demographicParityDifference']).toMatchObject({ live: 0, breached: false });
    const eodds = result.metrics['sex.equalizedOddsDifference']!;
    expect(eodds.basis).toBe('feedback');
    expect(eodds.rows).toBe(200);
    expect(eodds.live).toBeCloseTo(0.1, 12);
    expect(eodds.delta).toBeCloseTo(0.07, 12);
    expect(eodds.breached).toBe(true);
    expect(eodds.interval![0]).toBeLessThanOrEqual(0.1);
    expect(result.breached).toBe(true);
    expect(result.groups['sex=f']).toMatchObject({ labelledRows: 100 });
  });

  it('is inconclusive with too few rows per group', async () => {
    const dir = await writeLog('thin', [...group('f', 12, 6), ...group('m', 200, 100)]);
    const outcome = await measureBias(input(), { logDir: dir });
    expect(outcome.inconclusive).toBe(
      'too few rows per group to compare (minRows 30): sex has 1 group(s) with ≥ 30 rows (m 200, f 12)',
    );
    expect((outcome.result as BiasResult).breached).toBe(false);
    const lower = await measureBias(input({}, metric({ minRows: 10 })), { logDir: dir });
    expect(lower.inconclusive).toBeUndefined();
  });

  it('gives the same interval for the same rows (seeded), with the resamples the metric asks for', async () => {
    const dir = await writeLog('seeded', [...group('f', 100, 30), ...group('m', 100, 50)]);
    const a = (await measureBias(input({}, metric({ resamples: 200 })), { logDir: dir })).result as BiasResult;
    const b = (await measureBias(input({}, metric({ resamples: 200 })), { logDir: dir })).result as BiasResult;
    const c = (await measureBias(input({}, metric({ resamples: 50 })), { logDir: dir })).result as BiasResult;
    expect(a.bootstrap.resamples).toBe(200);
    expect(a.metrics['sex.demographicParityDifference']!.interval).toEqual(
      b.metrics['sex.demographicParityDifference']!.interval,
    );
    expect(c.metrics['sex.demographicParityDifference']!.interval).not.toEqual(
      a.metrics['sex.demographicParityDifference']!.interval,
    );
  });

  it('compares the intersection where the evaluation did, and per-group selection rates where it has them', async () => {
    const rows = [
      ...group('f', 60, 30, { race: 'a' }),
      ...group('f', 60, 30, { race: 'b' }),
      ...group('m', 60, 30, { race: 'a' }),
      ...group('m', 60, 54, { race: 'b' }),
    ];
    const dir = await writeLog('intersection', rows);
    const outcome = await measureBias(
      input({
        protected: ['sex', 'race'],
        fairness: { 'sex&race.demographicParityDifference': 0.05 },
        selectionRates: { 'sex=f': 0.5, 'sex=m': 0.5 },
      }),
      { logDir: dir },
    );
    const result = outcome.result as BiasResult;
    expect(result.metrics['sex&race.demographicParityDifference']!.live).toBeCloseTo(0.4, 12);
    expect(result.metrics['sex&race.demographicParityDifference']!.breached).toBe(true);
    expect(result.groups['sex=m']).toMatchObject({ selectionRate: 0.7, evaluation: 0.5, breached: true });
    expect(result.groups['sex=f']).toMatchObject({ selectionRate: 0.5, breached: false });
    expect(result.groups['sex&race=m&b']).toMatchObject({ rows: 60, selectionRate: 0.9 });
  });

  it('refuses metrics it cannot measure live and a release without an evaluation', async () => {
    const dir = await writeLog('refusals', group('f', 40, 20));
    await expect(measureBias(input({}, metric({ metrics: ['disparateImpact'] })), { logDir: dir })).rejects.toThrow(
      /disparateImpact cannot be measured live \(AIF360 metrics need the privileged group/,
    );
    await expect(measureBias(input({ protected: [] }), { logDir: dir })).rejects.toThrow(/no evaluation/);
  });
});
