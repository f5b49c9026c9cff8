/**
 * The inference log reader on logs written in the server's format (common to serving/ and the providers): one
 * release's requests since the window opened, in file name order, feedback joined by request id, and every line it
 * could not use skipped and counted, never quoted.
 */
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  emptyStats,
  InferenceLogError,
  MAX_LINE_BYTES,
  readInferenceLog,
  type InferenceRecord,
  type LogReadStats,
  type ReadLogOptions,
} from '../../activities/monitor/inference-log';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const RELEASE = { model: 'credit', version: '1.2.0', manifestDigest: DIGEST };
const WINDOW = '2026-12-01T10:00:00.000Z';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-inference-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function request(id: string, time: string, rows: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    time,
    ...RELEASE,
    rows,
    inputs: { age: Array.from({ length: rows }, (_, i) => 30 + i), city: Array.from({ length: rows }, () => 'x') },
    predictions: Array.from({ length: rows }, (_, i) => i % 2),
    ...extra,
  };
}

const lines = (records: unknown[]): string => records.map((r) => `${JSON.stringify(r)}\n`).join('');

async function readAll(
  options: Partial<ReadLogOptions> = {},
): Promise<{ records: InferenceRecord[]; stats: LogReadStats }> {
  const stats = emptyStats();
  const records: InferenceRecord[] = [];
  for await (const r of readInferenceLog({ dir, release: RELEASE, since: WINDOW, ...options }, stats)) records.push(r);
  return { records, stats };
}

describe('readInferenceLog', () => {
  it("reads the release's requests since the window opened, files in name order (seq as a number)", async () => {
    await writeFile(
      join(dir, 'inference-1764583200000-42-10.jsonl'),
      lines([request('r5', '2026-12-01T10:07:00Z', 1)]),
    );
    await writeFile(
      join(dir, 'inference-1764583200000-42-2.jsonl'),
      lines([request('r3', '2026-12-01T10:05:00Z', 2), request('r4', '2026-12-01T10:06:00Z', 1)]),
    );
    await writeFile(
      join(dir, 'inference-1764583200000-42-1.jsonl'),
      lines([
        request('r0', '2026-12-01T09:59:59Z', 3),
        request('r1', '2026-12-01T10:01:00Z', 3),
        request('other-version', '2026-12-01T10:02:00Z', 3, { version: '1.1.0' }),
        request('other-digest', '2026-12-01T10:02:00Z', 3, { manifestDigest: `sha256:${'b'.repeat(64)}` }),
        request('r2', '2026-12-01T10:03:00Z', 4),
      ]),
    );
    // Not the server's files: left alone.
    await writeFile(join(dir, 'notes.txt'), 'not a log\n');
    await writeFile(join(dir, 'inference-old.jsonl.gz'), 'binary');

    const { records, stats } = await readAll();
    expect(records.map((r) => r.id)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(records[1]!.inputs.age).toEqual([30, 31, 32, 33]);
    expect(stats).toMatchObject({
      files: 3,
      lines: 8,
      records: 5,
      rows: 11,
      beforeWindow: 1,
      otherReleases: 2,
      unparseable: 0,
      invalid: 0,
    });
  });

  it('skips and counts corrupt lines and requests that do not fit the format', async () => {
    await writeFile(
      join(dir, 'inference-1-1-1.jsonl'),
      lines([request('good-1', '2026-12-01T10:01:00Z', 2)]) +
        '{"id":"broken", "secret-token-123\n' +
        '[1,2,3]\n' +
        '\n' +
        lines([
          request('short-inputs', '2026-12-01T10:01:00Z', 2, { inputs: { age: [1] } }),
          request('no-predictions', '2026-12-01T10:01:00Z', 2, { predictions: undefined }),
          request('bad-time', 'yesterday', 2),
          request('good-2', '2026-12-01T10:02:00Z', 1),
        ]),
    );
    const { records, stats } = await readAll();
    expect(records.map((r) => r.id)).toEqual(['good-1', 'good-2']);
    expect(stats.unparseable).toBe(2);
    expect(stats.invalid).toBe(3);
    expect(JSON.stringify(stats)).not.toContain('secret');
  });

  it('refuses a line over 16 MiB without holding or echoing it, and reads on', async () => {
    const path = join(dir, 'inference-1-1-1.jsonl');
    await writeFile(path, lines([request('before', '2026-12-01T10:01:00Z', 1)]));
    const huge = request('huge', '2026-12-01T10:01:00Z', 1, {
      inputs: { age: ['secret-' + 'x'.repeat(MAX_LINE_BYTES)] },
    });
    await appendFile(path, `${JSON.stringify(huge)}\n`);
    await appendFile(path, lines([request('after', '2026-12-01T10:02:00Z', 1)]));

    const { records, stats } = await readAll();
    expect(records.map((r) => r.id)).toEqual(['before', 'after']);
    expect(stats.oversized).toBe(1);
    expect(stats.unparseable).toBe(0);
  });

  it('takes a last line still being written as partial, not as corrupt', async () => {
    const path = join(dir, 'inference-1-1-1.jsonl');
    await writeFile(path, lines([request('done', '2026-12-01T10:01:00Z', 1)]) + '{"id":"half-writ');
    const { records, stats } = await readAll();
    expect(records.map((r) => r.id)).toEqual(['done']);
    expect(stats).toMatchObject({ partial: 1, unparseable: 0 });
  });

  it('joins the feedback by request id and counts what it could not join', async () => {
    await writeFile(
      join(dir, 'inference-1-1-1.jsonl'),
      lines([
        request('a', '2026-12-01T10:01:00Z', 2),
        request('b', '2026-12-01T10:01:00Z', 2),
        request('c', '2026-12-01T10:01:00Z', 2),
      ]),
    );
    await writeFile(
      join(dir, 'feedback-1-1-1.jsonl'),
      lines([
        { id: 'a', time: '2026-12-01T11:00:00Z', labels: [0, 0] },
        { id: 'b', time: '2026-12-01T11:00:00Z', labels: [1] },
        { id: 'someone-else', time: '2026-12-01T11:00:00Z', labels: [1] },
        { id: 'too-early', time: '2026-12-01T09:00:00Z', labels: [1] },
        { id: 'c', time: '2026-12-01T11:00:00Z', labels: [{ nested: true }] },
      ]) + 'not json\n',
    );
    await writeFile(
      join(dir, 'feedback-1-1-2.jsonl'),
      lines([{ id: 'a', time: '2026-12-01T12:00:00Z', labels: [1, 0] }]),
    );

    const { records, stats } = await readAll({ feedback: true });
    expect(records.map((r) => [r.id, r.labels])).toEqual([
      ['a', [1, 0]],
      ['b', undefined],
      ['c', undefined],
    ]);
    expect(stats.feedback).toMatchObject({
      files: 2,
      matched: 1,
      mismatched: 1,
      unmatched: 1,
      invalid: 1,
      unparseable: 1,
    });
  });

  it('keeps the feedback map bounded and counts what it dropped', async () => {
    await writeFile(
      join(dir, 'inference-1-1-1.jsonl'),
      lines([request('a', '2026-12-01T10:01:00Z', 2), request('b', '2026-12-01T10:01:00Z', 2)]),
    );
    await writeFile(
      join(dir, 'feedback-1-1-1.jsonl'),
      lines([
        { id: 'a', time: '2026-12-01T11:00:00Z', labels: [1, 1] },
        { id: 'b', time: '2026-12-01T11:00:00Z', labels: [1, 1] },
      ]),
    );
    const { records, stats } = await readAll({ feedback: true, maxFeedbackRows: 3 });
    expect(records.map((r) => r.labels)).toEqual([[1, 1], undefined]);
    expect(stats.feedback.dropped).toBe(1);
  });

  it('names the setting when the directory is not configured or not there', async () => {
    await expect(readAll({ dir: undefined })).rejects.toThrow(/set MREL_INFERENCE_LOG_DIR/);
    const missing = join(dir, 'nope');
    const err = await readAll({ dir: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceLogError);
    expect((err as Error).message).toContain(`${missing} (MREL_INFERENCE_LOG_DIR) cannot be read (ENOENT)`);
  });
});
