/**
 * What hostile or unlucky input did to a running release, each against the real dev server, worker and git:
 * unbounded signals, a payload that contradicts its signal, decisions while no worker runs, and a GitOps remote that
 * refuses or cannot store the commit after the release was approved.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, getRelease, ReleaseClientError, retryRelease, startRelease } from '../../client/release-client';
import { approveSignal, rejectSignal, RELEASE_STATUS_MEMO } from '../../contract/definitions';
import { MAX_REFUSED, MAX_STATUS_BYTES } from '../../contract/limits';
import type { ReleaseStatus } from '../../contract/types';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

const exec = promisify(execFile);
let env: ReleaseEnv;
let stopWorker: () => Promise<void>;

beforeAll(async () => {
  env = await createReleaseEnv('hardening');
  stopWorker = (await env.startWorker()).stop;
});
afterAll(async () => env?.close());

async function awaitingApproval(name: string, version: string, environment = 'staging'): Promise<string> {
  const request = await env.model(name, version, { environment });
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
  await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval',
    60_000,
  );
  return releaseId;
}

const commitsOf = async (releaseId: string): Promise<number> =>
  (await env.git('log', '--format=%B%x00', 'main')).split('\0').filter((m) => m.includes(`Release-Id: ${releaseId}`))
    .length;

describe('signals carrying anything', () => {
  it('keeps the status bounded and usable after huge and endless refused signals', async () => {
    const releaseId = await awaitingApproval('bounded', '1.0.0', 'production');
    const handle = env.client.workflow.getHandle(releaseId);
    const huge = 'x'.repeat(1024 * 1024);
    await handle.signal(approveSignal, { approver: huge });
    // The server takes signals up to its 2 MB blob limit: two halves of that.
    await handle.signal(approveSignal, { approver: huge.slice(512 * 1024), comment: huge.slice(512 * 1024) });
    for (let i = 0; i < 40; i++) await handle.signal(rejectSignal, { approver: `nobody-${i}`, comment: 'no' });

    const status = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.refused.length + (s.refusedOmitted ?? 0) >= 42,
    );
    expect(Buffer.byteLength(JSON.stringify(status))).toBeLessThan(MAX_STATUS_BYTES);
    expect(status.refused.length).toBeLessThanOrEqual(MAX_REFUSED);
    expect(status.refusedOmitted).toBe(42 - MAX_REFUSED);
    // The first refusal (the oversized approver) and the latest are both kept, the name clipped.
    expect(status.refused[0]?.reason).toMatch(/approver must be at most 128 characters/);
    expect(status.refused[0]?.approver.length).toBeLessThanOrEqual(128);
    expect(status.refused.at(-1)?.approver).toBe('nobody-39');
    expect(status.stage).toBe('approval');
    // The copy kept on the server for when no worker answers is bounded the same way.
    const memo = await eventually(
      async () => (await handle.describe()).memo?.[RELEASE_STATUS_MEMO] as ReleaseStatus | undefined,
      (m) => m?.refusedOmitted === 42 - MAX_REFUSED,
    );
    expect(memo?.refused).toHaveLength(MAX_REFUSED);
    expect(memo?.refused.at(-1)?.approver).toBe('nobody-39');

    // Still decidable through the update, as `mrel approve` does it.
    const answer = await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
    expect(answer.accepted).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThan(MAX_STATUS_BYTES);
  });

  it('refuses a payload whose decision contradicts its signal, and counts nothing', async () => {
    const releaseId = await awaitingApproval('contradiction', '1.0.0');
    const handle = env.client.workflow.getHandle(releaseId);
    await handle.signal(approveSignal, { approver: 'amara', decision: 'reject' } as never);
    await handle.signal(rejectSignal, { approver: 'boris', decision: 'approve' } as never);
    const status = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.refused.length >= 2,
    );
    expect(status.stage).toBe('approval');
    expect(status.approvals).toEqual([]);
    expect(status.refused.map((r) => [r.approver, r.decision])).toEqual([
      ['amara', 'approve'],
      ['boris', 'reject'],
    ]);
    expect(status.refused[0]?.reason).toMatch(/payload says decision "reject" but came as the approve signal/);
  });

  it('refuses a decision that arrives after its validUntil', async () => {
    const releaseId = await awaitingApproval('late', '1.0.0');
    const handle = env.client.workflow.getHandle(releaseId);
    const past = new Date(Date.now() - 60_000).toISOString();
    await handle.signal(approveSignal, { approver: 'amara', validUntil: past });
    const status = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.refused.length >= 1,
    );
    expect(status.approvals).toEqual([]);
    expect(status.refused[0]?.reason).toMatch(/arrived after its validUntil/);
  });
});

describe('a step that keeps failing', () => {
  it('shows its attempt, last failure and next try instead of waiting silently, and still takes a reject', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const request = await env.model('unreachable', '1.0.0', { environment: 'staging' });
    request.model.source = `http://127.0.0.1:${port}/model.bin`;
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    const retrying = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.retrying?.step === 'acquire',
    );
    expect(retrying.stage).toBe('acquire');
    expect(retrying.retrying?.attempt).toBe(1);
    expect(retrying.retrying?.lastFailure).toMatch(/ECONNREFUSED/);
    expect(Date.parse(retrying.retrying?.nextRetryAt ?? '')).toBeGreaterThan(Date.parse(retrying.retrying!.failedAt));

    await decide(env.client, releaseId, { approver: 'amara', decision: 'reject', comment: 'wrong host' });
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('rejected');
    expect(done.retrying).toBeUndefined();
  });
});

describe('while no worker runs', () => {
  it('answers status from the server, and a decision times out and never applies later', async () => {
    const releaseId = await awaitingApproval('worker-down', '1.0.0');
    await stopWorker();
    try {
      const saved = await getRelease(env.client, releaseId, { queryTimeoutMs: 2_000 });
      expect(saved.served?.from).toBe('memo');
      expect(saved.stage).toBe('approval');
      expect(saved.awaiting?.approvalsMissing).toBe(1);

      const refused = await decide(
        env.client,
        releaseId,
        { approver: 'amara', decision: 'approve' },
        { timeoutMs: 3_000 },
      ).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ReleaseClientError);
      expect((refused as ReleaseClientError).code).toBe('WORKER_UNAVAILABLE');
      expect((refused as Error).message).toMatch(/was not applied, and it will not apply later/);
    } finally {
      stopWorker = (await env.startWorker()).stop;
    }
    // boris's decision is handled after amara's abandoned one was delivered: only boris's may count.
    const answer = await decide(env.client, releaseId, { approver: 'boris', decision: 'approve' });
    expect(answer.accepted).toBe(true);
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    expect(done.approvals.map((a) => a.approver)).toEqual(['boris']);
    await recordHistory(env.client, releaseId, 'decision-while-worker-down');
  });
});

describe('a GitOps remote that fails after approval', () => {
  it('waits with the refusal in view, keeps the approval, and commits once after a retry signal', async () => {
    const releaseId = await awaitingApproval('protected', '1.0.0');
    const hook = join(env.settings.gitopsRepo, 'hooks', 'pre-receive');
    await writeFile(hook, '#!/bin/sh\necho "main is protected: merge through a pull request" >&2\nexit 1\n');
    await chmod(hook, 0o755);
    try {
      await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
      const waiting = await eventually(
        () => getRelease(env.client, releaseId),
        (s) => s.retrying?.waitingFor !== undefined,
      );
      expect(waiting.stage).toBe('gitops');
      expect(waiting.retrying?.step).toBe('gitops');
      expect(waiting.retrying?.lastFailure).toMatch(/main is protected/);
      expect(waiting.retrying?.waitingFor).toMatch(/mrel retry/);
      expect(waiting.approvals.map((a) => a.approver)).toEqual(['amara']);
    } finally {
      await rm(hook, { force: true });
    }
    await retryRelease(env.client, releaseId, 'ops');
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    expect(done.retrying).toBeUndefined();
    expect(await commitsOf(releaseId)).toBe(1);
    await recordHistory(env.client, releaseId, 'gitops-refused-then-retried');
  });

  it('retries a remote that cannot store the push (unpacker error) by itself, showing the next try', async () => {
    const releaseId = await awaitingApproval('unpacker', '1.0.0');
    const objects = join(env.settings.gitopsRepo, 'objects');
    // Immutable objects directory: the remote cannot create its quarantine, as with a full disk or wrong owner.
    await exec('chattr', ['+i', objects]);
    try {
      await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
      const retrying = await eventually(
        () => getRelease(env.client, releaseId),
        (s) => s.retrying?.step === 'gitops',
        60_000,
      );
      expect(retrying.retrying?.lastFailure).toMatch(/unpacker error/);
      expect(retrying.retrying?.nextRetryAt).toBeDefined();
      expect(retrying.retrying?.waitingFor).toBeUndefined();
    } finally {
      await exec('chattr', ['-i', objects]);
    }
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    expect(done.approvals.map((a) => a.approver)).toEqual(['amara']);
    expect(await commitsOf(releaseId)).toBe(1);
    await recordHistory(env.client, releaseId, 'gitops-unpacker-retried');
  });

  it('refuses a retry for a release that waits for none', async () => {
    const releaseId = await awaitingApproval('no-retry', '1.0.0');
    await expect(retryRelease(env.client, releaseId, 'ops')).rejects.toThrow(/waits for no retry/);
  });
});

describe('what a release leaves at rest', () => {
  it('is private to the worker, notes an empty file, and sweeps clones that killed workers left behind', async () => {
    const request = await env.model('at-rest', '1.0.0', { environment: 'staging' });
    const modelDir = new URL(request.model.source).pathname;
    await writeFile(join(modelDir, 'placeholder.bin'), '');
    // A clone left by a worker process that no longer runs (pid far above any live one here).
    const orphan = join(env.settings.gitopsWorkRoot, 'clone-0123456789abcdef-4194000');
    await mkdir(join(orphan, '.git'), { recursive: true });

    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    const waiting = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.stage === 'approval',
      60_000,
    );
    const acquire = waiting.gates.find((g) => g.gate === 'acquire');
    expect(acquire?.verdict).toBe('pass');
    expect(acquire?.summary).toMatch(/1 empty file\(s\): placeholder\.bin/);
    expect(acquire?.findings).toEqual([
      expect.objectContaining({ ruleId: 'EmptyFile', severity: 'info', location: 'placeholder.bin' }),
    ]);

    await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
    expect(((await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus).stage).toBe('released');

    const open: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      if (((await stat(dir)).mode & 0o077) !== 0) open.push(dir);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (((await stat(path)).mode & 0o077) !== 0) open.push(path);
      }
    };
    await walk(env.settings.storeRoot);
    expect(open).toEqual([]);
    expect((await stat(env.settings.gitopsWorkRoot)).mode & 0o077).toBe(0);
    await expect(stat(orphan)).rejects.toThrow(/ENOENT/);
  });
});
