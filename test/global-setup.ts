/**
 * One Temporal dev server (in memory, search attributes registered) and one workflow bundle for the whole run, in its
 * two variants (the encoded-failures one is for workers with the payload codec on). Tests reach them through
 * inject('temporalAddress'), inject('workflowBundlePath') and inject('encodedFailuresBundlePath').
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildWorkflowBundle } from '../scripts/build-workflow-bundle';
import { startDevServer } from '../scripts/dev-server';
import { encodedFailuresBundlePath } from '../workers/workflow-bundle';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    encodedFailuresBundlePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'mrel-test-'));
  const bundlePath = join(dir, 'workflow-bundle.js');
  const [server] = await Promise.all([
    startDevServer({ logFile: join(dir, 'temporal.log') }),
    buildWorkflowBundle(bundlePath),
  ]);
  project.provide('temporalAddress', server.address);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('encodedFailuresBundlePath', encodedFailuresBundlePath(bundlePath));
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
