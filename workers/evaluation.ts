/**
 * The evaluation worker process: serves the fairness, robustness and explain activities on the `evaluation` task
 * queue (GPU nodes in production). TFJS_BACKEND=auto|tensorflow-gpu|tensorflow|wasm|cpu picks the tfjs backend at
 * start (auto: the first that loads). MREL_EVALUATION_TASK_QUEUE overrides the queue, for workflows that name their own;
 * the release workflow's is `evaluation`, and the worker warns when it polls another. Other settings as for the
 * release worker (workers/settings.ts): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MREL_STORE, …
 */
import { Runtime } from '@temporalio/worker';
import { initBackend, parseBackendPreference } from '../activities/evaluate';
import { createEvaluationWorker } from './evaluation-worker';
import { describeWorkerConnection, loadSettings, runtimeTelemetry } from './settings';

async function main(): Promise<void> {
  // Everything the worker writes (evidence, reports) is private to its user.
  process.umask(0o077);
  const settings = loadSettings();
  // Fixed for the process once it connects: metrics (MREL_METRICS_ADDRESS) must be set up before.
  Runtime.install({ telemetryOptions: runtimeTelemetry(settings) });
  const backend = await initBackend(parseBackendPreference(process.env.TFJS_BACKEND));
  const worker = await createEvaluationWorker(settings, { backend });
  const taskQueue = worker.options.taskQueue;
  const skipped = backend.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  console.log(
    `evaluation worker on ${describeWorkerConnection(settings)}, queue ${taskQueue}, tfjs backend ${backend.name}`,
  );
  if (skipped) console.log(`  (skipped: ${skipped})`);
  if (settings.metricsAddress) console.log(`  metrics: http://${settings.metricsAddress}/metrics`);
  await worker.run();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
