/**
 * The whole release path against the real Temporal dev server, real git and a real artifact store.
 */
import { writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, getRelease, listReleases, ReleaseClientError, startRelease } from '../../client/release-client';
import { approveSignal, rejectSignal, statusQuery } from '../../contract/definitions';
import type { ReleaseStatus } from '../../contract/types';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

const execFileAsync = promisify(execFile);
let env: ReleaseEnv;

beforeAll(async () => {
  env = await createReleaseEnv('release');
  await env.startWorker();
});
afterAll(async () => env?.close());

const awaitingApproval = (s: ReleaseStatus) => s.stage === 'approval';

async function statusOf(id: string): Promise<ReleaseStatus> {
  return getRelease(env.client, id);
}

async function start(name: string, version: string, environment = 'production') {
  const request = await env.model(name, version, { environment });
  return startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
}

describe('modelReleaseWorkflow', () => {
  it('goes acquire → approval → gitops: two approvals including a release-manager make one commit', async () => {
    const { releaseId, started } = await start('credit-risk', '1.0.0');
    expect(started).toBe(true);
    expect(releaseId).toBe('release/credit-risk/1.0.0/production');

    const waiting = await eventually(() => statusOf(releaseId), awaitingApproval);
    expect(waiting.gates.map((g) => [g.gate, g.verdict])).toEqual([
      ['acquire', 'pass'],
      ['scan', 'pass'],
      ['license', 'pass'],
      ['cost', 'pass'],
    ]);
    const cost = waiting.gates.find((g) => g.gate === 'cost');
    expect(cost?.metrics.monthlyTco).toBeGreaterThan(0);
    expect(cost?.deployment?.nodeSelector?.['node.kubernetes.io/instance-type']).toBe(cost?.metrics.instanceType);
    // The status names the model by digest; the file list stays in the artifact store.
    expect(waiting.manifest).toMatchObject({ fileCount: 4, manifestDigest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(waiting.manifest).not.toHaveProperty('files');
    expect(waiting.awaiting?.approvalsMissing).toBe(2);
    expect(waiting.awaiting?.missingRoles).toEqual([expect.objectContaining({ role: 'release-manager', count: 1 })]);
    expect(waiting.awaiting?.from).toEqual(expect.arrayContaining(['amara', 'boris', 'delia']));

    const first = await decide(env.client, releaseId, {
      approver: 'boris',
      decision: 'approve',
      comment: 'metrics ok',
    });
    expect(first.accepted).toBe(true);
    // Only a release-manager can complete it now.
    expect(first.status.awaiting?.from).toEqual(['amara']);
    await env.client.workflow.getHandle(releaseId).signal(approveSignal, { approver: 'amara' });

    const result = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(result.stage).toBe('released');
    // No cluster configured for this worker: the monitor says so, and the release ends at its commit.
    expect(result.rollout).toMatchObject({ state: 'no-cluster', watches: 1 });
    expect(result.rollout?.reason).toMatch(/^no cluster configured: set MREL_KUBECONFIG/);
    expect(result.reason).toMatch(/^committed; no cluster configured/);
    expect(result.approvals.map((a) => `${a.approver}:${a.role}`)).toEqual(['boris:ml-lead', 'amara:release-manager']);
    expect(result.commit?.alreadyPresent).toBe(false);

    const log = await env.git('log', '--format=%H%n%an%n%B%x00', 'main');
    const commits = log.split('\0').filter((c) => c.includes(`Release-Id: ${releaseId}`));
    expect(commits).toHaveLength(1);
    expect(commits[0]).toContain(result.commit?.sha);
    expect(commits[0]).toMatch(/^Approved-by: boris \(ml-lead\)$/m);
    expect(commits[0]).toMatch(/^Approved-by: amara \(release-manager\)$/m);
    const evidence = JSON.parse(
      await env.git('show', `main:releases/credit-risk/1.0.0/production/evidence.json`),
    ) as Record<string, unknown>;
    expect(evidence).toMatchObject({ releaseId, policy: { name: 'default' } });
    // The evidence bundle: every gate's report by digest, and who decided on what config.
    const bundle = JSON.parse(await env.git('show', `main:releases/credit-risk/1.0.0/production/bundle.json`)) as {
      files: { name: string; sha256: string }[];
      index: { gates: { gate: string; verdict: string; evidenceSha256?: string }[]; decisions: { approver: string }[] };
    };
    expect(bundle.index.gates.map((g) => [g.gate, g.verdict])).toEqual(waiting.gates.map((g) => [g.gate, g.verdict]));
    expect(bundle.index.decisions.map((d) => d.approver)).toEqual(['boris', 'amara']);
    for (const gate of ['scan', 'license', 'cost']) {
      const entry = bundle.files.find((f) => f.name === `gates/${gate}.json`);
      expect(`sha256:${entry?.sha256}`).toBe(waiting.gates.find((g) => g.gate === gate)?.evidence);
    }
    const deployment = await env.git('show', 'main:apps/credit-risk/overlays/production/deployment-patch.yaml');
    expect(deployment).toContain(`policy.modelrelease.io/release-id: ${releaseId}`);
    expect(deployment).toContain('policy.modelrelease.io/license: Apache-2.0');
    expect(deployment).toContain('policy.modelrelease.io/license-verdict: pass');
    expect(deployment).toContain('policy.modelrelease.io/scan-verdict: pass');
    expect(deployment).toContain(`node.kubernetes.io/instance-type: ${String(cost?.metrics.instanceType)}`);
    expect(deployment).toContain(`replicas: ${String(cost?.deployment?.replicas)}`);
    await recordHistory(env.client, releaseId, 'released');
  });

  it('a license under review asks legal to approve too; a denied license stops the release before approval', async () => {
    const review = await env.model('llama-tune', '1.0.0', { environment: 'staging' });
    await writeFile(join(review.model.source.slice('file://'.length), 'README.md'), '---\nlicense: llama3\n---\n');
    const started = await startRelease(env.client, review, { taskQueue: env.settings.taskQueue });
    const waiting = await eventually(() => statusOf(started.releaseId), awaitingApproval);
    expect(waiting.gates.find((g) => g.gate === 'license')).toMatchObject({ verdict: 'warn' });
    expect(waiting.awaiting?.missingRoles).toEqual([expect.objectContaining({ role: 'legal', count: 1 })]);
    expect(waiting.awaiting?.from).toEqual(['enzo']);
    const medium = await eventually(
      () => listReleases(env.client, { model: 'llama-tune', risk: 'medium' }),
      (r) => r.length === 1,
    );
    expect(medium[0]?.releaseId).toBe(started.releaseId);
    const first = await decide(env.client, started.releaseId, { approver: 'amara', decision: 'approve' });
    expect(first.status.awaiting?.approvalsMissing).toBe(1);
    await decide(env.client, started.releaseId, { approver: 'enzo', decision: 'approve', comment: 'llama3 terms ok' });
    const released = (await env.client.workflow.getHandle(started.releaseId).result()) as ReleaseStatus;
    expect(released.stage).toBe('released');

    const denied = await env.model('nc-model', '1.0.0', { environment: 'staging' });
    await writeFile(
      join(denied.model.source.slice('file://'.length), 'README.md'),
      '---\nlicense: cc-by-nc-4.0\n---\n',
    );
    const failed = await startRelease(env.client, denied, { taskQueue: env.settings.taskQueue });
    await env.client.workflow
      .getHandle(failed.releaseId)
      .result()
      .catch(() => undefined);
    const status = await statusOf(failed.releaseId);
    expect(status.stage).toBe('failed');
    expect(status.reason).toMatch(/^license fail: /);
    expect(status.approvals).toEqual([]);
  });

  it('a pickle that runs a shell command when loaded fails the scan gate and stops the release', async () => {
    const request = await env.model('trojan', '1.0.0', { environment: 'staging' });
    const dir = request.model.source.slice('file://'.length);
    await execFileAsync(join(PROJECT_ROOT, '.venv', 'bin', 'python'), [
      '-c',
      'import os, pickle, sys\nclass P:\n    def __reduce__(self):\n        return (os.system, ("id",))\nopen(sys.argv[1], "wb").write(pickle.dumps({"w": P()}, protocol=4))',
      join(dir, 'weights.pkl'),
    ]);
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    await env.client.workflow
      .getHandle(releaseId)
      .result()
      .catch(() => undefined);
    const status = await statusOf(releaseId);
    expect(status.stage).toBe('failed');
    expect(status.reason).toMatch(/^scan fail: /);
    const scan = status.gates.find((g) => g.gate === 'scan');
    expect(
      scan?.findings.some((f) => f.location.startsWith('weights.pkl') && /os\.system|posix\.system/.test(f.message)),
    ).toBe(true);
    expect(scan?.evidence).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('a second start of the same release returns the running one, never a second workflow', async () => {
    const first = await start('dedupe', '2.0.0', 'staging');
    const second = await start('dedupe', '2.0.0', 'staging');
    expect(second).toEqual({ ...first, started: false });
    const runs = await listReleases(env.client, { model: 'dedupe' });
    await eventually(
      () => listReleases(env.client, { model: 'dedupe' }),
      (r) => r.length === 1,
    );
    expect(runs.length).toBeLessThanOrEqual(1);
    await env.client.workflow.getHandle(first.releaseId).terminate('test cleanup');
  });

  it('records refused approvals with why and changes nothing', async () => {
    const { releaseId } = await start('refusals', '0.1.0');
    await eventually(() => statusOf(releaseId), awaitingApproval);
    const stranger = await decide(env.client, releaseId, { approver: 'mallory', decision: 'approve' });
    expect(stranger).toMatchObject({ accepted: false, reason: expect.stringContaining('not an approver') });
    const wrongRole = await decide(env.client, releaseId, { approver: 'cyril', decision: 'approve' });
    expect(wrongRole.reason).toMatch(/cyril has roles \[ml-engineer\] but production decisions need one of/);
    expect((await decide(env.client, releaseId, { approver: 'boris', decision: 'approve' })).accepted).toBe(true);
    const twice = await decide(env.client, releaseId, { approver: 'boris', decision: 'approve' });
    expect(twice.reason).toMatch(/boris already approved at .*second approval by the same person does not count/);
    // A malformed signal reaches history (signals have no validator) and is refused, too.
    await env.client.workflow.getHandle(releaseId).signal(approveSignal, { comment: 'who am I' } as never);

    const status = await eventually(
      () => statusOf(releaseId),
      (s) => s.refused.length === 4,
    );
    expect(status.approvals.map((a) => a.approver)).toEqual(['boris']);
    expect(status.stage).toBe('approval');
    expect(status.refused.map((r) => r.approver)).toEqual(['mallory', 'cyril', 'boris', '(missing approver)']);
    expect(status.refused[3]?.reason).toMatch(/malformed approve signal/);
    await recordHistory(env.client, releaseId, 'refused-then-waiting');

    // The update's validator turns malformed input away before it reaches history.
    await expect(decide(env.client, releaseId, { approver: '', decision: 'approve' })).rejects.toBeInstanceOf(
      ReleaseClientError,
    );
    await env.client.workflow.getHandle(releaseId).terminate('test cleanup');
  });

  it('a reject ends the release as rejected with the reason, and later decisions are answered as ended', async () => {
    const { releaseId } = await start('rejected-model', '3.1.0');
    await eventually(() => statusOf(releaseId), awaitingApproval);
    await env.client.workflow
      .getHandle(releaseId)
      .signal(rejectSignal, { approver: 'delia', comment: 'fairness evidence is too thin' });
    const result = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(result.stage).toBe('rejected');
    expect(result.reason).toBe('rejected by delia (ml-lead): fairness evidence is too thin');
    expect(result.commit).toBeUndefined();
    expect(await env.git('log', '--all', '--format=%B')).not.toContain(releaseId);
    await recordHistory(env.client, releaseId, 'rejected');

    const late = decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
    await expect(late).rejects.toMatchObject({ code: 'RELEASE_ENDED', message: expect.stringContaining('rejected') });
    // Starting the same release again does not start a second workflow.
    const again = await start('rejected-model', '3.1.0');
    expect(again.started).toBe(false);
  });

  it('a digest mismatch fails the release before approval, naming the file and both digests', async () => {
    const request = await env.model('tampered', '1.0.0', { environment: 'staging' });
    request.model.digests = { 'config.json': '0'.repeat(64) };
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    const err = await env.client.workflow
      .getHandle(releaseId)
      .result()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('ReleaseFailed');
    expect(cause.message).toMatch(/acquire fail: .*config\.json.*0{64}/);
    const status = await statusOf(releaseId);
    expect(status.stage).toBe('failed');
    expect(status.gates[0]).toMatchObject({ gate: 'acquire', verdict: 'fail' });
    expect(status.gates[0]?.findings[0]?.ruleId).toBe('DigestMismatch');
    await recordHistory(env.client, releaseId, 'digest-mismatch');
  });

  it('rejects a bad request at the door with one problem per field, and starts nothing', async () => {
    const request = await env.model('Bad Name', '1.0.0', { environment: 'moon' });
    const err = (await startRelease(env.client, { ...request, policy: 'default' }).catch(
      (e: unknown) => e,
    )) as ReleaseClientError;
    expect(err).toBeInstanceOf(ReleaseClientError);
    expect(err.problems.join('\n')).toMatch(/^model\.name: /m);
    const unknownEnv = await env.model('fine-name', '1.0.0', { environment: 'moon' });
    const err2 = (await startRelease(env.client, unknownEnv).catch((e: unknown) => e)) as ReleaseClientError;
    expect(err2.problems.join('\n')).toMatch(/no rule for environment "moon" \(known: dev, staging, production\)/);
    expect(await listReleases(env.client, { model: 'fine-name' })).toEqual([]);
  });

  it('the status query is the same through the client module and the raw handle', async () => {
    const { releaseId } = await start('query-check', '1.0.0', 'dev');
    const viaClient = await eventually(() => statusOf(releaseId), awaitingApproval);
    const viaHandle = await env.client.workflow.getHandle(releaseId).query(statusQuery);
    expect(viaHandle.releaseId).toBe(viaClient.releaseId);
    expect(viaHandle.stage).toBe('approval');
    await env.client.workflow.getHandle(releaseId).terminate('test cleanup');
  });
});
