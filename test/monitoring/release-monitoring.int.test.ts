/**
 * The monitoring window against real parts: the model server (serving/) as a real process on 127.0.0.1 serving the
 * release's model, a real Prometheus scraping it every second, a load generator in the test, and release and
 * evaluation workers as processes. One release passes its window (its worker killed with SIGKILL in the middle);
 * overload errors roll back; drifted inputs breach; group-biased predictions breach and pause in production, where
 * only SSH-signed decisions count, and a release manager's signed `rollback` decides it (an unsigned one, and one from
 * a role the pause does not await, are refused with why).
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { decide, decideRollout, getRelease, startRelease } from '../../client/release-client';
import { signReleaseDecision } from '../../client/sign';
import { renderStatus } from '../../client/format';
import { TERMINAL_STAGES, type ReleaseStatus } from '../../contract/types';
import { runMrel } from '../helpers/command';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { approve, createDrillEnv, finalStatus, waitFor, type DrillEnv, type WorkerProcess } from '../drills/harness';
import { evaluatedRequest, storeModel, trainModelFixture, useBackend, type ModelFixture } from '../evaluate/fixtures';
import { startServer, stopAll, type ServerProcess } from '../serving/fixtures';
import { makeKey, sshFingerprint, type TestKey } from '../trust/ssh-tools';
import { generateLoad, startLivePrometheus, type LivePrometheus, type Traffic } from './live';

const exec = promisify(execFile);
let env: DrillEnv;
let prometheus: LivePrometheus;
let fair: ModelFixture;
let manifestDigest: string;
let releaseWorker: WorkerProcess;
let logDir: string;
let configDir: string;
let keys: Record<'amara' | 'boris', TestKey>;

/**
 * The window: latency and errors from Prometheus every 2 s, drift and bias from the inference log every 6 s. The
 * latency bound is loose: the test shares two cores with other work, and overload is what the errors metric catches.
 */
function livePolicy(prometheusUrl: string, base: string): string {
  return `${base.trimEnd()}
# Post-deploy analysis against the test's Prometheus and the model servers' inference log.
monitor:
  window: 24s
  onBreach: rollback
  pause: { roles: [release-manager], timeout: 10m, onTimeout: keep }
  prometheus: { address: '${prometheusUrl}', timeout: 5s }
  metrics:
    - name: latency
      template: p95-latency
      args: { threshold: 2, range: 10s }
      initialDelay: 3s
      interval: 2s
    - name: errors
      template: error-rate
      args: { threshold: 0.05, range: 10s }
      initialDelay: 3s
      interval: 2s
    - name: data-drift
      provider: { drift: { minRows: 200 } }
      initialDelay: 6s
      interval: 6s
      failureCondition: result.datasetDrift
    - name: bias-drift
      provider: { bias: { minRows: 30, resamples: 200 } }
      initialDelay: 6s
      interval: 6s
      failureCondition: result.breached
  environments:
    production:
      onBreach: pause
`;
}

beforeAll(async () => {
  env = await createDrillEnv('monitoring');
  prometheus = await startLivePrometheus(join(env.dir, 'prometheus'));
  configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  const base = await readFile(join(FIXTURE_CONFIG_DIR, 'policies', 'default.yaml'), 'utf8');
  await writeFile(join(configDir, 'policies', 'live.yaml'), livePolicy(prometheus.url, base));
  // The same window where production counts only signed decisions (the policy default): approvals, rollback, keep.
  const signedOnly = base.replace(/^\s*allowUnsigned: true\n/m, '');
  expect(signedOnly).not.toContain('allowUnsigned');
  await writeFile(join(configDir, 'policies', 'live-signed.yaml'), livePolicy(prometheus.url, signedOnly));
  const keyDir = join(env.dir, 'keys');
  await mkdir(keyDir, { mode: 0o700 });
  keys = { amara: await makeKey(keyDir, 'amara', 'ed25519'), boris: await makeKey(keyDir, 'boris', 'ecdsa-256') };
  const approversFile = join(configDir, 'approvers.yaml');
  const approvers = parse(await readFile(approversFile, 'utf8'));
  approvers.approvers.amara.keys = [keys.amara.line];
  approvers.approvers.boris.keys = [keys.boris.line];
  await writeFile(approversFile, stringify(approvers));
  logDir = join(env.dir, 'inference-log');
  await mkdir(logDir, { mode: 0o700 });
  env.workerEnv.MREL_CONFIG_DIR = configDir;
  env.workerEnv.MREL_INFERENCE_LOG_DIR = logDir;
  // Its own evaluation queue: other files' evaluation workers read other stores.
  env.workerEnv.MREL_EVALUATION_TASK_QUEUE = `${env.taskQueue}-evaluation`;
  // Trained on the backend the workers predict with, as the evaluation tests do.
  await useBackend();
  fair = await trainModelFixture(env.dir, 'fair', 1500, 3000);
  await writeFile(join(fair.dir, 'README.md'), '---\nlicense: mit\n---\n');
  // The manifest digest the release's acquire will compute for these bytes: what the model server is started with.
  manifestDigest = (await storeModel(fair.dir, join(env.dir, 'scratch-store'))).manifestDigest;
  releaseWorker = env.releaseWorker();
  await Promise.all([releaseWorker.start(), env.evaluationWorker().start()]);
}, 240_000);

afterAll(async () => {
  await stopAll();
  await prometheus?.stop();
  await env?.close();
});

interface Served {
  server: ServerProcess;
  answered(): Record<number, number>;
  stop(): Promise<Record<number, number>>;
}

/** Starts the model server for `model`@1.0.0, has Prometheus scrape it, and drives it with `traffic`. */
async function serve(model: string, traffic: Traffic, extra: Record<string, string> = {}): Promise<Served> {
  const server = await startServer({
    MODEL_DIR: fair.dir,
    MODEL_NAME: model,
    MODEL_VERSION: '1.0.0',
    MODEL_MANIFEST_DIGEST: `sha256:${manifestDigest}`,
    GROUP_COLUMNS: 'group,sex',
    INFERENCE_LOG_DIR: logDir,
    ...extra,
  });
  const target = `127.0.0.1:${server.port}`;
  await prometheus.scrape([target]);
  await prometheus.scraped(target);
  const load = generateLoad(server.url, model, fair.rows, traffic);
  return {
    server,
    answered: () => load.answered,
    async stop() {
      await load.stop();
      await server.stop();
      await prometheus.scrape([]);
      return load.answered;
    },
  };
}

async function release(
  model: string,
  environment: 'staging' | 'production',
  policy: 'live' | 'live-signed' = 'live',
): Promise<string> {
  const request = { ...evaluatedRequest(fair, model), environment, policy };
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.taskQueue, configDir });
  const waiting = await waitFor(
    `${releaseId} awaits approval`,
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval' || (TERMINAL_STAGES as readonly string[]).includes(s.stage),
    240_000,
    250,
  );
  const failed = waiting.gates.filter((g) => g.verdict === 'fail' || g.verdict === 'error');
  expect(waiting.stage, `${waiting.reason} ${JSON.stringify(failed.map((g) => g.findings))}`).toBe('approval');
  if (policy === 'live-signed') {
    for (const approver of ['amara', 'boris'] as const) {
      const decision = { decision: 'approve' as const, comment: 'evaluation reviewed' };
      const signed = await signReleaseDecision(env.client, releaseId, decision, {
        keyFile: keys[approver].privateFile,
      });
      const outcome = await decide(env.client, releaseId, { approver, ...decision, ...signed });
      expect(outcome.accepted, outcome.reason).toBe(true);
    }
  } else await approve(env.client, releaseId, environment === 'production' ? ['amara', 'boris'] : ['amara']);
  return releaseId;
}

const tally = (s: ReleaseStatus, name: string) => s.monitoring?.metrics.find((t) => t.name === name);

async function gitLog(): Promise<string> {
  return (await exec('git', ['--git-dir', env.gitopsRepo, 'log', '--format=%H%n%B%x00', 'main'])).stdout;
}

describe('the monitoring window on live traffic', () => {
  it('passes its window on traffic like the evaluation data, through a SIGKILL of its worker', async () => {
    const served = await serve('credit-steady', 'as-evaluated');
    try {
      const id = await release('credit-steady', 'staging');
      const measured = await waitFor(
        `${id} measures`,
        () => getRelease(env.client, id),
        (s) => (tally(s, 'latency')?.count ?? 0) >= 2 || (TERMINAL_STAGES as readonly string[]).includes(s.stage),
        120_000,
        250,
      );
      expect(measured.stage, measured.reason).toBe('monitoring');
      await releaseWorker.kill();
      await releaseWorker.start();
      const status = await finalStatus(env.client, id, 180_000).catch(async (err) => {
        const log = await readFile(releaseWorker.logFile, 'utf8');
        console.error('DEBUG', JSON.stringify((await getRelease(env.client, id)).monitoring), log.slice(-6000));
        throw err;
      });
      expect(status.stage, status.reason).toBe('released');
      expect(status.monitoring?.state).toBe('passed');
      expect(served.answered()[200] ?? 0).toBeGreaterThan(0);
      expect(status.reason).toMatch(/monitoring window 24s passed: 4 metric\(s\)/);
      for (const name of ['latency', 'errors', 'data-drift', 'bias-drift']) {
        const t = tally(status, name);
        expect(t?.failed, `${name}: ${t?.message}`).toBe(0);
        expect(t?.error, `${name}: ${t?.message}`).toBe(0);
        expect(t?.successful, name).toBeGreaterThan(0);
      }
      const text = renderStatus(status);
      expect(text).toMatch(/monitoring: passed, window 24s/);
      expect(text).toMatch(/^ {2}latency +Running/m);
      const evidence = status.monitoring?.evidence;
      expect(evidence?.path).toMatch(/^releases\/credit-steady\/1\.0\.0\/staging\/monitoring\/[0-9a-f]{64}\.json$/);
      const committed = JSON.parse(
        (await exec('git', ['--git-dir', env.gitopsRepo, 'show', `main:${evidence?.path}`])).stdout,
      );
      expect(committed.result.outcome).toBe('passed');
      expect(committed.result.metrics.map((t: { name: string }) => t.name)).toEqual([
        'latency',
        'errors',
        'data-drift',
        'bias-drift',
      ]);
    } finally {
      await served.stop();
    }
  }, 420_000);

  it('rolls back when the overloaded server sheds requests', async () => {
    const served = await serve('credit-overloaded', 'burst', { MAX_INFLIGHT: '1', MAX_QUEUE: '1' });
    try {
      const id = await release('credit-overloaded', 'staging');
      const status = await finalStatus(env.client, id, 180_000);
      expect(status.stage, status.reason).toBe('rolled-back');
      expect(status.monitoring?.breach?.metric).toBe('errors');
      expect(status.reason).toMatch(/^monitoring breached: errors Failed/);
      expect(status.monitoring?.revert?.decidedBy).toBe('policy live (onBreach: rollback)');
      const log = await gitLog();
      expect(log).toContain(`Rollback-Of: ${id}`);
      expect(log).toContain('Monitoring-Outcome: breached');
    } finally {
      const answered = await served.stop();
      expect(answered[429] ?? 0).toBeGreaterThan(0);
    }
  }, 420_000);

  it('breaches on drifted inputs', async () => {
    const served = await serve('credit-drifted', 'drifted');
    try {
      const id = await release('credit-drifted', 'staging');
      const status = await finalStatus(env.client, id, 180_000);
      expect(status.stage, status.reason).toBe('rolled-back');
      expect(status.monitoring?.breach?.metric).toBe('data-drift');
      const drift = tally(status, 'data-drift');
      expect(drift?.last?.value).toMatch(/dataset drift/);
      expect(tally(status, 'latency')?.failed).toBe(0);
    } finally {
      await served.stop();
    }
  }, 420_000);

  it('pauses on group-biased predictions; a release manager rolls it back, signed; an ml-lead cannot', async () => {
    const served = await serve('credit-regrouped', 'regrouped');
    try {
      const id = await release('credit-regrouped', 'production', 'live-signed');
      const paused = await waitFor(
        `${id} pauses`,
        () => getRelease(env.client, id),
        (s) => s.monitoring?.state === 'paused' || (TERMINAL_STAGES as readonly string[]).includes(s.stage),
        180_000,
        250,
      );
      expect(paused.monitoring?.state, paused.reason).toBe('paused');
      expect(paused.monitoring?.breach?.metric).toBe('bias-drift');
      expect(paused.monitoring?.awaiting).toMatchObject({ roles: ['release-manager'], from: ['amara'] });
      expect(tally(paused, 'data-drift')?.failed).toBe(0);
      const sign = (who: 'amara' | 'boris', decision: 'rollback' | 'keep', comment: string) =>
        signReleaseDecision(env.client, id, { decision, comment }, { keyFile: keys[who].privateFile });
      const comment = 'group b approvals dropped';
      const unsigned = await decideRollout(env.client, id, 'rollback', { approver: 'amara', comment });
      expect(unsigned.accepted).toBe(false);
      expect(unsigned.reason).toMatch(/^unsigned decisions do not count for production .*mrel rollback .*--sign-with/);
      const byBoris = { approver: 'boris', comment: 'not mine', ...(await sign('boris', 'rollback', 'not mine')) };
      const refused = await decideRollout(env.client, id, 'rollback', byBoris);
      expect(refused.accepted).toBe(false);
      expect(refused.reason).toMatch(/boris holds none of the roles/);
      // A signature over a keep does not count as a rollback.
      const keepSigned = await sign('amara', 'keep', comment);
      const swapped = await decideRollout(env.client, id, 'rollback', { approver: 'amara', comment, ...keepSigned });
      expect(swapped.accepted).toBe(false);
      expect(swapped.reason).toMatch(/^signature refused/);
      // Through the CLI, as a release manager would: `mrel rollback … --sign-with <key>`.
      const cli = await runMrel(env.address, [
        'rollback',
        id,
        '--as',
        'amara',
        '--comment',
        comment,
        '--sign-with',
        keys.amara.privateFile,
      ]);
      expect(cli.err).toBe('');
      expect(cli.code).toBe(0);
      expect(cli.out).toMatch(/^rolling back /);
      const fingerprint = await sshFingerprint(keys.amara.publicFile);
      expect(cli.out).toContain(`rollback by amara (release-manager) at `);
      expect(cli.out).toContain(`, signed ${fingerprint}: ${comment}`);
      const status = await finalStatus(env.client, id, 120_000);
      expect(status.stage, status.reason).toBe('rolled-back');
      expect(status.monitoring?.revert?.decidedBy).toBe('amara (release-manager)');
      expect(status.monitoring?.decisions).toMatchObject([
        { approver: 'amara', decision: 'rollback', signed: { fingerprint } },
      ]);
      // The monitoring evidence in Git carries the decision and its signature.
      const evidence = status.monitoring?.evidence;
      expect(evidence, 'the monitoring evidence was committed').toBeDefined();
      const committed = JSON.parse(
        (await exec('git', ['--git-dir', env.gitopsRepo, 'show', `main:${evidence?.path}`])).stdout,
      ) as { decisions?: { approver: string; signed?: { fingerprint: string; signature: string } }[] };
      expect(committed.decisions?.[0]).toMatchObject({ approver: 'amara', signed: { fingerprint } });
      expect(committed.decisions?.[0]?.signed?.signature).toMatch(/^-----BEGIN SSH SIGNATURE-----/);
    } finally {
      await served.stop();
    }
  }, 420_000);
});
