import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Two projects, told apart by file name. `*.int.test.ts` files talk to Temporal (the run's dev server through
 * inject(), a TestWorkflowEnvironment, worker processes, drills, the UI): they form the `integration` project, which
 * starts the dev server and bundles the workflows once per run. Every other `*.test.ts` is a `unit` test and runs
 * without either: `npx vitest run --project unit` is the fast loop.
 */
const INTEGRATION = 'test/**/*.int.test.ts';

export default defineConfig({
  test: {
    // The Temporal native bridge and the dev server do not share well across worker threads.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The tests make their models and datasets under the temp directory and serve them from 127.0.0.1, which the
    // shipped config/sources.yaml rightly refuses: the run adds both, as an operator would, through the environment.
    // The source-policy tests pass their own policies to prove the refusals.
    env: {
      MREL_SOURCE_ROOTS: tmpdir(),
      MREL_SOURCE_HOSTS: '127.0.0.1,localhost',
      MREL_SOURCE_NETWORKS: '127.0.0.0/8',
    },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [INTEGRATION] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [INTEGRATION],
          globalSetup: ['test/global-setup.ts'],
          // Releases run on the tests' own approvers and policies, not the shipped demo team (FIXTURE_CONFIG_DIR in
          // test/helpers/config-dirs.ts; the config file imports nothing from test/ so that Vite loads it as it is).
          env: { MREL_CONFIG_DIR: fileURLToPath(new URL('test/fixtures/config/', import.meta.url)) },
        },
      },
    ],
  },
});
