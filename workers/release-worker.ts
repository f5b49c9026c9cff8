/** Builds the release worker (CPU task queue): used by workers/release.ts, `npm start` and the tests. */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createReleaseActivities } from '../activities';
import type { Settings } from './settings';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export async function createReleaseWorker(
  settings: Settings,
  options: { connection?: NativeConnection; workflowBundle?: WorkerOptions['workflowBundle'] } = {},
): Promise<Worker> {
  const connection = options.connection ?? (await NativeConnection.connect({ address: settings.address }));
  return Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createReleaseActivities({
      configDir: settings.configDir,
      pricingFile: settings.pricingFile,
      storeRoot: settings.storeRoot,
      hfEndpoint: settings.hfEndpoint,
      hfToken: settings.hfToken,
      gitops: {
        repoUrl: settings.gitopsRepo,
        branch: settings.gitopsBranch,
        workRoot: settings.gitopsWorkRoot,
        servingImage: settings.servingImage,
      },
    }),
  });
}
