/**
 * Choosing the tfjs backend, and the native backend's setup script: it never fails an install, and a bad wheel
 * leaves a working native backend alone.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { describe, expect } from 'vitest';
import { BACKENDS, currentBackend, initBackend, parseBackendPreference } from '../../activities/evaluate/backend';
import { EvaluationError } from '../../activities/evaluate/errors';
import { test, useBackend, write } from './fixtures';

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));

const REPO_REQUIRE = createRequire(join(REPO, 'package.json'));
const TFJS_NODE_JSON = REPO_REQUIRE.resolve('@tensorflow/tfjs-node/package.json');
/** Where tfjs-node looks for its addon (node-pre-gyp's choice of N-API directory). */
const addon = (createRequire(TFJS_NODE_JSON)('@mapbox/node-pre-gyp') as { find(p: string): string }).find(
  TFJS_NODE_JSON,
);

describe('tfjs backend', () => {
  test('TFJS_BACKEND must name a backend; the message lists them', () => {
    expect(parseBackendPreference(undefined)).toBe('auto');
    expect(parseBackendPreference('wasm')).toBe('wasm');
    expect(() => parseBackendPreference('metal')).toThrow(
      new EvaluationError(
        'BackendUnavailable',
        `TFJS_BACKEND=metal is not a backend (use auto, ${BACKENDS.join(', ')})`,
      ),
    );
  });

  test('the choice is made once per process and recorded with what was skipped', async () => {
    const chosen = await useBackend();
    expect(currentBackend()).toBe(chosen);
    expect(tf.getBackend()).toBe(chosen.name === 'tensorflow-gpu' ? 'tensorflow' : chosen.name);
    expect(await initBackend('auto')).toBe(chosen);
    const other = chosen.name === 'cpu' ? 'wasm' : 'cpu';
    await expect(initBackend(other)).rejects.toThrow(`the tfjs backend is already ${chosen.name} in this process`);
    if (chosen.requested === 'auto') {
      // Everything before the chosen one was tried and said why it did not load.
      expect(chosen.skipped.map((s) => s.name)).toEqual(BACKENDS.slice(0, BACKENDS.indexOf(chosen.name)));
      // Where scripts/setup-tfjs.mjs built the native addon, auto must take it.
      if (existsSync(addon)) expect(chosen.name).toMatch(/^tensorflow/);
    }
  });
});

describe('scripts/setup-tfjs.mjs', () => {
  const script = join(REPO, 'scripts', 'setup-tfjs.mjs');
  const addon = join(
    REPO,
    'node_modules',
    '@tensorflow',
    'tfjs-node',
    'lib',
    `napi-v${process.versions.napi}`,
    'tfjs_binding.node',
  );

  test('can be skipped', async () => {
    const { stdout } = await exec(process.execPath, [script], { env: { ...process.env, MREL_SKIP_TFJS_NATIVE: '1' } });
    expect(stdout).toContain('MREL_SKIP_TFJS_NATIVE=1: skipped');
  });

  test('a wheel that cannot be used exits 0 with a clear message and leaves the installed backend alone', async ({
    tmp,
  }) => {
    const hadAddon = existsSync(addon);
    const bogus = await write(join(tmp, 'tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl'), 'not a zip');
    // exec rejects on a non-zero exit: resolving is the assertion that npm install would not fail.
    const { stderr } = await exec(process.execPath, [script], {
      env: { ...process.env, MREL_TFJS_FORCE: '1', MREL_TF_WHEEL: bogus },
    });
    expect(stderr).toContain('[setup-tfjs] the native TensorFlow backend is NOT available: could not extract');
    expect(stderr).toContain('evaluation still runs on the wasm and cpu backends');
    expect(existsSync(addon)).toBe(hadAddon);
    expect(existsSync(join(REPO, 'node_modules', '@tensorflow', 'tfjs-node', 'deps.staging'))).toBe(false);
  });
});
