/**
 * The server's settings (errors name the variable or flag) and its group label bound, without a process.
 */
import { describe, expect, it } from 'vitest';
import { MAX_GROUPS_PER_ATTRIBUTE, ServerMetrics } from '../../serving/metrics';
import { OptionsError, parseOptions } from '../../serving/options';
import { parseMetrics, total } from './fixtures';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseOptions', () => {
  it('reads the Deployment environment, with flags winning, and defaults to 127.0.0.1:8080', () => {
    const options = parseOptions(['--port=0', '--group-columns', 'sex, group'], {
      MODEL_DIR: '/mnt/models',
      MODEL_NAME: 'credit',
      MODEL_MANIFEST_DIGEST: DIGEST,
      LISTEN_PORT: '9000',
    });
    expect(options).toMatchObject({
      modelDir: '/mnt/models',
      modelName: 'credit',
      manifestDigest: 'a'.repeat(64),
      host: '127.0.0.1',
      port: 0,
      groupColumns: ['sex', 'group'],
      logRotateBytes: 64 * 1024 * 1024,
    });
    expect(parseOptions([], { MODEL_MANIFEST_DIGEST: DIGEST }).port).toBe(8080);
  });

  it.each([
    [[], { MODEL_MANIFEST_DIGEST: 'sha256:abc' }, /^MODEL_MANIFEST_DIGEST \(--manifest-digest\): not a sha256 digest/],
    [['--max-queue', '-1'], { MODEL_MANIFEST_DIGEST: DIGEST }, /^--max-queue: "-1" is not a whole number from 0/],
    [[], { MODEL_MANIFEST_DIGEST: DIGEST, LISTEN_PORT: '70000' }, /^LISTEN_PORT: "70000" is not a whole number/],
    [['--nope'], { MODEL_MANIFEST_DIGEST: DIGEST }, /^--nope: not a flag of the model server/],
    [['--port'], { MODEL_MANIFEST_DIGEST: DIGEST }, /^--port: give a value/],
    [[], { MODEL_MANIFEST_DIGEST: DIGEST, GROUP_COLUMNS: 'sex,sex' }, /^GROUP_COLUMNS: a column is listed twice/],
    [[], {}, /^MODEL_MANIFEST_DIGEST is not set/],
  ])('refuses %j %j naming the setting', (argv, env, message) => {
    expect(() => parseOptions(argv, env)).toThrow(OptionsError);
    expect(() => parseOptions(argv, env)).toThrow(message);
  });
});

describe('ServerMetrics', () => {
  it('keeps at most 50 groups per attribute and counts the rest as other', async () => {
    const metrics = new ServerMetrics('credit', '1.0.0', { manifestDigest: 'a'.repeat(64), backend: 'cpu' });
    const rows = 80;
    const groups = { zip: Array.from({ length: rows }, (_, i) => `z${i}`) };
    metrics.countPredictions(['0', '1'], new Uint8Array(rows).fill(1), groups);
    const samples = parseMetrics(await metrics.registry.metrics());
    const series = samples.filter((s) => s.name === 'modelserver_group_predictions_total');
    expect(series).toHaveLength(MAX_GROUPS_PER_ATTRIBUTE + 1);
    expect(total(samples, 'modelserver_group_predictions_total', { group: 'other', class: '1' })).toBe(rows - 50);
    expect(total(samples, 'modelserver_group_predictions_total', { attribute: 'zip' })).toBe(rows);
    expect(total(samples, 'modelserver_predictions_total', { class: '1' })).toBe(rows);
  });
});
