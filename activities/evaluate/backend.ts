/**
 * Chooses the TensorFlow.js backend once per process: native TensorFlow with CUDA (tfjs-node-gpu), native TensorFlow
 * on CPU (tfjs-node, built by scripts/setup-tfjs.mjs), WebAssembly, or plain JavaScript. `auto` takes the first that
 * loads. The choice is global to the process (tfjs has one engine), which is why the worker makes it at start.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { EvaluationError } from './errors';

export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendPreference = 'auto' | BackendName;

export interface BackendInfo {
  /** What was asked for and what loaded; recorded in every gate's evidence and metrics. */
  name: BackendName;
  requested: BackendPreference;
  tfjsVersion: string;
  /** Why the backends tried before this one did not load (auto only). */
  skipped: { name: BackendName; reason: string }[];
}

let current: BackendInfo | undefined;
const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';

/** Parses TFJS_BACKEND (or a CLI flag); undefined means auto. */
export function parseBackendPreference(value: string | undefined): BackendPreference {
  const v = (value ?? 'auto').trim() || 'auto';
  if (v === 'auto' || (BACKENDS as readonly string[]).includes(v)) return v as BackendPreference;
  throw new EvaluationError(
    'BackendUnavailable',
    `TFJS_BACKEND=${v} is not a backend (use auto, ${BACKENDS.join(', ')})`,
  );
}

/**
 * Loads and activates a backend. Idempotent: a second call returns the first choice, and asking for a different
 * backend afterwards is an error (the native addons cannot be unloaded).
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendInfo> {
  if (current) {
    if (preference === 'auto' || preference === current.name) return current;
    throw new EvaluationError(
      'BackendUnavailable',
      `the tfjs backend is already ${current.name} in this process; cannot switch to ${preference}`,
    );
  }
  const order = preference === 'auto' ? BACKENDS : [preference];
  const skipped: BackendInfo['skipped'] = [];
  for (const name of order) {
    try {
      await load(name);
      current = { name, requested: preference, tfjsVersion: tf.version.tfjs, skipped };
      return current;
    } catch (err) {
      skipped.push({ name, reason: (err as Error).message.split('\n')[0] ?? String(err) });
    }
  }
  throw new EvaluationError(
    'BackendUnavailable',
    `no tfjs backend could be loaded: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`,
  );
}

/** The backend chosen by initBackend, if any. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}

/**
 * Throws unless the package's native addon has been built. Checked before importing: an import that fails on the
 * addon has already registered its kernels, and the next native package would then find them taken.
 */
function requireAddon(pkg: string): void {
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`${pkg} is not installed`);
  }
  // Where the package itself will look: node-pre-gyp picks the N-API build directory (napi-v8 on Node 20).
  const preGyp = createRequire(packageJson)('@mapbox/node-pre-gyp') as { find(packageJson: string): string };
  const addon = preGyp.find(packageJson);
  if (!existsSync(addon)) {
    throw new Error(`${pkg} has no native addon (${addon}); run node scripts/setup-tfjs.mjs`);
  }
}

async function load(name: BackendName): Promise<void> {
  // TensorFlow's C++ logging would otherwise fill the worker's output with CPU feature notices.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  switch (name) {
    case 'tensorflow-gpu':
      requireAddon(TFJS_NODE_GPU);
      // An optional dependency: a variable specifier keeps the typecheck from requiring it.
      await import(TFJS_NODE_GPU);
      break;
    case 'tensorflow':
      requireAddon('@tensorflow/tfjs-node');
      await import('@tensorflow/tfjs-node');
      break;
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      break;
    case 'cpu':
      break;
  }
  // Production mode: no debug checks, and no "install tfjs-node" banner from the cpu backend.
  tf.env().set('PROD', true);
  const engineName = name === 'tensorflow-gpu' ? 'tensorflow' : name;
  if (!(await tf.setBackend(engineName))) throw new Error(`tf.setBackend('${engineName}') failed`);
  await tf.ready();
  // A smoke computation: a half-built native addon can register and still fail on the first kernel.
  const probe = tf.tidy(() => tf.tensor1d([1, 2]).add(1).dataSync());
  if (probe[1] !== 3) throw new Error(`the ${name} backend computed 2 + 1 = ${probe[1]}`);
}
