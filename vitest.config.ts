import { tmpdir } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Temporal native bridge and the dev server do not share well across worker threads.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-setup.ts'],
    // The tests make their models and datasets under the temp directory and serve them from 127.0.0.1, which the
    // shipped config/sources.yaml rightly refuses: the run adds both, as an operator would, through the environment.
    // The source-policy tests pass their own policies to prove the refusals.
    env: {
      MREL_SOURCE_ROOTS: tmpdir(),
      MREL_SOURCE_HOSTS: '127.0.0.1,localhost',
      MREL_SOURCE_NETWORKS: '127.0.0.0/8',
    },
  },
});
