/**
 * The drift provider on an inference log written in the server's format and an evaluation dataset in a real
 * filesystem artifact store: per feature it must give the same numbers as `mrel drift` on the equivalent CSVs (one
 * code path), find the drift that was put in, none where there is none, and be inconclusive on too few rows.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../../../client/commands/drift';
import type { MeasureInput, MonitorMetric } from '../../../contract/monitoring';
import { SeededRandom } from '../../../activities/evaluate/random';
import { measureDrift, type MonitorDataDeps } from '../../../activities/monitor/drift/provider';
import { FilesystemStore } from '../../../activities/store/filesystem';
import { runCommand } from '../../helpers/command';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const LABELS = {
  releaseId: 'credit-1.2.0-prod',
  model: 'credit',
  version: '1.2.0',
  environment: 'prod',
  manifestDigest: DIGEST,
};
const WINDOW = '2026-12-01T10:00:00.000Z';
const CITIES = ['north', 'south', 'east', 'west'];

interface Row {
  age: number;
  income: number;
  city: string;
}

let root: string;
let store: FilesystemStore;
let referenceBlob: { sha256: string; size: number };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mrel-drift-provider-'));
  store = new FilesystemStore(join(root, 'store'));
  const reference = rowsOf(600, 1, { ageShift: 0, cityWeights: [4, 3, 2, 1] });
  referenceBlob = await store.putBytes(csv(reference), { path: 'evaluation.csv' });
  await writeFile(join(root, 'reference.csv'), csv(reference));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Seeded rows: age normal(40 + shift, 10), income log-normal, city by weights (label and group columns too). */
function rowsOf(n: number, seed: number, how: { ageShift: number; cityWeights: number[] }): Row[] {
  const rng = new SeededRandom(seed);
  const normal = (): number => {
    const u = 1 - rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  };
  const total = how.cityWeights.reduce((a, b) => a + b, 0);
  return Array.from({ length: n }, () => {
    let u = rng.next() * total;
    const k = how.cityWeights.findIndex((w) => (u -= w) < 0);
    return {
      age: Math.round((40 + how.ageShift + 10 * normal()) * 100) / 100,
      income: Math.round(Math.exp(10 + 0.5 * normal())),
      city: CITIES[k === -1 ? CITIES.length - 1 : k]!,
    };
  });
}

function csv(rows: Row[]): string {
  // The evaluation dataset also holds the label and the protected column: drift compares the model's inputs only.
  return `age,income,city,approved,sex\n${rows.map((r) => `${r.age},${r.income},${r.city},1,f`).join('\n')}\n`;
}

/** Writes the rows as the server would: requests of `batch` rows over two files, with another release's traffic. */
async function writeLog(dir: string, rows: Row[], batch = 7): Promise<void> {
  const files: string[][] = [[], []];
  for (let start = 0, n = 0; start < rows.length; start += batch, n++) {
    const part = rows.slice(start, start + batch);
    const time = new Date(Date.parse(WINDOW) + 1000 * (n + 1)).toISOString();
    files[start < rows.length / 2 ? 0 : 1]!.push(
      JSON.stringify({
        id: `req-${n}`,
        time,
        ...LABELS,
        rows: part.length,
        inputs: { age: part.map((r) => r.age), income: part.map((r) => r.income), city: part.map((r) => r.city) },
        groups: { sex: part.map(() => 'f') },
        predictions: part.map(() => 1),
      }),
    );
  }
  // Traffic of the version before: served by the same server, never compared.
  files[1]!.push(
    JSON.stringify({
      id: 'old',
      time: new Date(Date.parse(WINDOW) + 5000).toISOString(),
      ...LABELS,
      version: '1.1.0',
      rows: 1,
      inputs: { age: [999], income: [1], city: ['mars'] },
      predictions: [0],
    }),
  );
  files[1]!.push('{"corrupt');
  await writeFile(join(dir, 'inference-1764583200000-7-1.jsonl'), `${files[0]!.join('\n')}\n`);
  await writeFile(join(dir, 'inference-1764583200000-7-2.jsonl'), `${files[1]!.join('\n')}\n`);
}

function metric(drift: Extract<MonitorMetric['provider'], { drift: unknown }>['drift'] = {}): MonitorMetric {
  return {
    name: 'data-drift',
    provider: { drift },
    args: {},
    failureLimit: 0,
    inconclusiveLimit: 0,
    consecutiveErrorLimit: 4,
  };
}

function input(m: MonitorMetric = metric()): MeasureInput {
  return {
    metric: m,
    labels: LABELS,
    windowStart: WINDOW,
    index: 1,
    baseline: {
      dataset: { ...referenceBlob, source: 'file:///data/evaluation.csv' },
      protected: ['sex'],
      fairness: {},
      biasDriftThreshold: 0.05,
    },
  };
}

async function logOf(rows: Row[], name: string): Promise<{ deps: MonitorDataDeps; currentCsv: string }> {
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeLog(dir, rows);
  const currentCsv = join(root, `${name}.csv`);
  await writeFile(currentCsv, csv(rows));
  return { deps: { logDir: dir, store }, currentCsv };
}

async function cliReport(currentCsv: string): Promise<{ columns: Record<string, unknown>; driftedShare: number }> {
  const run = await runCommand(register, [
    'drift',
    '--reference',
    join(root, 'reference.csv'),
    '--current',
    currentCsv,
    '--columns',
    'age,income,city',
    '--format',
    'json',
  ]);
  expect(run.err).toBe('');
  return JSON.parse(run.out) as { columns: Record<string, unknown>; driftedShare: number };
}

type DriftResult = {
  columns: Record<string, { drifted: boolean; method: string; threshold: number }>;
  driftedShare: number;
  datasetDrift: boolean;
  rows: { reference: number; current: number };
  log: Record<string, number>;
};

describe('measureDrift', () => {
  it('finds drifted inputs, with the same per-feature numbers as mrel drift on the same rows', async () => {
    const rows = rowsOf(400, 2, { ageShift: 8, cityWeights: [1, 2, 3, 4] });
    const { deps, currentCsv } = await logOf(rows, 'drifted');
    const outcome = await measureDrift(input(), deps);
    expect(outcome.inconclusive).toBeUndefined();
    const result = JSON.parse(JSON.stringify(outcome.result)) as DriftResult;
    const cli = await cliReport(currentCsv);
    expect(result.columns).toEqual(cli.columns);
    expect(result.driftedShare).toBe(cli.driftedShare);
    expect(result.columns.age!.drifted).toBe(true);
    expect(result.columns.city!.drifted).toBe(true);
    expect(result.columns.income!.drifted).toBe(false);
    expect(result.datasetDrift).toBe(true);
    expect(result.rows).toEqual({ reference: 600, current: 400 });
    expect(result.log).toMatchObject({ files: 2, unparseable: 1, otherReleases: 1 });
    expect(outcome.value).toBe('2/3 features drifted (0.67): dataset drift');
  });

  it('finds no drift where the live inputs follow the evaluation data', async () => {
    const rows = rowsOf(500, 3, { ageShift: 0, cityWeights: [4, 3, 2, 1] });
    const { deps, currentCsv } = await logOf(rows, 'undrifted');
    const outcome = await measureDrift(input(), deps);
    const result = JSON.parse(JSON.stringify(outcome.result)) as DriftResult;
    expect(result.datasetDrift).toBe(false);
    expect(Object.values(result.columns).filter((c) => c.drifted)).toEqual([]);
    expect(result.columns).toEqual((await cliReport(currentCsv)).columns);
    expect(outcome.value).toBe('0/3 features drifted (0.00)');
  });

  it('is inconclusive below minRows, and says why', async () => {
    const { deps } = await logOf(rowsOf(60, 4, { ageShift: 0, cityWeights: [1, 1, 1, 1] }), 'few');
    const outcome = await measureDrift(input(metric({ minRows: 100 })), deps);
    expect(outcome.inconclusive).toMatch(/only 60 rows of credit@1\.2\.0 logged since .*at least 100/);
    expect(outcome.result).toMatchObject({ rows: { current: 60 } });
  });

  it('is inconclusive when nothing of the release was logged in the window', async () => {
    const dir = join(root, 'empty-log');
    await mkdir(dir, { recursive: true });
    const outcome = await measureDrift(input(), { logDir: dir, store });
    expect(outcome.inconclusive).toMatch(/no request of credit@1\.2\.0/);
  });

  it("applies the provider's per-feature overrides and categorical columns, and refuses a wrong one", async () => {
    const rows = rowsOf(300, 5, { ageShift: 0, cityWeights: [4, 3, 2, 1] });
    const { deps } = await logOf(rows, 'overrides');
    const outcome = await measureDrift(
      input(
        metric({
          columns: ['age', 'city'],
          overrides: { age: { method: 'wasserstein', threshold: 0.0001 } },
        }),
      ),
      deps,
    );
    const result = outcome.result as DriftResult;
    expect(Object.keys(result.columns)).toEqual(['age', 'city']);
    expect(result.columns.age).toMatchObject({ method: 'wasserstein', threshold: 0.0001, drifted: true });
    await expect(measureDrift(input(metric({ overrides: { age: { method: 'magic' } } })), deps)).rejects.toThrow(
      /monitor\.drift\.features\.age\.method/,
    );
  });

  it('says what to set when the worker has no log directory, and needs a pinned dataset', async () => {
    await expect(measureDrift(input(), { logDir: undefined, store })).rejects.toThrow(/MREL_INFERENCE_LOG_DIR/);
    const noDataset = { ...input(), baseline: { ...input().baseline!, dataset: undefined } };
    await expect(measureDrift(noDataset, { logDir: root, store })).rejects.toThrow(/pinned no evaluation dataset/);
  });
});
