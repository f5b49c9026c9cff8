/**
 * A vitest fixture with a real dockerd and registry per test file (started on first use, stopped by PID after the
 * file). If the daemon cannot start, every test that uses it fails with the daemon's log: nothing is skipped.
 */
import { test } from 'vitest';
import { startDockerTestEnv } from '../../scripts/docker-test-env';

// vitest reads the fixture's dependencies from the destructuring pattern: this one has none.
export const dockerTest = test.extend('docker', { scope: 'file' }, async ({}, { onCleanup }) => {
  const env = await startDockerTestEnv();
  onCleanup(() => env.stop());
  return env;
});
