/**
 * tally() and phaseOf() (contract/monitoring.ts) decide a metric's phase with Argo Rollouts' meaning of count,
 * failureLimit, inconclusiveLimit and consecutiveErrorLimit: a limit is how many are tolerated, so the metric turns
 * at limit + 1.
 */
import { describe, expect, it } from 'vitest';
import {
  emptyTally,
  tally,
  type MeasurementPhase,
  type MetricTally,
  type MonitorMetric,
} from '../../../contract/monitoring';

function metric(fields: Partial<MonitorMetric> = {}): MonitorMetric {
  return {
    name: 'm',
    provider: { prometheus: { address: 'http://127.0.0.1:9090', query: 'up' } },
    args: {},
    failureLimit: 0,
    inconclusiveLimit: 0,
    consecutiveErrorLimit: 4,
    ...fields,
  };
}

/** The phase after each measurement. */
function phases(m: MonitorMetric, measured: MeasurementPhase[]): string[] {
  let t: MetricTally = emptyTally(m.name);
  return measured.map((phase, i) => {
    t = tally(m, t, {
      phase,
      value: String(i),
      startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:00:01Z',
    });
    return t.phase;
  });
}

describe("a metric's phase, as Argo Rollouts decides it", () => {
  it('without an interval takes one measurement', () => {
    expect(phases(metric(), ['Successful'])).toEqual(['Successful']);
    expect(phases(metric(), ['Failed'])).toEqual(['Failed']);
  });

  it('with an interval and no count runs until the window ends', () => {
    expect(phases(metric({ interval: '5m' }), ['Successful', 'Successful', 'Successful'])).toEqual([
      'Running',
      'Running',
      'Running',
    ]);
  });

  it('with a count succeeds after that many measurements', () => {
    expect(phases(metric({ interval: '1m', count: 3 }), ['Successful', 'Successful', 'Successful'])).toEqual([
      'Running',
      'Running',
      'Successful',
    ]);
  });

  it('fails once failures exceed failureLimit (0: the first failure)', () => {
    expect(phases(metric({ interval: '1m', count: 5 }), ['Successful', 'Failed'])).toEqual(['Running', 'Failed']);
    expect(phases(metric({ interval: '1m', count: 5, failureLimit: 2 }), ['Failed', 'Failed', 'Failed'])).toEqual([
      'Running',
      'Running',
      'Failed',
    ]);
  });

  it('is Inconclusive once inconclusives exceed inconclusiveLimit', () => {
    expect(
      phases(metric({ interval: '1m', count: 5, inconclusiveLimit: 1 }), ['Inconclusive', 'Inconclusive']),
    ).toEqual(['Running', 'Inconclusive']);
  });

  it('errs once consecutive errors exceed consecutiveErrorLimit (default 4: the fifth in a row)', () => {
    expect(phases(metric({ interval: '1m' }), ['Error', 'Error', 'Error', 'Error', 'Error'])).toEqual([
      'Running',
      'Running',
      'Running',
      'Running',
      'Error',
    ]);
  });

  it('resets the run of errors on any other measurement, and counts errors toward count', () => {
    const m = metric({ interval: '1m', count: 6, consecutiveErrorLimit: 1 });
    expect(phases(m, ['Error', 'Successful', 'Error', 'Successful', 'Error', 'Successful'])).toEqual([
      'Running',
      'Running',
      'Running',
      'Running',
      'Running',
      'Successful',
    ]);
    expect(phases(m, ['Error', 'Error'])).toEqual(['Running', 'Error']);
  });

  it('keeps the counts and the last measurement for status', () => {
    let t = emptyTally('m');
    const m = metric({ interval: '1m', count: 4, failureLimit: 3 });
    for (const phase of ['Successful', 'Failed', 'Inconclusive', 'Error'] as const) {
      t = tally(m, t, { phase, value: phase, message: `why ${phase}`, startedAt: 'a', finishedAt: 'b' });
    }
    expect(t).toMatchObject({
      count: 4,
      successful: 1,
      failed: 1,
      inconclusive: 1,
      error: 1,
      consecutiveError: 1,
      phase: 'Inconclusive',
      message: 'why Error',
    });
    expect(t.last?.value).toBe('Error');
  });
});
