/**
 * The release worker process: serves modelReleaseWorkflow and the CPU activities (config, acquire, gitops) on the
 * `model-release` task queue. Settings come from the environment (see workers/settings.ts and the README).
 */
import { createReleaseWorker } from './release-worker';
import { loadSettings } from './settings';

async function main(): Promise<void> {
  // Everything the worker writes (store, evidence, clones) is private to its user, git's files included.
  process.umask(0o077);
  const settings = loadSettings();
  const worker = await createReleaseWorker(settings);
  console.log(`release worker on ${settings.address}, namespace ${settings.namespace}, queue ${settings.taskQueue}`);
  await worker.run();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
