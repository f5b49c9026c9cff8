/** Builds the release worker (CPU task queue): used by workers/release.ts, `npm start` and the tests. */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createReleaseActivities } from '../activities';
import { loadSourcePolicy } from '../config/loader';
import { HEARTBEAT_THROTTLE, keepAliveInterceptor } from './keep-alive';
import { loadSourceCa, type Settings } from './settings';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export async function createReleaseWorker(
  settings: Settings,
  options: { connection?: NativeConnection; workflowBundle?: WorkerOptions['workflowBundle'] } = {},
): Promise<Worker> {
  const connection = options.connection ?? (await NativeConnection.connect({ address: settings.address }));
  const workflowBundle =
    options.workflowBundle ?? (settings.workflowBundle ? { codePath: settings.workflowBundle } : undefined);
  return Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createReleaseActivities({
      configDir: settings.configDir,
      pricingFile: settings.pricingFile,
      storeRoot: settings.storeRoot,
      hfEndpoint: settings.hfEndpoint,
      hfToken: settings.hfToken,
      // Loaded once at start: a broken config/sources.yaml stops the worker instead of failing every release.
      sourcePolicy: await loadSourcePolicy(settings.configDir),
      sourceCa: await loadSourceCa(settings),
      gitops: {
        repoUrl: settings.gitopsRepo,
        branch: settings.gitopsBranch,
        workRoot: settings.gitopsWorkRoot,
        servingImage: settings.servingImage,
      },
      notify: { uiUrl: settings.uiUrl ?? 'http://localhost:8233', namespace: settings.namespace },
    }),
    interceptors: { activity: [keepAliveInterceptor()] },
    // The SDK would send heartbeats only every 0.8 × the heartbeat timeout (12 s of 15 s): a slow RPC on a busy
    // machine would then time a live activity out. Every few seconds leaves the timeout its margin.
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
}
