/**
 * Drill: the release worker process is killed with SIGKILL at each stage of a release (in the middle of a model
 * transfer, in the scan and license phase, in the cost phase, while the release awaits approval, and while the
 * GitOps push runs), and started again. Every release still ends `released`, with exactly one commit carrying its
 * Release-Id, and nothing is left waiting without a visible reason. Each stage runs ROUNDS times on its own worker
 * process and task queue; the stages run side by side.
 */
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import { approveSignal } from '../../contract/definitions';
import type { ReleaseRequest } from '../../contract/types';
import {
  approve,
  createDrillEnv,
  finalStatus,
  serverView,
  silentWaits,
  slowFileServer,
  SMALL_MODEL_FILES,
  waitFor,
  type DrillEnv,
  type ServerView,
} from './harness';

const ROUNDS = 2;
/** Bounded waits: a killed worker's activity is retried after its heartbeat timeout. */
const RECOVERY_MS = 150_000;
const TEST_MS = ROUNDS * (RECOVERY_MS + 60_000);

interface KillRecord {
  stage: string;
  round: number;
  /** What the server saw running when the worker died. */
  landedIn: string;
  /** From the kill until the release reached its next stage. */
  recoveredMs: number;
}
const records: KillRecord[] = [];

afterAll(() => {
  for (const stage of new Set(records.map((r) => r.stage))) {
    const mine = records.filter((r) => r.stage === stage);
    console.log(
      `drill release-worker-kill ${stage}: ${mine.length} kill(s); landed in ${mine.map((r) => r.landedIn).join(', ')}; ` +
        `recovered in ${mine.map((r) => `${(r.recoveredMs / 1000).toFixed(1)} s`).join(', ')}`,
    );
  }
});

function landedIn(view: ServerView): string {
  const running = view.pending.filter((p) => p.state === 'STARTED').map((p) => `${p.type}#${p.attempt}`);
  return running.length > 0 ? running.join('+') : `stage ${view.stage} between tasks`;
}

/**
 * One drill: ROUNDS releases, one after another; in each the worker dies at `killWhen` and restarts at once.
 * `before` runs after the release started (e.g. to approve), `after` once it was killed and restarted.
 */
async function drill(
  stage: string,
  options: {
    request: (env: DrillEnv, round: number) => Promise<ReleaseRequest>;
    killWhen: (env: DrillEnv, releaseId: string) => Promise<ServerView>;
    /** Runs while no worker runs (signals still reach the server). */
    whileDown?: (env: DrillEnv, releaseId: string) => Promise<void>;
    setup?: (env: DrillEnv) => Promise<void>;
  },
): Promise<void> {
  const env = await createDrillEnv(`kill-${stage.replace(/\W/g, '')}`);
  try {
    await options.setup?.(env);
    const worker = env.releaseWorker();
    await worker.start();
    const ids: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const request = await options.request(env, round);
      const { releaseId } = await startRelease(env.client, request, { taskQueue: env.taskQueue });
      ids.push(releaseId);
      const view = await options.killWhen(env, releaseId);
      const killedAt = Date.now();
      await worker.kill();
      await options.whileDown?.(env, releaseId);
      await worker.start();
      const beforeApproval = view.stage !== 'approval' && view.stage !== 'gitops';
      if (beforeApproval) {
        await waitFor(
          `${releaseId} awaits approval`,
          () => serverView(env.client, releaseId),
          (v) => v.stage === 'approval' || v.status !== 'RUNNING',
          RECOVERY_MS,
        ).catch(async (err: unknown) => {
          // What the release itself says it waits for, and the worker's last words: a failed drill explains itself.
          const status = await getRelease(env.client, releaseId, { queryTimeoutMs: 2_000 }).catch(() => undefined);
          const log = await readFile(join(env.dir, 'release.log'), 'utf8').catch(() => '');
          throw new Error(
            `${(err as Error).message}\nretrying: ${JSON.stringify(status?.retrying)}\nworker log:\n${log.split('\n').slice(-30).join('\n')}`,
          );
        });
        const recoveredMs = Date.now() - killedAt;
        await approve(env.client, releaseId);
        records.push({ stage, round, landedIn: landedIn(view), recoveredMs });
      } else if (view.stage === 'approval' && options.whileDown) {
        // The approval signal sent while no worker ran counts once a worker is back: one more makes two.
        await approve(env.client, releaseId, ['boris']);
      }
      const final = await finalStatus(env.client, releaseId, RECOVERY_MS);
      if (!beforeApproval) records.push({ stage, round, landedIn: landedIn(view), recoveredMs: Date.now() - killedAt });
      expect(final.stage, `${releaseId}: ${final.reason ?? ''}`).toBe('released');
      expect(final.approvals.map((a) => a.approver).sort()).toEqual(['amara', 'boris']);
      expect(await env.commitsFor(releaseId)).toBe(1);
      expect(final.commit?.sha).toBeTruthy();
    }
    expect(worker.unexpectedExit()).toBeUndefined();
    expect(await silentWaits(env.client, ids)).toEqual([]);
  } finally {
    await env.close();
  }
}

/** Polls the server (not the worker) until the release shows `stage` and, when given, `activity` is running. */
function atStage(stage: string, activity?: string) {
  return (env: DrillEnv, releaseId: string): Promise<ServerView> =>
    waitFor(
      `${releaseId} in ${stage}${activity ? ` running ${activity}` : ''}`,
      () => serverView(env.client, releaseId),
      (v) =>
        v.stage === stage &&
        (activity === undefined || v.pending.some((p) => p.type === activity && p.state === 'STARTED')),
      60_000,
      50,
    );
}

describe.concurrent('kill -9 of the release worker', () => {
  it(
    'in the middle of a model transfer (acquire)',
    async () => {
      let source: Awaited<ReturnType<typeof slowFileServer>> | undefined;
      try {
        await drill('acquire', {
          async setup(env) {
            source = await slowFileServer(join(env.dir, 'models'), 3_000);
          },
          async request(env, round) {
            const req = await env.request(`acquire-kill-${round}`);
            const files = { files: SMALL_MODEL_FILES, source: `${source?.url}acquire-kill-${round}/1.0.0/` };
            return { ...req, model: { ...req.model, ...files } };
          },
          killWhen: atStage('acquire', 'acquireModel'),
        });
      } finally {
        await source?.close();
      }
    },
    TEST_MS,
  );

  it(
    'in the scan and license phase',
    async () => {
      await drill('scan+license', {
        request: async (env, round) => {
          const request = await env.request(`scan-kill-${round}`);
          // 64 MiB of notes that the scan gate reads through for secrets: the phase lasts long enough to be hit.
          const line = 'release notes: evaluated on the curated set, no regressions found.\n';
          await writeFile(
            join(new URL(request.model.source).pathname, 'NOTES.txt'),
            line.repeat(Math.ceil((64 << 20) / line.length)),
          );
          return request;
        },
        killWhen: atStage('scan+license'),
      });
    },
    TEST_MS,
  );

  it(
    'in the cost phase',
    async () => {
      // The cost gate asks a Prometheus for the traffic history; this one answers after 4 s (with no series, so the
      // gate prices the declared profile), which keeps the cost phase open long enough to be hit.
      const prometheus = createServer((_req, res) => {
        const timer = setTimeout(
          () =>
            res
              .writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } })),
          4_000,
        );
        res.on('close', () => clearTimeout(timer));
      });
      await new Promise<void>((resolve) => prometheus.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(prometheus.address() as AddressInfo).port}`;
      try {
        await drill('cost', {
          async request(env, round) {
            const request = await env.request(`cost-kill-${round}`);
            const history = {
              prometheus: { url, query: 'sum(rate(requests_total[5m]))', start: 'now-1d', step: '1h' },
            };
            return { ...request, traffic: { ...(request.traffic as object), history } };
          },
          killWhen: atStage('cost', 'estimateCost'),
        });
      } finally {
        prometheus.closeAllConnections();
        await new Promise((resolve) => prometheus.close(resolve));
      }
    },
    TEST_MS,
  );

  it(
    'while the release awaits approval, with an approval sent while no worker runs',
    async () => {
      await drill('approval', {
        request: (env, round) => env.request(`approval-kill-${round}`),
        killWhen: atStage('approval'),
        async whileDown(env, releaseId) {
          await env.client.workflow.getHandle(releaseId).signal(approveSignal, { approver: 'amara', comment: 'drill' });
        },
      });
    },
    TEST_MS,
  );

  it(
    'while the GitOps push runs',
    async () => {
      await drill('gitops', {
        request: (env, round) => env.request(`gitops-kill-${round}`),
        // A pre-receive hook that takes 2 s and leaves a mark when it starts: the kill lands while the push runs.
        async setup(env) {
          const hook = join(env.gitopsRepo, 'hooks', 'pre-receive');
          await writeFile(hook, `#!/bin/sh\ncat >/dev/null\ntouch "${env.dir}/push-started-$$"\nsleep 2\nexit 0\n`);
          await chmod(hook, 0o755);
        },
        async killWhen(env, releaseId) {
          await waitFor(
            `${releaseId} awaits approval`,
            () => serverView(env.client, releaseId),
            (v) => v.stage === 'approval',
            60_000,
          );
          const pushesBefore = await pushesStarted(env);
          await approve(env.client, releaseId);
          await waitFor(
            `a push of ${releaseId} reaches the remote`,
            () => pushesStarted(env),
            (n) => n > pushesBefore,
            60_000,
            50,
          );
          return serverView(env.client, releaseId);
        },
      });
    },
    TEST_MS,
  );
});

async function pushesStarted(env: DrillEnv): Promise<number> {
  return (await readdir(env.dir)).filter((f) => f.startsWith('push-started-')).length;
}
