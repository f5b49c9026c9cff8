/**
 * One Temporal dev server (in memory, search attributes registered) and one workflow bundle for the whole run.
 * Tests reach them through inject('temporalAddress') and inject('workflowBundlePath').
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { startDevServer } from '../scripts/dev-server';
import { WORKFLOWS_PATH } from '../workers/release-worker';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'mrel-test-'));
  const server = await startDevServer({ logFile: join(dir, 'temporal.log') });
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger() });
  const bundlePath = join(dir, 'workflow-bundle.js');
  await writeFile(bundlePath, code);
  project.provide('temporalAddress', server.address);
  project.provide('workflowBundlePath', bundlePath);
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

function quietLogger() {
  const noop = (): void => {};
  return { trace: noop, debug: noop, info: noop, warn: noop, error: (m: string) => console.error(m), log: noop };
}
