/** The seasonal forecast recovers generated seasonal traffic within a stated error. */
import { describe, expect, it } from 'vitest';
import {
  chooseSeason,
  forecastErrors,
  forecastSeries,
  ForecastUnavailable,
  seasonalNaiveErrors,
  WEEK_SECONDS,
} from '../../activities/cost/forecast';
import { seasonalHistory } from './series';

describe('forecastSeries', () => {
  it('recovers a daily + weekly seasonal series: held-out MAPE under 5%, peak within 5% of the truth', () => {
    const { startMs, values, truth } = seasonalHistory({ weeks: 5, noise: 0.03 });
    const f = forecastSeries({ startMs, stepSeconds: 3600, values }, { horizonDays: 14 });
    expect(f.season).toBe('weekly');
    expect(f.seasonLength).toBe(168);
    expect(f.holdout.points).toBe(168);
    expect(f.holdout.mape).toBeLessThan(0.05);
    expect(f.holdout.smape).toBeLessThan(0.03);
    // The true peak of the pattern is 150 req/s (weekday, hour 6).
    let truePeak = 0;
    for (let i = 0; i < 168; i++) truePeak = Math.max(truePeak, truth(values.length + i));
    expect(truePeak).toBeCloseTo(150, 6);
    expect(Math.abs(f.horizon.peak - truePeak) / truePeak).toBeLessThan(0.05);
    expect(Math.abs(f.horizon.mean - 90.0) / 90).toBeLessThan(0.05);
  });

  it('follows a growing trend instead of repeating last week', () => {
    const { startMs, values } = seasonalHistory({ weeks: 5, noise: 0.03 });
    // +1.2 req/s a day: last week's values are ~8 req/s short by the held-out week.
    const growing = values.map((v, i) => v + i * 0.05);
    const f = forecastSeries({ startMs, stepSeconds: 3600, values: growing }, { horizonDays: 7 });
    const naive = seasonalNaiveErrors({ startMs, stepSeconds: 3600, values: growing }, WEEK_SECONDS);
    expect(f.holdout.rmse).toBeLessThan(0.6 * naive.rmse);
  });

  it('falls back to a daily season when the history holds under two weeks of training', () => {
    const { startMs, values } = seasonalHistory({ weeks: 1 });
    const f = forecastSeries({ startMs, stepSeconds: 3600, values }, { horizonDays: 2 });
    expect(f.season).toBe('daily');
    expect(f.seasonLength).toBe(24);
  });

  it('says why when the history is too short for any season', () => {
    const short = { startMs: 0, stepSeconds: 3600, values: new Array(30).fill(5) };
    expect(() => chooseSeason(short, 0.2, 'auto')).toThrow(ForecastUnavailable);
    expect(() => forecastSeries(short)).toThrow(/spans 1\.3 days; a daily seasonal forecast needs at least two days/);
  });

  it('stops when cancelled', () => {
    const { startMs, values } = seasonalHistory({ weeks: 5 });
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    expect(() => forecastSeries({ startMs, stepSeconds: 3600, values }, { signal: controller.signal })).toThrow(
      'cancelled',
    );
  });
});

describe('forecastErrors', () => {
  it('computes MAPE over non-zero actuals, sMAPE and RMSE', () => {
    const e = forecastErrors([100, 200, 0], [110, 180, 0]);
    expect(e.mape).toBeCloseTo((0.1 + 0.1) / 2, 10);
    expect(e.smape).toBeCloseTo((10 / 210 + 20 / 380 + 0) / 3, 10);
    expect(e.rmse).toBeCloseTo(Math.sqrt((100 + 400) / 3), 10);
  });
});
