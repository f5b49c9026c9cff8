/**
 * Writes the demo model that `npm start` releases: a small TensorFlow.js layers model (logistic regression over
 * four credit features) with its weight shard and a model card. Deterministic: the same bytes on every run, so
 * the committed files can be checked with `npx tsx scripts/make-demo-model.ts --check`.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from './temporal-cli';

const DIR = join(PROJECT_ROOT, 'examples', 'models', 'credit-risk');
const FEATURES = ['income', 'debt_ratio', 'years_employed', 'late_payments'];
const KERNEL = [0.82, -1.37, 0.41, -0.96];
const BIAS = [0.15];

function files(): Record<string, Buffer> {
  const weights = Buffer.from(Float32Array.from([...KERNEL, ...BIAS]).buffer);
  const model = {
    format: 'layers-model',
    generatedBy: 'modelrelease scripts/make-demo-model.ts',
    convertedBy: null,
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: 'credit_risk',
        layers: [
          {
            class_name: 'Dense',
            config: {
              name: 'score',
              units: 1,
              activation: 'sigmoid',
              use_bias: true,
              trainable: true,
              dtype: 'float32',
              batch_input_shape: [null, FEATURES.length],
              kernel_initializer: { class_name: 'Zeros', config: {} },
              bias_initializer: { class_name: 'Zeros', config: {} },
            },
          },
        ],
      },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: 'score/kernel', shape: [FEATURES.length, 1], dtype: 'float32' },
          { name: 'score/bias', shape: [1], dtype: 'float32' },
        ],
      },
    ],
    userDefinedMetadata: { features: FEATURES, label: 'default_within_12m', favorable: 0 },
  };
  const card = [
    '---',
    'license: apache-2.0',
    'library_name: tfjs',
    'tags: [tabular-classification, credit-risk, demo]',
    '---',
    '# credit-risk',
    '',
    'Logistic regression over four credit features (income, debt ratio, years employed, late payments) that',
    'scores the probability of default within 12 months. A demo model for modelrelease: small, real, and',
    'loadable with `tf.loadLayersModel`.',
    '',
  ].join('\n');
  return {
    'model.json': Buffer.from(`${JSON.stringify(model, null, 2)}\n`),
    'group1-shard1of1.bin': weights,
    'README.md': Buffer.from(card),
  };
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  await mkdir(DIR, { recursive: true });
  let stale = 0;
  for (const [name, content] of Object.entries(files())) {
    const path = join(DIR, name);
    if (check) {
      const current = await readFile(path).catch(() => Buffer.alloc(0));
      if (!current.equals(content)) {
        console.error(`${path} differs from what make-demo-model.ts writes`);
        stale++;
      }
    } else await writeFile(path, content);
  }
  if (stale > 0) process.exit(1);
}

await main();
