/**
 * npm start — the main job: the Temporal dev server (SQLite under .temporal/, UI on :8233, search attributes
 * registered), the release worker, and one demo release of examples/models/credit-risk that waits for approval.
 * Ctrl-C stops every process it started; the next run reuses the same database, so earlier releases are still there.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readRequestFile } from '../client/cli';
import { connectClient, getRelease, startRelease } from '../client/release-client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { initBackend, parseBackendPreference } from '../activities/evaluate/backend';
import { createEvaluationWorker } from '../workers/evaluation-worker';
import { createReleaseWorker } from '../workers/release-worker';
import { loadSettings, runtimeTelemetry } from '../workers/settings';
import type { ReleaseStatus } from '../contract/types';
import { startDevServer } from './dev-server';
import { PROJECT_ROOT } from './temporal-cli';

const exec = promisify(execFile);
const PORT = Number(process.env.TEMPORAL_PORT ?? 7233);
const UI_PORT = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
const DEMO_REQUEST = join(PROJECT_ROOT, 'examples', 'releases', 'credit-risk-production.yaml');

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  // Warnings and errors only: activity retries and failed releases still show, the bundler's chatter does not.
  // Metrics (MREL_METRICS_ADDRESS) are part of the Runtime, so they are set up here, before any connection.
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: runtimeTelemetry(loadSettings()) });
  // The Temporal database, the artifact store, the GitOps repository and clones are private to this user.
  process.umask(0o077);
  const temporalDir = join(PROJECT_ROOT, '.temporal');
  await mkdir(temporalDir, { recursive: true, mode: 0o700 });
  await chmod(temporalDir, 0o700);
  for (const port of [PORT, UI_PORT]) {
    if (await portInUse(port)) {
      throw new Error(
        `port ${port} is already in use (another Temporal server or npm start?); stop it, or set TEMPORAL_PORT / TEMPORAL_UI_PORT`,
      );
    }
  }
  console.log('starting the Temporal dev server (database .temporal/dev.db) …');
  const server = await startDevServer({
    dbFile: join(temporalDir, 'dev.db'),
    port: PORT,
    uiPort: UI_PORT,
    logFile: join(temporalDir, 'server.log'),
    startTimeoutMs: 120_000,
  });
  const settings = loadSettings({ ...process.env, TEMPORAL_ADDRESS: server.address });
  let stopping = false;
  const stopServer = async (): Promise<void> => server.stop();
  try {
    if (!existsSync(settings.gitopsRepo)) {
      await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
      await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', settings.gitopsRepo]);
    }
    const worker = await createReleaseWorker(settings);
    // The evaluation queue's worker runs here too (on GPU nodes in production: workers/evaluation.ts).
    const backend = await initBackend(parseBackendPreference(process.env.TFJS_BACKEND));
    const evaluationWorker = await createEvaluationWorker(settings, { backend });
    console.log(`release worker and evaluation worker (tfjs backend ${backend.name}) are running`);
    if (settings.metricsAddress) console.log(`metrics for Prometheus: http://${settings.metricsAddress}/metrics`);
    const running = Promise.all([worker.run(), evaluationWorker.run()]);
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      console.log(`\n${signal}: stopping the worker and the Temporal server (pid ${server.pid}) …`);
      worker.shutdown();
      evaluationWorker.shutdown();
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));

    const client = await connectClient({ address: server.address });
    const started = await startRelease(client, await readRequestFile(DEMO_REQUEST), { taskQueue: settings.taskQueue });
    const status = await waitForDecisionPoint(() => getRelease(client, started.releaseId));
    printBanner(started.releaseId, started.runId, started.started, status, server.uiUrl ?? '', settings.gitopsRepo);
    await running;
    await client.connection.close();
  } finally {
    await stopServer();
  }
  console.log('stopped.');
}

async function waitForDecisionPoint(probe: () => Promise<ReleaseStatus>): Promise<ReleaseStatus> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const status = await probe().catch(() => undefined);
    if (status && ['approval', 'released', 'rejected', 'expired', 'failed'].includes(status.stage)) return status;
    if (Date.now() > deadline)
      throw new Error('the demo release did not reach approval within 5 minutes; see .temporal/server.log');
    await new Promise((r) => setTimeout(r, 300));
  }
}

function printBanner(
  id: string,
  runId: string,
  started: boolean,
  status: ReleaseStatus,
  uiUrl: string,
  gitopsRepo: string,
): void {
  const link = `${uiUrl}/namespaces/default/workflows/${encodeURIComponent(id)}/${runId}/history`;
  const lines = [
    '',
    '──────────────────────────────────────────────────────────────────────────────',
    ` modelrelease is running.  Temporal UI: ${uiUrl}`,
    ` demo release ${started ? 'started' : 'found (from an earlier run)'}: ${id}`,
    `   ${link}`,
    ` stage: ${status.stage}${status.reason ? ` (${status.reason})` : ''}`,
  ];
  if (status.stage === 'approval') {
    lines.push(
      '',
      ' production needs 2 approvals, one of them a release-manager. Approve from another terminal:',
      `   ./bin/mrel approve ${id} --as bob --comment "evaluation reviewed"`,
      `   ./bin/mrel approve ${id} --as alice`,
      ' or in the UI: open the workflow → Send a Signal → name "approve", input {"approver": "alice"}',
      ` then watch it:  ./bin/mrel status ${id}`,
    );
  }
  if (status.stage !== 'approval') {
    lines.push(
      '',
      ' the demo release ended in an earlier run; release the same model to staging (one approval):',
      '   ./bin/mrel start examples/releases/credit-risk-staging.yaml --wait',
      '   ./bin/mrel approve release/credit-risk/1.0.0/staging --as alice',
    );
  }
  lines.push(
    '',
    ` GitOps repository: ${gitopsRepo}`,
    `   git --git-dir ${gitopsRepo} log --format='%h %s%n%(trailers)' main`,
    ' Ctrl-C stops the worker and the server; npm start again keeps every release.',
    '──────────────────────────────────────────────────────────────────────────────',
  );
  console.log(lines.join('\n'));
}

main().catch((err: unknown) => {
  console.error(`npm start: ${(err as Error).message}`);
  process.exit(1);
});
