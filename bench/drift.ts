/**
 * `mrel drift` against Evidently's DataDriftPreset on the same CSVs, in the same run: 1,000,000 rows × 20 features
 * (12 numerical, 8 categorical; 4 numerical and 2 categorical of them drifted), generated seeded into a temp dir.
 * Prints the time of the library function (driftReport, in this process), of the CLI (a child process, with its peak
 * RSS) and of Evidently (reading the CSVs with pandas included, as ours includes parsing), the ratios (target: ours
 * ≥ 5× faster) and whether every per-feature drift decision agrees (the disagreements are listed).
 *
 *   npx tsx bench/drift.ts [--rows 1000000] [--keep]
 *
 * Evidently is installed into the project venv on first use (`.venv/bin/pip install evidently`); Evidently 0.7 does
 * not import under pandas 3, so pandas 2 goes into .venv/bench-pandas2 and only this benchmark puts it on PYTHONPATH.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { SeededRandom } from '../activities/evaluate/random';
import { driftReport, type DriftReport } from '../activities/monitor/drift/report';

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const PANDAS2 = join(REPO, '.venv', 'bench-pandas2');
const EVIDENTLY = join(REPO, 'bench', 'drift-evidently.py');

/** A feature: how to draw one value in the reference and in the current data. */
interface Feature {
  name: string;
  type: 'numerical' | 'categorical';
  reference: (rng: Draw) => string;
  current: (rng: Draw) => string;
  drifted: boolean;
}

class Draw {
  private spare: number | undefined;
  constructor(readonly rng: SeededRandom) {}
  uniform(): number {
    return this.rng.next();
  }
  /** Box–Muller, both values used. */
  normal(mean = 0, sd = 1): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return mean + sd * z;
    }
    const u = 1 - this.rng.next();
    const v = this.rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + sd * r * Math.cos(2 * Math.PI * v);
  }
  category(weights: readonly number[]): string {
    let u = this.rng.next() * weights.reduce((a, b) => a + b, 0);
    for (let k = 0; k < weights.length; k++) {
      u -= weights[k]!;
      if (u < 0) return `k${k}`;
    }
    return `k${weights.length - 1}`;
  }
}

const num = (v: number): string => v.toFixed(5);
const same = (name: string, type: Feature['type'], draw: (d: Draw) => string): Feature => ({
  name,
  type,
  reference: draw,
  current: draw,
  drifted: false,
});
const uniformWeights = (k: number): number[] => Array.from({ length: k }, () => 1);

const FEATURES: Feature[] = [
  {
    name: 'x0',
    type: 'numerical',
    reference: (d) => num(d.normal()),
    current: (d) => num(d.normal(0.5)),
    drifted: true,
  },
  {
    name: 'x1',
    type: 'numerical',
    reference: (d) => num(d.normal()),
    current: (d) => num(d.normal(0, 2)),
    drifted: true,
  },
  {
    name: 'x2',
    type: 'numerical',
    reference: (d) => num(-Math.log(1 - d.uniform())),
    current: (d) => num(-1.6 * Math.log(1 - d.uniform())),
    drifted: true,
  },
  {
    name: 'x3',
    type: 'numerical',
    reference: (d) => num(100 * d.uniform()),
    current: (d) => num(20 + 100 * d.uniform()),
    drifted: true,
  },
  same('x4', 'numerical', (d) => num(d.normal())),
  same('x5', 'numerical', (d) => num(d.normal(50, 10))),
  same('x6', 'numerical', (d) => num(Math.exp(d.normal(0, 0.5)))),
  same('x7', 'numerical', (d) => num(d.uniform())),
  same('x8', 'numerical', (d) => String(Math.floor(51 * d.uniform()))),
  same('x9', 'numerical', (d) => num(-3 * Math.log(1 - d.uniform()))),
  same('x10', 'numerical', (d) => num(d.normal(-2, 0.1))),
  same('x11', 'numerical', (d) => num(1000 * d.uniform() ** 2)),
  {
    name: 'c0',
    type: 'categorical',
    reference: (d) => d.category([0.5, 0.3, 0.2]),
    current: (d) => d.category([0.2, 0.3, 0.5]),
    drifted: true,
  },
  {
    name: 'c1',
    type: 'categorical',
    reference: (d) => d.category(uniformWeights(10)),
    current: (d) => d.category([6, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    drifted: true,
  },
  same('c2', 'categorical', (d) => d.category([0.9, 0.1])),
  same('c3', 'categorical', (d) => d.category(uniformWeights(5))),
  same('c4', 'categorical', (d) => d.category(uniformWeights(50))),
  same('c5', 'categorical', (d) => d.category([5, 4, 3, 2, 1])),
  same('c6', 'categorical', (d) => d.category(uniformWeights(20))),
  same('c7', 'categorical', (d) => d.category([0.6, 0.25, 0.1, 0.05])),
];

async function writeCsv(path: string, rows: number, side: 'reference' | 'current', seed: number): Promise<void> {
  const draw = new Draw(new SeededRandom(seed));
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  const flush = (text: string): Promise<void> | undefined =>
    out.write(text) ? undefined : new Promise((resolve) => out.once('drain', resolve));
  await flush(`${FEATURES.map((f) => f.name).join(',')}\n`);
  let chunk: string[] = [];
  for (let r = 0; r < rows; r++) {
    chunk.push(FEATURES.map((f) => f[side](draw)).join(','));
    if (chunk.length === 10_000 || r === rows - 1) {
      await flush(`${chunk.join('\n')}\n`);
      chunk = [];
    }
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** Installs Evidently (and pandas 2 beside the venv) when it cannot be imported yet. */
async function ensureEvidently(): Promise<void> {
  const env = { ...process.env, PYTHONPATH: PANDAS2 };
  try {
    await exec(PYTHON, ['-W', 'ignore', '-c', 'import evidently.presets'], { env });
    return;
  } catch {
    console.log('installing evidently into .venv (and pandas 2 into .venv/bench-pandas2) …');
  }
  const pip = join(REPO, '.venv', 'bin', 'pip');
  await exec(pip, ['install', '--quiet', 'evidently'], { maxBuffer: 16 << 20 });
  await exec(pip, ['install', '--quiet', '--target', PANDAS2, '--no-deps', 'pandas>=2.2,<3', 'pytz'], {
    maxBuffer: 16 << 20,
  });
  await exec(PYTHON, ['-W', 'ignore', '-c', 'import evidently.presets'], { env });
}

interface EvidentlyRun {
  seconds: number;
  readSeconds: number;
  columns: Record<string, { method: string; score: number; threshold: number; drifted: boolean }>;
  driftedShare: number;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rows: { type: 'string', default: '1000000' }, keep: { type: 'boolean', default: false } },
  });
  const rows = Number(values.rows);
  if (!Number.isInteger(rows) || rows < 10) throw new Error('--rows must be a whole number ≥ 10');
  await ensureEvidently();
  const dir = await mkdtemp(join(tmpdir(), 'mrel-bench-drift-'));
  try {
    const reference = join(dir, 'reference.csv');
    const current = join(dir, 'current.csv');
    let t = performance.now();
    await writeCsv(reference, rows, 'reference', 20261201);
    await writeCsv(current, rows, 'current', 20261202);
    console.log(`generated ${rows} rows × ${FEATURES.length} features twice in ${seconds(performance.now() - t)}`);
    const categorical = FEATURES.filter((f) => f.type === 'categorical').map((f) => f.name);
    const numerical = FEATURES.filter((f) => f.type === 'numerical').map((f) => f.name);

    t = performance.now();
    const ours: DriftReport = await driftReport({ reference, current, categorical });
    const libraryMs = performance.now() - t;

    // The CLI as a user runs it; /usr/bin/time reports its peak RSS.
    t = performance.now();
    const cli = await exec(
      '/usr/bin/time',
      [
        '-f',
        'maxrss_kb=%M',
        process.execPath,
        join(REPO, 'bin', 'mrel.js'),
        'drift',
        '--reference',
        reference,
        '--current',
        current,
        '--categorical',
        categorical.join(','),
        '--format',
        'json',
      ],
      { maxBuffer: 16 << 20 },
    ).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
      // Exit 1 is "dataset drift", a result.
      if (err.code === 1 && err.stdout) return { stdout: err.stdout, stderr: err.stderr ?? '' };
      throw err;
    });
    const cliMs = performance.now() - t;
    const cliRssMb = Number(/maxrss_kb=(\d+)/.exec(cli.stderr)?.[1] ?? Number.NaN) / 1024;
    const cliReport = JSON.parse(cli.stdout) as DriftReport;

    t = performance.now();
    const evidentlyRun = await exec(
      PYTHON,
      [EVIDENTLY, reference, current, numerical.join(','), categorical.join(',')],
      {
        env: { ...process.env, PYTHONPATH: PANDAS2 },
        maxBuffer: 16 << 20,
      },
    );
    const evidentlyWallMs = performance.now() - t;
    const evidently = JSON.parse(evidentlyRun.stdout) as EvidentlyRun;

    console.log('');
    console.log(
      'feature  type         ours: method        statistic   drifted | evidently: method                score      drifted',
    );
    const disagreements: string[] = [];
    for (const f of FEATURES) {
      const o = ours.columns[f.name]!;
      const e = evidently.columns[f.name];
      const c = cliReport.columns[f.name]!;
      if (!e) disagreements.push(`${f.name}: Evidently reported no drift test`);
      else if (e.drifted !== o.drifted) disagreements.push(`${f.name}: ours ${o.drifted}, Evidently ${e.drifted}`);
      if (c.drifted !== o.drifted)
        disagreements.push(`${f.name}: the CLI decided ${c.drifted}, the library ${o.drifted}`);
      if (o.drifted !== f.drifted)
        disagreements.push(`${f.name}: generated ${f.drifted ? '' : 'un'}drifted, ours says ${o.drifted}`);
      console.log(
        `${f.name.padEnd(8)} ${f.type.padEnd(12)} ${o.method.padEnd(18)} ${o.statistic.toFixed(6).padStart(10)}  ${String(o.drifted).padEnd(7)} | ` +
          `${(e?.method ?? '-').padEnd(32)} ${(e?.score ?? Number.NaN).toFixed(6).padStart(10)} ${String(e?.drifted ?? '-')}`,
      );
    }
    const evidentlyMs = evidently.seconds * 1000;
    console.log('');
    console.log(`rows per file           ${rows}`);
    console.log(
      `ours, library           ${seconds(libraryMs)}  (driftedShare ${ours.driftedShare}, datasetDrift ${ours.datasetDrift})`,
    );
    console.log(`ours, CLI               ${seconds(cliMs)}  (peak RSS ${cliRssMb.toFixed(0)} MB)`);
    console.log(
      `Evidently               ${seconds(evidentlyMs)}  (of which pandas read_csv ${evidently.readSeconds.toFixed(2)} s; ` +
        `with Python start ${seconds(evidentlyWallMs)}; driftedShare ${evidently.driftedShare})`,
    );
    const ratioLibrary = evidentlyMs / libraryMs;
    const ratioCli = evidentlyWallMs / cliMs;
    console.log(
      `speed-up, library       ${ratioLibrary.toFixed(2)}× (target ≥ 5×: ${ratioLibrary >= 5 ? 'met' : 'NOT met'})`,
    );
    console.log(`speed-up, CLI vs python ${ratioCli.toFixed(2)}× (both as processes, start-up included)`);
    console.log(
      disagreements.length === 0
        ? `decisions               all ${FEATURES.length} agree`
        : `decisions               ${disagreements.length} disagreement(s):\n  ${disagreements.join('\n  ')}`,
    );
    if (values.keep) console.log(`kept ${dir}`);
    process.exitCode = disagreements.length === 0 ? 0 : 1;
  } finally {
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

await main();
