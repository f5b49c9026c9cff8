/**
 * Generated credit data and small tfjs models trained on it, for the evaluation tests and the demo: one model
 * learns a deliberately injected group bias, the other is trained on data without it. Seeded, so every run sees
 * the same rows.
 *
 * As a script it writes a demo: `npx tsx scripts/credit-data.ts <dir>` → <dir>/{biased,fair}/ (model) and
 * <dir>/{biased,fair}.csv, ready for `mrel evaluate`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../activities/evaluate/random';

export interface CreditRow {
  income: number;
  debt_ratio: number;
  tenure: number;
  /** Correlates strongly with `group` in biased data: a proxy. */
  zip_score: number;
  region: 'north' | 'south' | 'east';
  group: 'a' | 'b';
  sex: 'f' | 'm';
  approved: 0 | 1;
}

export const CONTINUOUS = ['income', 'debt_ratio', 'tenure', 'zip_score'] as const;
export const REGIONS = ['north', 'south', 'east'] as const;

function normal(rng: SeededRandom): number {
  // Box–Muller: two uniforms give one standard normal.
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Rows whose approval depends on income, debt and tenure. With `biased`, group b is approved far less often at the
 * same finances (historic bias in the labels), and zip_score tracks the group.
 */
export function generateCredit(n: number, options: { biased: boolean; seed: number }): CreditRow[] {
  const rng = new SeededRandom(options.seed);
  const rows: CreditRow[] = [];
  for (let i = 0; i < n; i++) {
    const group = rng.next() < 0.6 ? 'a' : 'b';
    const sex = rng.next() < 0.5 ? 'f' : 'm';
    const income = 50 + 15 * normal(rng);
    const debt = Math.min(1, Math.max(0, 0.35 + 0.15 * normal(rng)));
    const tenure = Math.max(0, 6 + 4 * normal(rng));
    const zip = (options.biased ? (group === 'a' ? 1.2 : -1.2) : 0) + normal(rng);
    const region = REGIONS[rng.int(3)]!;
    let score = 0.08 * (income - 50) - 6 * (debt - 0.35) + 0.15 * (tenure - 6) + 0.3 * normal(rng);
    if (options.biased) score += group === 'a' ? 1.5 : -1.5;
    rows.push({
      income: round(income),
      debt_ratio: round(debt),
      tenure: round(tenure),
      zip_score: round(zip),
      region,
      group,
      sex,
      approved: score > 0 ? 1 : 0,
    });
  }
  return rows;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

export function toCsv<T extends object>(rows: T[]): string {
  const header = Object.keys(rows[0]!);
  const lines = rows.map((r) => header.map((h) => String((r as Record<string, unknown>)[h])).join(','));
  return `${header.join(',')}\n${lines.join('\n')}\n`;
}

export function toJsonl<T extends object>(rows: T[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** A feature as written into userDefinedMetadata. */
export type FeatureMeta =
  | { name: string; type: 'continuous'; mean: number; std: number; mutable?: boolean }
  | { name: string; type: 'categorical'; categories: string[] };

/** Standardisation statistics of the continuous features, and one-hot categories, from training rows. */
export function featureMeta(rows: CreditRow[], names: string[]): FeatureMeta[] {
  return names.map((name) => {
    if (name === 'region') return { name, type: 'categorical', categories: [...REGIONS] };
    if (name === 'group') return { name, type: 'categorical', categories: ['a', 'b'] };
    const values = rows.map((r) => (r as unknown as Record<string, number>)[name]!);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) || 1;
    return { name, type: 'continuous', mean, std };
  });
}

/** The model's input matrix for rows, following the feature metadata. */
export function encode(rows: CreditRow[], features: FeatureMeta[]): Float32Array {
  const width = features.reduce((w, f) => w + (f.type === 'categorical' ? f.categories.length : 1), 0);
  const x = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    let j = i * width;
    for (const f of features) {
      const v = (row as unknown as Record<string, string | number>)[f.name]!;
      if (f.type === 'categorical') for (const c of f.categories) x[j++] = v === c ? 1 : 0;
      else x[j++] = ((v as number) - f.mean) / f.std;
    }
  });
  return x;
}

export interface TrainedModel {
  model: tf.LayersModel;
  features: FeatureMeta[];
  metadata: Record<string, unknown>;
}

/** Trains a small MLP (inputs → 8 relu → 2 softmax) on the rows; seeded initialisers, no shuffling. */
export async function trainCreditModel(rows: CreditRow[], featureNames: string[], seed = 7): Promise<TrainedModel> {
  const features = featureMeta(rows, featureNames);
  const x = encode(rows, features);
  const width = x.length / rows.length;
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [width],
        units: 8,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 2,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const xs = tf.tensor2d(x, [rows.length, width]);
  const ys = tf.tensor1d(
    rows.map((r) => r.approved),
    'float32',
  );
  await model.fit(xs, ys, { epochs: 30, batchSize: 256, shuffle: false, verbose: 0 });
  xs.dispose();
  ys.dispose();
  return {
    model,
    features,
    metadata: { features, label: 'approved', classes: [0, 1], favorable: 1 },
  };
}

/** Writes a layers model as model.json + one weight shard, with the metadata as userDefinedMetadata. */
export async function saveModel(model: tf.LayersModel, dir: string, metadata: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const weights = Buffer.from(
        data instanceof ArrayBuffer ? data : tf.io.concatenateArrayBuffers(data as ArrayBuffer[]),
      );
      const json = {
        format: 'layers-model',
        generatedBy: 'modelrelease scripts/credit-data.ts',
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: artifacts.weightSpecs }],
        userDefinedMetadata: metadata,
      };
      await writeFile(join(dir, 'model.json'), `${JSON.stringify(json, null, 2)}\n`);
      await writeFile(join(dir, 'group1-shard1of1.bin'), weights);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** Features of the fair model (no protected attribute, no proxy) and of the biased one (both). */
export const FAIR_FEATURES = ['income', 'debt_ratio', 'tenure', 'region'];
export const BIASED_FEATURES = ['income', 'debt_ratio', 'tenure', 'zip_score', 'region', 'group'];

/** Writes the demo: a biased and a fair model with their datasets. */
export async function writeDemo(dir: string, rows = 4000): Promise<void> {
  for (const biased of [true, false]) {
    const name = biased ? 'biased' : 'fair';
    const train = generateCredit(rows, { biased, seed: biased ? 11 : 12 });
    const test = generateCredit(rows, { biased, seed: biased ? 21 : 22 });
    const trained = await trainCreditModel(train, biased ? BIASED_FEATURES : FAIR_FEATURES);
    await saveModel(trained.model, join(dir, name), trained.metadata);
    await writeFile(join(dir, `${name}.csv`), toCsv(test));
    trained.model.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: npx tsx scripts/credit-data.ts <output dir>');
    process.exit(2);
  }
  const { initBackend, parseBackendPreference } = await import('../activities/evaluate/backend');
  const backend = await initBackend(parseBackendPreference(process.env.TFJS_BACKEND));
  await writeDemo(dir);
  console.log(`wrote ${dir}/{biased,fair}/model.json and ${dir}/{biased,fair}.csv (backend ${backend.name})`);
}
