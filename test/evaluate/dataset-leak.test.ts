/**
 * An evaluation dataset is read only from the file roots of the source policy, and no message about a dataset
 * ever quotes what is in it: gate errors are shown by `mrel status` and the HTTP door to anyone who may look.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect } from 'vitest';
import { createEvaluationActivities, type BackendInfo } from '../../activities/evaluate';
import { readDataset } from '../../activities/evaluate/dataset';
import { loadPredictionTable } from '../../activities/evaluate/table';
import type { SourcePolicy } from '../../activities/common/source-policy';
import { readEvidenceBytes } from '../helpers/evidence';
import { gateInput, pinDataset, storeModel, test, useBackend } from './fixtures';

const EXAMPLE_MODEL = fileURLToPath(new URL('../../examples/models/credit-risk', import.meta.url));
const SECRET = 'SECRET_TOKEN=abc123def456ghi789';

let backend: BackendInfo;
beforeAll(async () => {
  backend = await useBackend();
});

const policyFor = (tmp: string): SourcePolicy => ({ roots: [join(tmp, 'data')], hosts: [], networks: [] });

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

async function readAll(path: string, columns: string[]): Promise<void> {
  for await (const _batch of readDataset(path, columns).batches) {
    // reading to the end is the point
  }
}

describe('the dataset of an evaluation', () => {
  test('at /proc/self/environ or outside the roots is refused: an error verdict that names the field', async ({
    tmp,
    storeRoot,
    store,
  }) => {
    await mkdir(join(tmp, 'data'), { recursive: true });
    const outside = join(tmp, 'elsewhere.csv');
    await writeFile(outside, `${SECRET}\n1\n`);
    // A release from before datasets were pinned names a path that the evaluation worker checks itself.
    const activities = createEvaluationActivities({ store, backend, sourcePolicy: policyFor(tmp) });
    const manifest = await storeModel(EXAMPLE_MODEL, storeRoot);
    const environ = await activities.evaluateFairness({
      ...gateInput(manifest, outside),
      request: {
        ...gateInput(manifest, outside).request,
        evaluation: { dataset: 'file:///proc/self/environ', label: 'approved', protected: ['group'], favorable: 1 },
      },
    });
    expect(environ.verdict).toBe('error');
    expect(environ.findings).toEqual([
      expect.objectContaining({
        ruleId: 'fairness.cannot-evaluate',
        location: 'SourceNotAllowed',
        severity: 'high',
        waivable: false,
      }),
    ]);
    expect(environ.summary).toMatch(/evaluation\.dataset: \/proc\/self\/environ is under \/proc, which is never/);
    for (const value of Object.values(process.env)) {
      if (value && value.length >= 12) expect(JSON.stringify(environ)).not.toContain(value);
    }

    for (const gate of [activities.evaluateFairness, activities.evaluateRobustness, activities.explainModel]) {
      const result = await gate(gateInput(manifest, outside));
      expect(result.verdict).toBe('error');
      expect(result.findings).toEqual([expect.objectContaining({ location: 'SourceNotAllowed', waivable: false })]);
      expect(result.summary).toMatch(/evaluation\.dataset: .*elsewhere\.csv is outside the allowed file roots/);
      expect(JSON.stringify(result)).not.toContain('abc123');
    }
  });

  test('whose header is secret-looking text and lacks the label: the error does not contain it', async ({
    tmp,
    storeRoot,
    store,
  }) => {
    const dataset = join(tmp, 'data', 'secret.csv');
    await mkdir(join(tmp, 'data'), { recursive: true });
    await writeFile(dataset, `${SECRET}\nvalue\n`);
    const activities = createEvaluationActivities({ store, backend, sourcePolicy: policyFor(tmp) });
    const manifest = await storeModel(EXAMPLE_MODEL, storeRoot);
    // Pinned in the store (as releases are now) and as a plain path (as older releases named it): the same answer.
    const pinned = await pinDataset(storeRoot, dataset);
    for (const input of [gateInput(manifest, dataset, { dataset: pinned }), gateInput(manifest, dataset)]) {
      const result = await activities.evaluateFairness(input);
      expect(result.verdict).toBe('error');
      expect(result.summary).toMatch(/column \w+: not in the CSV header \(missing: .*; the header has 1 column\)/);
      expect(JSON.stringify(result)).not.toContain('abc123');
      expect((await readEvidenceBytes(store, result.evidence)).toString('utf8')).not.toContain('abc123');
    }

    const direct = await rejection(readAll(dataset, ['approved']));
    expect(direct.message).toBe('column approved: not in the CSV header (missing: approved; the header has 1 column)');
  });

  test('plain column names are still listed when a column is missing', async ({ tmp }) => {
    const dataset = join(tmp, 'plain.csv');
    await writeFile(dataset, 'income,debt ratio,group\n1,2,a\n');
    const error = await rejection(readAll(dataset, ['approved']));
    expect(error.message).toBe(
      'column approved: not in the CSV header (missing: approved; header: income, debt ratio, group)',
    );
  });
});

describe('messages about bad rows name the place, never the content', () => {
  test.for([
    [
      'an unclosed quote',
      `a,b\n1,"${SECRET}\n`,
      /^row 1: malformed CSV \(line \d+ of the file\): a quoted field is never closed$/,
    ],
    [
      'a short row',
      `a,b\n1,2\n${SECRET}\n`,
      /^row 2: malformed CSV .*: the row has a different number of fields than the header$/,
    ],
    [
      'text after a closing quote',
      `a,b\n1,"x"${SECRET}\n`,
      /^row 1: malformed CSV .*: a character follows a closing quote/,
    ],
  ] as const)('CSV with %s', async ([, content, message], { tmp }) => {
    const path = join(tmp, 'bad.csv');
    await writeFile(path, content);
    const error = await rejection(readAll(path, ['a', 'b']));
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('abc123');
  });

  test('JSON Lines that do not parse, or hold an object where a value belongs', async ({ tmp }) => {
    const path = join(tmp, 'bad.jsonl');
    await writeFile(path, `{"a": 1}\n{"a": ${SECRET}}\n`);
    const error = await rejection(readAll(path, ['a']));
    expect(error.message).toMatch(/^row 2: not valid JSON( \(at character \d+\))?$/);

    await writeFile(path, `{"a": {"token": "${SECRET}"}}\n`);
    const nested = await rejection(readAll(path, ['a']));
    expect(nested.message).toBe('column a row 1: expected a number or a string, got an object');
  });

  test('cell values that are not outcomes or numbers are not quoted', async ({ tmp }) => {
    const path = join(tmp, 'predictions.csv');
    await writeFile(path, `label,prediction,group\n1,0,a\n0,1,b\n${SECRET},1,a\n`);
    const third = await rejection(
      loadPredictionTable(path, { label: 'label', prediction: 'prediction', favorable: 1, protected: ['group'] }),
    );
    expect(third.message).toBe('column label row 3: the value is a third distinct outcome; binary outcomes only');

    await writeFile(path, `label,prediction,group\n${SECRET},x,a\n`);
    const favorable = await rejection(
      loadPredictionTable(path, { label: 'label', prediction: 'prediction', favorable: 1, protected: ['group'] }),
    );
    expect(favorable.message).not.toContain('abc123');
    expect(favorable.message).toContain('label: 1 distinct');
  });
});
