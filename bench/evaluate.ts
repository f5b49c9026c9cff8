/**
 * The evaluation gates against the tools people use for the same job, in the same run:
 *
 *   1. fairness metrics with bootstrap intervals on 1,000,000 rows vs Fairlearn's MetricFrame (n_boot) on the same
 *      rows: both times, the ratio (target ≥ 5×) and the largest difference of any metric;
 *   2. FGSM and PGD-10 (L∞) on a 20→64→64→2 MLP over 100,000 rows on each tfjs backend vs IBM ART's attacks with its
 *      PyTorch CPU classifier on the same weights: rows/s, the ratio (target: native ≥ ART) and both adversarial
 *      accuracies (they must agree within 1 point).
 *
 *   npx tsx bench/evaluate.ts [--rows 1000000] [--resamples 10] [--attack-rows 100000] [--backends tensorflow,wasm,cpu]
 *                             [--only fairness|attacks]
 *
 * Needs the project venv with fairlearn, adversarial-robustness-toolbox and torch (see the README). Each backend runs
 * in its own child process: a tfjs backend is chosen once per process.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackendPreference } from '../activities/evaluate/backend';
import { addRows, emptyGroupCounts, fairnessReport, reportColumns } from '../activities/evaluate/fairness-report';
import { loadClassifier } from '../activities/evaluate/model';
import { SeededRandom } from '../activities/evaluate/random';
import { attackBatch, predictClasses } from '../activities/evaluate/robustness';
import { loadPredictionTable } from '../activities/evaluate/table';

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const LAYERS = [20, 64, 64, 2];
const EPSILON = 0.1;
const PGD_STEPS = 10;
const PGD_STEP_SIZE = (2.5 * EPSILON) / PGD_STEPS;
const BATCH = 1024;

const FAIRLEARN = String.raw`
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate, false_positive_rate
from sklearn.metrics import accuracy_score, precision_score
path, resamples, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
df = pd.read_csv(path, dtype=str)
read_s = time.perf_counter() - t
t = time.perf_counter()
y_true = (df["label"] == "1").astype(int).to_numpy()
y_pred = (df["prediction"] == "1").astype(int).to_numpy()
features = {"race": df["race"], "sex": df["sex"], "race&sex": df["race"] + "&" + df["sex"]}
metrics = {"selectionRate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
           "accuracy": accuracy_score, "precision": lambda t, p: precision_score(t, p, zero_division=0)}
out = {}
for name, sf in features.items():
    kw = dict(n_boot=resamples, ci_quantiles=[0.025, 0.975], random_state=seed) if resamples > 0 else {}
    mf = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=sf.to_numpy(), **kw)
    diff, ratio = mf.difference(), mf.ratio()
    entry = {"demographicParityDifference": float(diff["selectionRate"]), "demographicParityRatio": float(ratio["selectionRate"]),
             "equalOpportunityDifference": float(diff["tpr"]), "equalOpportunityRatio": float(ratio["tpr"]),
             "equalizedOddsDifference": float(max(diff["tpr"], diff["fpr"])), "equalizedOddsRatio": float(min(ratio["tpr"], ratio["fpr"])),
             "groups": {str(g): {k: float(v) for k, v in row.items()} for g, row in mf.by_group.iterrows()}}
    if resamples > 0:
        lo, hi = mf.difference_ci()
        entry["ci"] = {"demographicParityDifference": [float(lo["selectionRate"]), float(hi["selectionRate"])]}
    out[name] = entry
print(json.dumps({"read_s": read_s, "metrics_s": time.perf_counter() - t, "attributes": out}))
`;

const ART = String.raw`
import json, sys, time
import numpy as np, torch
from art.estimators.classification import PyTorchClassifier
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
wpath, xpath, ypath, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
eps, steps, step, batch = float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
sizes = [20, 64, 64, 2]
flat = np.fromfile(wpath, dtype="<f4")
layers, at = [], 0
for i, o in zip(sizes, sizes[1:]):
    W = flat[at:at + i * o].reshape(i, o); at += i * o
    b = flat[at:at + o]; at += o
    lin = torch.nn.Linear(i, o)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W.T.copy())); lin.bias.copy_(torch.from_numpy(b.copy()))
    layers += [lin, torch.nn.ReLU()]
model = torch.nn.Sequential(*layers[:-1]).eval()
X = np.fromfile(xpath, dtype="<f4").reshape(rows, 20)
y = np.fromfile(ypath, dtype=np.uint8).astype(np.int64)
clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(20,), nb_classes=2,
                        clip_values=(X.min(axis=0), X.max(axis=0)), device_type="cpu")
onehot = np.eye(2, dtype=np.float32)[y]
def acc(a):
    return float((clf.predict(a, batch_size=8192).argmax(1) == y).mean())
res = {"threads": torch.get_num_threads(), "clean": acc(X)}
t = time.perf_counter(); adv = FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=batch).generate(X, y=onehot)
res["fgsm_s"] = time.perf_counter() - t; res["fgsm_acc"] = acc(adv)
t = time.perf_counter()
adv = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=step, max_iter=steps, num_random_init=0,
                               batch_size=batch, verbose=False).generate(X, y=onehot)
res["pgd_s"] = time.perf_counter() - t; res["pgd_acc"] = acc(adv)
print(json.dumps(res))
`;

interface AttackResult {
  backend: string;
  clean: number;
  fgsmS: number;
  fgsmAcc: number;
  pgdS: number;
  pgdAcc: number;
}

/** Child mode: run FGSM and PGD-10 on one backend and print the result as JSON. */
async function attackChild(backendName: string, dir: string, rows: number): Promise<void> {
  const backend = await initBackend(parseBackendPreference(backendName));
  const weights = new Float32Array((await readFile(join(dir, 'weights.bin'))).buffer.slice(0));
  const x = new Float32Array((await readFile(join(dir, 'x.bin'))).buffer.slice(0));
  const y = new Uint8Array(await readFile(join(dir, 'y.bin')));
  const model = tf.sequential();
  const tensors: tf.Tensor[] = [];
  let at = 0;
  for (let l = 0; l + 1 < LAYERS.length; l++) {
    const [i, o] = [LAYERS[l]!, LAYERS[l + 1]!];
    const last = l + 2 === LAYERS.length;
    model.add(tf.layers.dense({ units: o, inputShape: [i], activation: last ? 'softmax' : 'relu' }));
    tensors.push(tf.tensor2d(weights.subarray(at, at + i * o), [i, o]));
    at += i * o;
    tensors.push(tf.tensor1d(weights.subarray(at, at + o)));
    at += o;
  }
  model.setWeights(tensors);
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const classifier = await loadClassifier(tf.io.fromMemory(artifacts!));
  const lower = new Float32Array(20).fill(Infinity);
  const upper = new Float32Array(20).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < 20; c++) {
      const v = x[r * 20 + c]!;
      if (v < lower[c]!) lower[c] = v;
      if (v > upper[c]!) upper[c] = v;
    }
  }
  const bounds = { mask: tf.ones([20]) as tf.Tensor1D, lower: tf.tensor1d(lower), upper: tf.tensor1d(upper) };
  const accuracy = (attack?: 'fgsm' | 'pgd'): { seconds: number; accuracy: number } => {
    let correct = 0;
    let ms = 0;
    for (let from = 0; from < rows; from += BATCH) {
      const to = Math.min(rows, from + BATCH);
      const xb = tf.tensor2d(x.subarray(from * 20, to * 20), [to - from, 20]);
      const yb = tf.tensor1d(y.subarray(from, to), 'int32');
      const started = performance.now();
      const adv = attack
        ? attackBatch(
            classifier,
            xb,
            yb,
            { attack, epsilon: EPSILON, steps: PGD_STEPS, stepSize: PGD_STEP_SIZE },
            bounds,
          )
        : xb;
      // Reading the result back is part of the work: tfjs computes lazily on some backends.
      adv.dataSync();
      ms += performance.now() - started;
      const predicted = predictClasses(classifier, adv, 0.5);
      for (let i = 0; i < predicted.length; i++) if (predicted[i] === y[from + i]) correct++;
      if (adv !== xb) adv.dispose();
      xb.dispose();
      yb.dispose();
    }
    return { seconds: ms / 1000, accuracy: correct / rows };
  };
  accuracy('fgsm'); // warm-up: kernels compiled, memory allocated
  const clean = accuracy().accuracy;
  const fgsm = accuracy('fgsm');
  const pgd = accuracy('pgd');
  const result: AttackResult = {
    backend: backend.name,
    clean,
    fgsmS: fgsm.seconds,
    fgsmAcc: fgsm.accuracy,
    pgdS: pgd.seconds,
    pgdAcc: pgd.accuracy,
  };
  process.stdout.write(JSON.stringify(result));
}

async function runChild(backend: string, dir: string, rows: number): Promise<AttackResult> {
  const proc = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--attack-child', backend, dir, String(rows)],
    { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } },
  );
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`the ${backend} attack run exited with ${code}`);
  return JSON.parse(out) as AttackResult;
}

function normal(rng: SeededRandom): number {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

async function fairnessBench(dir: string, rows: number, resamples: number): Promise<void> {
  console.log(`\n== fairness metrics with bootstrap: ${rows.toLocaleString('en')} rows, ${resamples} resamples ==`);
  const rng = new SeededRandom(1);
  const races = ['w', 'x', 'y', 'z'];
  const lines = ['label,prediction,race,sex'];
  for (let i = 0; i < rows; i++) {
    const r = rng.int(4);
    const sex = rng.next() < 0.5 ? 'f' : 'm';
    const label = rng.next() < 0.3 + 0.1 * r ? 1 : 0;
    const prediction = rng.next() < 0.85 ? label : rng.next() < 0.5 ? 1 : 0;
    lines.push(`${label},${prediction},${races[r]},${sex}`);
  }
  const csv = join(dir, 'fairness.csv');
  await writeFile(csv, `${lines.join('\n')}\n`);

  let started = performance.now();
  const table = await loadPredictionTable(csv, {
    label: 'label',
    prediction: 'prediction',
    favorable: 1,
    protected: ['race', 'sex'],
  });
  const readS = (performance.now() - started) / 1000;
  started = performance.now();
  const columns = reportColumns(table.groups, true);
  const counts = emptyGroupCounts(columns);
  addRows(counts, columns, table.yTrue, table.yPred, 0, table.rows);
  const countS = (performance.now() - started) / 1000;
  started = performance.now();
  const options = {
    minGroupSize: 1,
    intersections: true,
    privileged: {},
    bootstrap: { resamples, seed: 7 },
    confidence: 0.95,
  };
  const ours = fairnessReport(columns, counts, options);
  const oursS = countS + (performance.now() - started) / 1000;
  started = performance.now();
  fairnessReport(columns, counts, { ...options, bootstrap: { resamples: 1000, seed: 7 } });
  const ours1000S = countS + (performance.now() - started) / 1000;

  const script = join(dir, 'fairlearn_bench.py');
  await writeFile(script, FAIRLEARN);
  const { stdout } = await exec(PYTHON, [script, csv, String(resamples), '7'], { maxBuffer: 64 << 20 });
  const ref = JSON.parse(stdout) as {
    read_s: number;
    metrics_s: number;
    attributes: Record<
      string,
      Record<string, unknown> & { groups: Record<string, Record<string, number>>; ci?: Record<string, number[]> }
    >;
  };
  let largest = 0;
  let where = '';
  for (const [name, entry] of Object.entries(ref.attributes)) {
    const mine = ours.attributes[name]!;
    for (const [metric, value] of Object.entries(entry)) {
      if (metric === 'groups' || metric === 'ci') continue;
      const d = Math.abs((mine[metric as keyof typeof mine] as number) - (value as number));
      if (d > largest || where === '') [largest, where] = [d, `${name}.${metric}`];
    }
    for (const [group, stats] of Object.entries(entry.groups)) {
      for (const [k, v] of Object.entries(stats)) {
        const d = Math.abs((mine.groups[group]![k as keyof (typeof mine.groups)[string]] as number) - v);
        if (d > largest) [largest, where] = [d, `${name}=${group}.${k}`];
      }
    }
  }
  const dpd = ref.attributes.race!.ci?.demographicParityDifference;
  const ourCi = ours.attributes.race!.ci.demographicParityDifference!;
  console.log(
    `modelrelease  metrics + bootstrap ${oursS.toFixed(3)} s   (CSV streaming parse ${readS.toFixed(2)} s, not counted)`,
  );
  console.log(
    `Fairlearn     MetricFrame n_boot   ${ref.metrics_s.toFixed(3)} s   (pandas read_csv ${ref.read_s.toFixed(2)} s, not counted)`,
  );
  console.log(`ratio         ${(ref.metrics_s / oursS).toFixed(1)}× faster (target ≥ 5×)`);
  console.log(`largest metric difference vs Fairlearn: ${largest.toExponential(2)} (${where})`);
  if (dpd) {
    console.log(
      `race demographicParityDifference ${ours.attributes.race!.demographicParityDifference.toFixed(5)}, 95% CI: ours [${ourCi.lower.toFixed(5)}, ${ourCi.upper.toFixed(5)}], Fairlearn [${dpd[0]!.toFixed(5)}, ${dpd[1]!.toFixed(5)}] (${resamples} resamples each, different random streams)`,
    );
  }
  console.log(`(ours with 1000 resamples: ${ours1000S.toFixed(3)} s)`);
}

async function attackBench(dir: string, rows: number, backends: string[]): Promise<void> {
  console.log(
    `\n== FGSM and PGD-${PGD_STEPS} (L∞, ε=${EPSILON}, step ${PGD_STEP_SIZE}) on a ${LAYERS.join('→')} MLP, ${rows.toLocaleString('en')} rows ==`,
  );
  const rng = new SeededRandom(3);
  const sizes = LAYERS.slice(1).map((o, l) => LAYERS[l]! * o + o);
  const weights = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  LAYERS.slice(1).forEach((o, l) => {
    const i = LAYERS[l]!;
    const scale = Math.sqrt(2 / i);
    for (let k = 0; k < i * o; k++) weights[at++] = normal(rng) * scale;
    for (let k = 0; k < o; k++) weights[at++] = 0.1 * normal(rng);
  });
  const x = new Float32Array(rows * 20);
  for (let k = 0; k < x.length; k++) x[k] = normal(rng);
  // Labels: what the network itself predicts, with 10 % flipped, so clean accuracy is about 90 %.
  await initBackend('cpu');
  const model = tf.sequential();
  const tensors: tf.Tensor[] = [];
  let w = 0;
  for (let l = 0; l + 1 < LAYERS.length; l++) {
    const [i, o] = [LAYERS[l]!, LAYERS[l + 1]!];
    model.add(tf.layers.dense({ units: o, inputShape: [i], activation: l + 2 === LAYERS.length ? 'softmax' : 'relu' }));
    tensors.push(tf.tensor2d(weights.subarray(w, w + i * o), [i, o]));
    w += i * o;
    tensors.push(tf.tensor1d(weights.subarray(w, w + o)));
    w += o;
  }
  model.setWeights(tensors);
  const predicted = tf.tidy(() => (model.predict(tf.tensor2d(x, [rows, 20])) as tf.Tensor).argMax(1).dataSync());
  const y = Uint8Array.from(predicted, (p) => (rng.next() < 0.1 ? 1 - p : p));
  await writeFile(join(dir, 'weights.bin'), Buffer.from(weights.buffer));
  await writeFile(join(dir, 'x.bin'), Buffer.from(x.buffer));
  await writeFile(join(dir, 'y.bin'), Buffer.from(y.buffer));

  const script = join(dir, 'art_bench.py');
  await writeFile(script, ART);
  const { stdout } = await exec(PYTHON, [
    script,
    join(dir, 'weights.bin'),
    join(dir, 'x.bin'),
    join(dir, 'y.bin'),
    String(rows),
    String(EPSILON),
    String(PGD_STEPS),
    String(PGD_STEP_SIZE),
    String(BATCH),
  ]);
  const art = JSON.parse(stdout) as {
    threads: number;
    clean: number;
    fgsm_s: number;
    fgsm_acc: number;
    pgd_s: number;
    pgd_acc: number;
  };
  const rate = (s: number) => Math.round(rows / s).toLocaleString('en');
  console.log(
    `IBM ART (PyTorch CPU, ${art.threads} threads): clean acc ${art.clean.toFixed(4)} | FGSM ${rate(art.fgsm_s)} rows/s, adv acc ${art.fgsm_acc.toFixed(4)} | PGD-10 ${rate(art.pgd_s)} rows/s, adv acc ${art.pgd_acc.toFixed(4)}`,
  );
  for (const backend of backends) {
    try {
      const r = await runChild(backend, dir, rows);
      console.log(
        `tfjs ${r.backend.padEnd(10)}: clean acc ${r.clean.toFixed(4)} | FGSM ${rate(r.fgsmS)} rows/s (${(art.fgsm_s / r.fgsmS).toFixed(2)}× ART), adv acc ${r.fgsmAcc.toFixed(4)} (Δ ${(100 * Math.abs(r.fgsmAcc - art.fgsm_acc)).toFixed(2)} pt) | PGD-10 ${rate(r.pgdS)} rows/s (${(art.pgd_s / r.pgdS).toFixed(2)}× ART), adv acc ${r.pgdAcc.toFixed(4)} (Δ ${(100 * Math.abs(r.pgdAcc - art.pgd_acc)).toFixed(2)} pt)`,
      );
    } catch (err) {
      console.log(`tfjs ${backend.padEnd(10)}: not run (${(err as Error).message})`);
    }
  }
  console.log('(target: native tensorflow at least as fast as ART; adversarial accuracies within 1 point)');
}

async function main(): Promise<void> {
  if (process.argv[2] === '--attack-child') {
    await attackChild(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
    return;
  }
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      resamples: { type: 'string', default: '10' },
      'attack-rows': { type: 'string', default: '100000' },
      backends: { type: 'string', default: 'tensorflow,wasm,cpu' },
      only: { type: 'string' },
    },
  });
  const parts = values.only ? values.only.split(',') : ['fairness', 'attacks'];
  const dir = await mkdtemp(join(tmpdir(), 'bench-evaluate-'));
  try {
    if (parts.includes('fairness')) await fairnessBench(dir, Number(values.rows), Number(values.resamples));
    if (parts.includes('attacks')) await attackBench(dir, Number(values['attack-rows']), values.backends.split(','));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
