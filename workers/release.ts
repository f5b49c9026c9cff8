/**
 * The release worker process: serves modelReleaseWorkflow and the CPU activities (config, acquire, gitops) on the
 * `model-release` task queue. Settings come from the environment (see workers/settings.ts and the README).
 */
import { Runtime } from '@temporalio/worker';
import { createReleaseWorker } from './release-worker';
import { describeWorkerConnection, loadSettings, runtimeTelemetry } from './settings';

async function main(): Promise<void> {
  // Everything the worker writes (store, evidence, clones) is private to its user, git's files included.
  process.umask(0o077);
  const settings = loadSettings();
  // Fixed for the process once it connects: metrics (MREL_METRICS_ADDRESS) must be set up before.
  Runtime.install({ telemetryOptions: runtimeTelemetry(settings) });
  const worker = await createReleaseWorker(settings);
  console.log(`release worker on ${describeWorkerConnection(settings)}, queue ${settings.taskQueue}`);
  if (settings.metricsAddress) console.log(`  metrics: http://${settings.metricsAddress}/metrics`);
  await worker.run();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
