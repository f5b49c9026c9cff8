/**
 * The `waive` signal in a real release (real dev server, real git, a real malicious pickle, keys and signatures by real
 * ssh-keygen): under a policy with a `waivers:` section, a scan gate that fails only on waivable findings holds the
 * release; a waive from a role the policy does not name, or past its maximum expiry, is refused with why; a signed
 * waive from a release manager judges the gate again with the waiver, the release goes on to approval and is released,
 * and the waiver lands in the evidence in Git.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { decide, getRelease, startRelease, waiveRelease } from '../../client/release-client';
import { signReleaseDecision } from '../../client/sign';
import type { ReleaseStatus } from '../../contract/types';
import { PROJECT_ROOT } from '../../workers/paths';
import { runMrel } from '../helpers/command';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { recordHistory } from '../helpers/histories';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { makeKey, sshFingerprint, type TestKey } from './ssh-tools';

const exec = promisify(execFile);
let env: ReleaseEnv;
let amara: TestKey;

beforeAll(async () => {
  env = await createReleaseEnv('waive');
  amara = await makeKey(await mkdtemp(join(tmpdir(), 'mrel-keys-')), 'amara', 'ed25519');
  const configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  const approversFile = join(configDir, 'approvers.yaml');
  const approvers = parse(await readFile(approversFile, 'utf8'));
  approvers.approvers.amara.keys = [amara.line];
  await writeFile(approversFile, stringify(approvers));
  const policy = parse(await readFile(join(configDir, 'policies', 'default.yaml'), 'utf8'));
  policy.waivers = { maxDays: 30, roles: { scan: ['release-manager'] } };
  await writeFile(join(configDir, 'policies', 'waivable.yaml'), stringify(policy));
  env.settings.configDir = configDir;
  await env.startWorker();
});
afterAll(async () => {
  await env?.close();
});

it('holds a release at a scan that failed on waivable findings until a signed waive from a permitted role', async () => {
  const request = await env.model('trojan', '1.0.0', { environment: 'staging', policy: 'waivable' });
  const dir = request.model.source.slice('file://'.length);
  await exec(join(PROJECT_ROOT, '.venv', 'bin', 'python'), [
    '-c',
    'import os, pickle, sys\nclass P:\n    def __reduce__(self):\n        return (os.system, ("id",))\nopen(sys.argv[1], "wb").write(pickle.dumps({"w": P()}, protocol=4))',
    join(dir, 'weights.pkl'),
  ]);
  const { releaseId } = await startRelease(env.client, request, {
    taskQueue: env.settings.taskQueue,
    configDir: env.settings.configDir,
  });
  const held = await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.held !== undefined || s.stage === 'failed',
    60_000,
  );
  expect(held.held?.gates, held.reason).toEqual(['scan']);
  expect(held.held?.reason).toMatch(/^scan fail: /);
  expect((await cli(['status', releaseId])).out).toMatch(/^held: scan fail: .*; awaits a waive of scan until \S+$/m);
  const rules = [...new Set(held.gates.find((g) => g.gate === 'scan')?.findings.map((f) => f.ruleId))];
  expect(rules).toContain('pickle.dangerous-global');

  const soon = new Date(Date.now() + 7 * 86_400_000).toISOString();
  const waiver = { gate: 'scan', ruleIds: rules, justification: 'the test fixture runs `id` only', expiresAt: soon };
  const byBoris = await waiveRelease(env.client, releaseId, { approver: 'boris', ...waiver });
  expect(byBoris.accepted).toBe(false);
  expect(byBoris.reason).toMatch(/boris holds none of the roles that may waive scan findings \(release-manager\)/);
  const tooLong = { ...waiver, expiresAt: new Date(Date.now() + 90 * 86_400_000).toISOString() };
  const late = await waiveRelease(env.client, releaseId, { approver: 'amara', ...tooLong });
  expect(late.accepted).toBe(false);
  expect(late.reason).toMatch(/later than the policy's maximum of 30 days/);

  // The CLI: every part of a waiver is needed unless a signed payload carries it; a payload to sign by hand holds it.
  const partial = await cli(['waive', releaseId, '--as', 'amara', '--gate', 'scan']);
  expect(partial.code).toBe(2);
  expect(partial.err).toContain('waive needs --rule, --justification, --expires (or --signed-payload');
  const payloadFile = join(env.dir, 'waive.json');
  const cliArgs = ['--gate', 'scan', ...rules.flatMap((r) => ['--rule', r]), '--justification', waiver.justification];
  const written = await cli([
    'waive',
    releaseId,
    '--as',
    'amara',
    ...cliArgs,
    '--expires',
    '7d',
    '--payload-out',
    payloadFile,
  ]);
  expect(written.code).toBe(0);
  const payload = JSON.parse(await readFile(payloadFile, 'utf8'));
  expect(payload).toMatchObject({ decision: 'waive', releaseId, waiver: { gate: 'scan', ruleIds: rules } });
  expect((await getRelease(env.client, releaseId)).waivers ?? []).toEqual([]);

  const signed = await signReleaseDecision(
    env.client,
    releaseId,
    { decision: 'waive', waiver },
    { keyFile: amara.privateFile },
  );
  const granted = await waiveRelease(env.client, releaseId, { approver: 'amara', ...waiver, ...signed });
  expect(granted.accepted, granted.reason).toBe(true);
  const awaiting = await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval' || s.stage === 'failed',
    60_000,
  );
  expect(awaiting.stage, awaiting.reason).toBe('approval');
  expect(['pass', 'warn']).toContain(awaiting.gates.find((g) => g.gate === 'scan')?.verdict);
  expect(awaiting.held).toBeUndefined();
  expect(awaiting.waivers?.[0]).toMatchObject({ approver: 'amara', role: 'release-manager', gate: 'scan' });
  expect(awaiting.waivers?.[0]?.signed?.fingerprint).toBe(await sshFingerprint(amara.publicFile));
  const shown = (await cli(['status', releaseId])).out;
  expect(shown).toContain('waivers:');
  const line = shown.split('\n').find((l) => l.startsWith('  scan: '));
  expect(line).toContain(` by amara (release-manager) at `);
  expect(line).toContain(`, signed ${await sshFingerprint(amara.publicFile)}, until ${soon}: ${waiver.justification}`);

  const approved = await decide(env.client, releaseId, { approver: 'amara', decision: 'approve' });
  expect(approved.accepted, approved.reason).toBe(true);
  const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
  await recordHistory(env.client, releaseId, 'waived-released');
  expect(done.stage).toBe('released');
  const bundle = JSON.parse(await env.git('show', 'main:releases/trojan/1.0.0/staging/bundle.json'));
  expect(bundle.index.grantedWaivers).toMatchObject([{ approver: 'amara', gate: 'scan', ruleIds: rules }]);
}, 180_000);

/** Runs `mrel` against the test's dev server. */
const cli = (args: string[]) => runMrel(env.settings.address, args);
