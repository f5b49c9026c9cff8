/**
 * Builds the evaluation worker (task queue `evaluation`): activities only, no workflows. Used by
 * workers/evaluation.ts and the tests. The tfjs backend must be chosen before (initBackend): it is process-wide.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createEvaluationActivities, type BackendInfo } from '../activities/evaluate';
import { loadSourcePolicy } from '../config/loader';
import { EVALUATION_TASK_QUEUE } from '../contract/definitions';
import { HEARTBEAT_THROTTLE, keepAliveInterceptor } from './keep-alive';
import { artifactStoreFor, workerConnectOptions, workerDataConverter, type Settings } from './settings';

export interface EvaluationWorkerOptions {
  backend: BackendInfo;
  connection?: NativeConnection;
  /** Defaults to settings.evaluationTaskQueue (MREL_EVALUATION_TASK_QUEUE), else `evaluation`. */
  taskQueue?: string;
  /**
   * Evaluations are memory- and compute-heavy and share one tfjs engine: a few at a time (default 2, so that a
   * release's three gates overlap without starving each other).
   */
  maxConcurrentActivityTaskExecutions?: number;
}

export async function createEvaluationWorker(settings: Settings, options: EvaluationWorkerOptions): Promise<Worker> {
  const connection = options.connection ?? (await NativeConnection.connect(workerConnectOptions(settings)));
  return Worker.create({
    connection,
    namespace: settings.namespace,
    ...workerDataConverter(settings),
    taskQueue: options.taskQueue ?? settings.evaluationTaskQueue ?? EVALUATION_TASK_QUEUE,
    activities: createEvaluationActivities({
      store: artifactStoreFor(settings),
      backend: options.backend,
      sourcePolicy: await loadSourcePolicy(settings.configDir),
    }),
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions ?? 2,
    interceptors: { activity: [keepAliveInterceptor()] },
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
}
