/** Builds the release worker (CPU task queue): used by workers/release.ts, `npm start` and the tests. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createReleaseActivities } from '../activities';
import { DEFAULT_CONFIG_DIR, loadSourcePolicy } from '../config/loader';
import { HEARTBEAT_THROTTLE, keepAliveInterceptor } from './keep-alive';
import { EVALUATION_TASK_QUEUE } from '../contract/definitions';
import {
  artifactStoreFor,
  loadSigningKey,
  loadSourceCa,
  workerConnectOptions,
  workerDataConverter,
  type Settings,
} from './settings';
import { workflowSource } from './workflow-bundle';

export { WORKFLOWS_PATH } from './paths';

export async function createReleaseWorker(
  settings: Settings,
  options: { connection?: NativeConnection; workflowBundle?: WorkerOptions['workflowBundle'] } = {},
): Promise<Worker> {
  const workflows = options.workflowBundle
    ? { workflowBundle: options.workflowBundle }
    : await workflowSource(settings.workflowBundle, { encodedFailures: settings.codecKeys !== undefined });
  const connection = options.connection ?? (await NativeConnection.connect(workerConnectOptions(settings)));
  return Worker.create({
    connection,
    namespace: settings.namespace,
    ...workerDataConverter(settings),
    taskQueue: settings.taskQueue,
    ...workflows,
    activities: createReleaseActivities({
      configDir: settings.configDir,
      pricingFile: settings.pricingFile,
      storeRoot: settings.storeRoot,
      store: artifactStoreFor(settings),
      // MREL_KUBECONFIG names the cluster; without it KUBECONFIG or the in-cluster service account, else none.
      monitor: { env: settings.kubeconfig ? { ...process.env, MREL_KUBECONFIG: settings.kubeconfig } : process.env },
      // The model servers' inference logs, which the drift and bias measurements read (MREL_INFERENCE_LOG_DIR).
      ...(settings.inferenceLogDir === undefined ? {} : { inferenceLogDir: settings.inferenceLogDir }),
      // Releases started here schedule their evaluations on this queue: the evaluation workers must poll it.
      taskQueues: { release: settings.taskQueue, evaluation: settings.evaluationTaskQueue ?? EVALUATION_TASK_QUEUE },
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
        // The bundle keeps copies of the policy and approvers.yaml the release was judged by; a key signs the evidence.
        configDir: settings.configDir ?? DEFAULT_CONFIG_DIR,
        signingKey: await loadSigningKey(settings),
      },
      notify: { uiUrl: settings.uiUrl ?? 'http://localhost:8233', namespace: settings.namespace },
    }),
    interceptors: { activity: [keepAliveInterceptor()] },
    // The SDK would send heartbeats only every 0.8 × the heartbeat timeout (12 s of 15 s): a slow RPC on a busy
    // machine would then time a live activity out. Every few seconds leaves the timeout its margin.
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
}
