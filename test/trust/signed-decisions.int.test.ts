/**
 * Signed decisions in a real release (real dev server, real git, keys and signatures by real ssh-keygen): in
 * production, where the policy counts only signed decisions, an unsigned approval is refused, a signature by someone
 * else's key, over another comment or for another release is refused with why, and signed approvals count with their
 * key's fingerprint, which the evidence in Git carries. In staging an unsigned approval counts, marked unsigned.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { getRelease, startRelease } from '../../client/release-client';
import { signReleaseDecision } from '../../client/sign';
import { decideUpdate } from '../../contract/definitions';
import type { DecideInput, ReleaseStatus } from '../../contract/types';
import { runMrel } from '../helpers/command';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { makeKey, sshFingerprint, type TestKey } from './ssh-tools';

let env: ReleaseEnv;
let keys: Record<'amara' | 'boris' | 'mallory', TestKey>;

beforeAll(async () => {
  env = await createReleaseEnv('signed');
  const keyDir = await mkdtemp(join(tmpdir(), 'mrel-keys-'));
  keys = {
    amara: await makeKey(keyDir, 'amara', 'ed25519'),
    boris: await makeKey(keyDir, 'boris', 'ecdsa-256'),
    mallory: await makeKey(keyDir, 'mallory', 'rsa-3072'),
  };
  // The tests' config with amara's and boris's public keys, and a production policy that counts only signed decisions.
  const configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  const approversFile = join(configDir, 'approvers.yaml');
  const approvers = parse(await readFile(approversFile, 'utf8'));
  approvers.approvers.amara.keys = [keys.amara.line];
  approvers.approvers.boris.keys = [keys.boris.line];
  await writeFile(approversFile, stringify(approvers));
  const policy = parse(await readFile(join(configDir, 'policies', 'default.yaml'), 'utf8'));
  delete policy.approval.environments.production.allowUnsigned;
  await writeFile(join(configDir, 'policies', 'signed.yaml'), stringify(policy));
  env.settings.configDir = configDir;
  await env.startWorker();
});
afterAll(async () => {
  await env?.close();
});

async function awaitingApproval(name: string, environment: string): Promise<string> {
  const request = await env.model(name, '1.0.0', { environment, policy: 'signed' });
  const { releaseId } = await startRelease(env.client, request, {
    taskQueue: env.settings.taskQueue,
    configDir: env.settings.configDir,
  });
  await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval',
    60_000,
  );
  return releaseId;
}

async function decide(releaseId: string, input: DecideInput): Promise<{ accepted: boolean; reason?: string }> {
  const answer = await env.client.workflow.getHandle(releaseId).executeUpdate(decideUpdate, { args: [input] });
  return { accepted: answer.accepted, ...(answer.reason === undefined ? {} : { reason: answer.reason }) };
}

const signed = (releaseId: string, who: keyof typeof keys, comment: string, keyOf: keyof typeof keys = who) =>
  signReleaseDecision(env.client, releaseId, { decision: 'approve', comment }, { keyFile: keys[keyOf].privateFile });

describe('signed decisions', () => {
  it('counts only signed approvals in production, each with its key, and refuses the forged ones with why', async () => {
    const id = await awaitingApproval('signed-model', 'production');
    const unsigned = await decide(id, { approver: 'amara', decision: 'approve', comment: 'lgtm' });
    expect(unsigned.accepted).toBe(false);
    expect(unsigned.reason).toMatch(/unsigned decisions do not count for production .*--sign-with/);

    const byMallory = await signed(id, 'amara', 'lgtm', 'mallory');
    const forged = await decide(id, { approver: 'amara', decision: 'approve', comment: 'lgtm', ...byMallory });
    expect(forged.accepted).toBe(false);
    expect(forged.reason).toMatch(/^signature refused/);

    const amara = await signed(id, 'amara', 'lgtm');
    const altered = await decide(id, { approver: 'amara', decision: 'approve', comment: 'lgtm!', ...amara });
    expect(altered.accepted).toBe(false);
    expect(altered.reason).toMatch(/^signature refused/);

    const counted = await decide(id, { approver: 'amara', decision: 'approve', comment: 'lgtm', ...amara });
    expect(counted).toEqual({ accepted: true });
    const again = await decide(id, { approver: 'amara', decision: 'approve', comment: 'lgtm', ...amara });
    expect(again.accepted).toBe(false);

    // A signature made for another release does not count here.
    const other = await awaitingApproval('other-model', 'production');
    const borisForOther = await signed(other, 'boris', 'ok');
    const elsewhere = await decide(id, { approver: 'boris', decision: 'approve', comment: 'ok', ...borisForOther });
    expect(elsewhere.accepted).toBe(false);
    expect(elsewhere.reason).toMatch(/^signature refused/);

    const boris = await signed(id, 'boris', 'ok');
    expect(await decide(id, { approver: 'boris', decision: 'approve', comment: 'ok', ...boris })).toEqual({
      accepted: true,
    });
    const done = (await env.client.workflow.getHandle(id).result()) as ReleaseStatus;
    await recordHistory(env.client, id, 'signed-released');
    expect(done.stage).toBe('released');
    expect(done.approvals.map((a) => [a.approver, a.signed?.fingerprint, a.signed?.keyType])).toEqual([
      ['amara', await sshFingerprint(keys.amara.publicFile), 'ssh-ed25519'],
      ['boris', await sshFingerprint(keys.boris.publicFile), 'ecdsa-sha2-nistp256'],
    ]);
    expect(done.refused.map((r) => r.approver)).toEqual(['amara', 'amara', 'amara', 'amara', 'boris']);
    const bundle = await env.git('show', 'main:releases/signed-model/1.0.0/production/bundle.json');
    expect(bundle).toContain(await sshFingerprint(keys.amara.publicFile));
  }, 180_000);

  it('takes a decision signed by hand: --payload-out, `ssh-keygen -Y sign`, then --signed-payload', async () => {
    const id = await awaitingApproval('hand-signed', 'production');
    const file = join(env.dir, 'approve.json');
    const written = await cli(['approve', id, '--as', 'amara', '--comment', 'signed offline', '--payload-out', file]);
    expect(written.code).toBe(0);
    expect(written.out).toContain(`ssh-keygen -Y sign -n modelrelease-decision -f <your key> ${file}`);
    expect((await getRelease(env.client, id)).approvals).toEqual([]);
    await promisify(execFile)('ssh-keygen', [
      '-q',
      '-Y',
      'sign',
      '-n',
      'modelrelease-decision',
      '-f',
      keys.amara.privateFile,
      file,
    ]);

    // Reformatted after signing, or sent with another comment: the CLI says so and sends nothing.
    const pretty = join(env.dir, 'pretty.json');
    await writeFile(pretty, JSON.stringify(JSON.parse(await readFile(file, 'utf8')), null, 2));
    await cp(`${file}.sig`, `${pretty}.sig`);
    const reformatted = await cli(['approve', id, '--as', 'amara', '--signed-payload', pretty]);
    expect(reformatted.code).toBe(2);
    expect(reformatted.err).toContain(`--signed-payload ${pretty}: is not the canonical payload`);
    const otherComment = await cli(['approve', id, '--as', 'amara', '--comment', 'lgtm', '--signed-payload', file]);
    expect(otherComment.code).toBe(2);
    expect(otherComment.err).toContain('signs another --comment than the one given');
    // Edited, still canonical: the release itself refuses the signature, and says why.
    const edited = join(env.dir, 'edited.json');
    await writeFile(edited, (await readFile(file, 'utf8')).replace('signed offline', 'signed offline, all fine'));
    await cp(`${file}.sig`, `${edited}.sig`);
    const forged = await cli(['approve', id, '--as', 'amara', '--signed-payload', edited]);
    expect(forged.code).toBe(1);
    expect(forged.out).toMatch(/^refused: signature refused/);

    const sent = await cli(['approve', id, '--as', 'amara', '--signed-payload', file]);
    expect(sent.err).toBe('');
    expect(sent.code).toBe(0);
    expect(sent.out).toMatch(/^approved /);
    const status = await getRelease(env.client, id);
    expect(status.approvals).toMatchObject([{ approver: 'amara', comment: 'signed offline' }]);
    expect(status.approvals[0]?.signed?.fingerprint).toBe(await sshFingerprint(keys.amara.publicFile));
    const shown = await cli(['status', id]);
    const line = shown.out.split('\n').find((l) => l.startsWith('  amara (release-manager) at '));
    expect(line).toMatch(/^ {2}amara \(release-manager\) at \S+, signed SHA256:\S+: signed offline$/);
    expect(line).toContain(`, signed ${await sshFingerprint(keys.amara.publicFile)}: `);
    await env.client.workflow.getHandle(id).terminate('test over');
  }, 120_000);

  it('counts an unsigned approval where the policy allows it, marked unsigned', async () => {
    const id = await awaitingApproval('staging-model', 'staging');
    expect(await decide(id, { approver: 'amara', decision: 'approve' })).toEqual({ accepted: true });
    const done = (await env.client.workflow.getHandle(id).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    expect(done.approvals[0]).toMatchObject({ approver: 'amara', unsigned: true });
    expect(done.approvals[0]?.signed).toBeUndefined();
    expect((await cli(['status', id])).out).toMatch(/^  amara \(release-manager\) at \S+, unsigned$/m);
  }, 120_000);
});

/** Runs `mrel` against the test's dev server. */
const cli = (args: string[]) => runMrel(env.settings.address, args);
