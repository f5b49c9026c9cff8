/**
 * measureMetric around its providers: what lands in history is bounded, provider failures are Error measurements
 * (drift and bias included), and only an input no workflow should send throws.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundResult, measureMetric, MAX_RESULT_BYTES } from '../../../activities/monitor/analysis/measure';
import { FilesystemStore } from '../../../activities/store';
import type { MeasureInput, MonitorMetric } from '../../../contract/monitoring';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-measure-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function input(provider: MonitorMetric['provider'], fields: Partial<MeasureInput> = {}): MeasureInput {
  return {
    metric: {
      name: 'm',
      provider,
      args: {},
      successCondition: '!result.datasetDrift',
      failureLimit: 0,
      inconclusiveLimit: 0,
      consecutiveErrorLimit: 4,
    },
    labels: {
      releaseId: 'credit@1.0.0/staging',
      model: 'credit',
      version: '1.0.0',
      environment: 'staging',
      manifestDigest: `sha256:${'a'.repeat(64)}`,
    },
    windowStart: '2026-01-01T00:00:00.000Z',
    index: 1,
    ...fields,
  };
}

describe('a measurement in history', () => {
  it('keeps its result within 8 KiB, saying how much it left out', () => {
    const long = Array.from({ length: 5000 }, (_, i) => i + 0.5);
    const bounded = boundResult(long) as unknown[];
    expect(JSON.stringify(bounded).length).toBeLessThanOrEqual(MAX_RESULT_BYTES);
    expect(bounded[0]).toBe(0.5);
    expect(bounded.at(-1)).toMatch(/^… \d+ more$/);
    const nested = boundResult({
      datasetDrift: true,
      columns: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`feature_${i}`, { psi: i, drifted: true }])),
    }) as Record<string, unknown>;
    expect(JSON.stringify(nested).length).toBeLessThanOrEqual(MAX_RESULT_BYTES);
    expect(nested.datasetDrift).toBe(true);
    expect((nested.columns as Record<string, unknown>)['…']).toMatch(/^\d+ more$/);
    expect(boundResult([NaN, Infinity, 1])).toEqual(['NaN', '+Inf', 1]);
    expect(boundResult({ a: 1 })).toEqual({ a: 1 });
  });

  it('is an Error measurement when drift or bias cannot measure, naming what to fix', async () => {
    const store = new FilesystemStore(join(dir, 'store'));
    const drift = await measureMetric(input({ drift: {} }), { store, inferenceLogDir: join(dir, 'log') });
    expect(drift.phase).toBe('Error');
    expect(drift.message).toMatch(/pinned no evaluation dataset/);
    const noStore = await measureMetric(input({ drift: {} }), { inferenceLogDir: join(dir, 'log') });
    expect([noStore.phase, noStore.message]).toEqual(['Error', 'data drift needs the artifact store on this worker']);
    const bias = await measureMetric(input({ bias: {} }), { store, inferenceLogDir: join(dir, 'log') });
    expect(bias.phase).toBe('Error');
    expect(bias.message).toMatch(/protected attributes/);
  });

  it('refuses an input no workflow should send, naming the fields', async () => {
    const bad = input({ prometheus: { address: 'file:///etc/passwd', query: 'up' } }, { index: 0 });
    await expect(measureMetric(bad)).rejects.toThrow(
      'invalid measurement input: metric.provider.prometheus.address: must be an http(s) URL; index: must be a whole number ≥ 1',
    );
  });
});
