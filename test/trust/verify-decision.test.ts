import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDecision, type DecisionToVerify } from '../../activities/trust/verify-decision';
import { signDecision } from '../../client/sign';
import { DECISION_NAMESPACE, decisionPayload, type DecisionPayloadFields } from '../../contract/decision-payload';
import { makeKey, opensshVerifies, signByHand, sshFingerprint, startAgent, type TestKey } from './ssh-tools';

const HOUR = 3_600_000;
const signedAt = '2026-12-02T00:00:00.000Z';
const decision: DecisionPayloadFields = {
  releaseId: 'release/credit-risk/1.0.0/production',
  runId: 'run-1',
  manifestDigest: `sha256:${'c'.repeat(64)}`,
  decision: 'approve',
  comment: 'fairness numbers reviewed',
  signedAt,
};

let dir: string;
let alice: TestKey;
let aliceRsa: TestKey;
let bob: TestKey;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-decision-'));
  alice = await makeKey(dir, 'alice', 'ed25519');
  aliceRsa = await makeKey(dir, 'alice-rsa', 'rsa-3072');
  bob = await makeKey(dir, 'bob', 'ecdsa-256');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** The key's .pub in a folder of its own: ssh-keygen would otherwise fall back to the private key beside it. */
async function lonePublicKey(key: TestKey): Promise<string> {
  const alone = await mkdtemp(join(dir, 'pub-'));
  const file = join(alone, basename(key.publicFile));
  await copyFile(key.publicFile, file);
  return file;
}

function check(signature: string, overrides: Partial<DecisionToVerify> = {}) {
  return verifyDecision({
    ...decision,
    approver: 'alice',
    signature,
    keys: [alice.line, aliceRsa.line],
    now: new Date(Date.parse(signedAt) + 60_000),
    maxAgeMs: HOUR,
    seen: [],
    ...overrides,
  });
}

describe('signing a decision', () => {
  it('signs with ssh-keygen, and ssh-keygen -Y verify accepts what it made', async () => {
    const payload = decisionPayload(decision);
    const signature = await signDecision(payload, { keyFile: alice.privateFile });
    expect(signature).toMatch(/^-----BEGIN SSH SIGNATURE-----\n[\s\S]+\n-----END SSH SIGNATURE-----\n$/);
    expect(await opensshVerifies(dir, alice, DECISION_NAMESPACE, payload, signature)).toBe(true);
    expect(await opensshVerifies(dir, alice, 'git', payload, signature)).toBe(false);
    const verdict = check(signature);
    expect(verdict).toMatchObject({
      ok: true,
      keyType: 'ssh-ed25519',
      fingerprint: await sshFingerprint(alice.publicFile),
    });
  });

  it('signs through a real ssh-agent from the public key alone', async () => {
    const agent = await startAgent(dir);
    try {
      await agent.add(bob);
      const payload = decisionPayload({ ...decision, decision: 'reject' });
      // Only a .pub with no private key beside it: the signature can come from the agent alone.
      const signature = await signDecision(payload, { keyFile: await lonePublicKey(bob), agentSocket: agent.socket });
      expect(await opensshVerifies(dir, bob, DECISION_NAMESPACE, payload, signature)).toBe(true);
      const verdict = check(signature, { approver: 'bob', decision: 'reject', keys: [bob.line] });
      expect(verdict).toMatchObject({ ok: true, keyType: 'ecdsa-sha2-nistp256' });
    } finally {
      await agent.stop();
    }
    expect(agent.process.exitCode !== null || agent.process.signalCode !== null).toBe(true);
  });

  it('says which key could not sign, without an agent for a public key', async () => {
    const signing = signDecision(decisionPayload(decision), {
      keyFile: await lonePublicKey(bob),
      agentSocket: join(dir, 'none'),
    });
    await expect(signing).rejects.toThrow(/could not sign with .*bob\.pub/);
  });
});

describe('verifying a signed decision', () => {
  let byHand: string;
  beforeAll(async () => {
    byHand = await signByHand(dir, aliceRsa, DECISION_NAMESPACE, decisionPayload(decision));
  });

  it('accepts a signature made by hand with ssh-keygen -Y sign, with either of the approver keys', async () => {
    const verdict = check(byHand);
    expect(verdict).toMatchObject({
      ok: true,
      keyType: 'ssh-rsa',
      fingerprint: await sshFingerprint(aliceRsa.publicFile),
    });
    if (!verdict.ok) return;
    expect(verdict.signatureDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(verdict.payloadDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('refuses a decision that differs from what was signed', () => {
    for (const change of [
      { comment: 'changed' },
      { decision: 'reject' as const },
      { runId: 'run-2' },
      { manifestDigest: `sha256:${'d'.repeat(64)}` },
      { releaseId: 'release/credit-risk/1.0.0/staging' },
    ]) {
      expect(check(byHand, change)).toMatchObject({ ok: false, code: 'bad-signature' });
    }
  });

  it('refuses another namespace, another approver key, and a key not listed', async () => {
    const git = await signByHand(dir, alice, 'git', decisionPayload(decision));
    expect(check(git)).toMatchObject({ ok: false, code: 'wrong-namespace' });
    const byBob = await signByHand(dir, bob, DECISION_NAMESPACE, decisionPayload(decision));
    const unknown = check(byBob);
    expect(unknown).toMatchObject({ ok: false, code: 'unknown-key' });
    if (!unknown.ok) expect(unknown.reason).toContain(await sshFingerprint(bob.publicFile));
    expect(check(byHand, { keys: [alice.line] })).toMatchObject({ ok: false, code: 'unknown-key' });
    expect(check(byHand, { keys: [] })).toMatchObject({ ok: false, code: 'no-keys' });
  });

  it('refuses a replay, by the signature or by any other signature over the same decision', async () => {
    const first = check(byHand);
    if (!first.ok) throw new Error(first.reason);
    expect(check(byHand, { seen: [first.signatureDigest] })).toMatchObject({ ok: false, code: 'replay' });
    // A second signature by the same approver over the same payload is the same decision again.
    const again = await signByHand(dir, alice, DECISION_NAMESPACE, decisionPayload(decision));
    expect(check(again, { seen: [first.payloadDigest] })).toMatchObject({ ok: false, code: 'replay' });
  });

  it('refuses a signature too old, from the future beyond the clock skew, or with no valid time', () => {
    const at = Date.parse(signedAt);
    expect(check(byHand, { now: new Date(at + HOUR + 1) })).toMatchObject({ ok: false, code: 'expired' });
    expect(check(byHand, { now: new Date(at + HOUR) })).toMatchObject({ ok: true });
    expect(check(byHand, { now: new Date(at - 3 * 60_000) })).toMatchObject({ ok: false, code: 'future' });
    expect(check(byHand, { now: new Date(at - 60_000) })).toMatchObject({ ok: true });
    expect(check(byHand, { signedAt: 'soon' })).toMatchObject({ ok: false, code: 'bad-time' });
  });

  it('refuses text that is not a signature, without quoting it', () => {
    const verdict = check('password=hunter2');
    expect(verdict).toMatchObject({ ok: false, code: 'bad-armor' });
    if (!verdict.ok) expect(verdict.reason).not.toContain('hunter2');
  });

  it('verifies a signed waiver over its gate, rule ids, justification and expiry', async () => {
    const waiver = {
      gate: 'scan',
      ruleIds: ['PICKLE-1'],
      justification: 'vendor model, sandboxed',
      expiresAt: '2027-01-01T00:00:00.000Z',
    };
    const waive = { ...decision, decision: 'waive' as const, waiver };
    const signature = await signDecision(decisionPayload(waive), { keyFile: alice.privateFile });
    expect(check(signature, waive)).toMatchObject({ ok: true });
    expect(check(signature, { ...waive, waiver: { ...waiver, ruleIds: ['PICKLE-1', 'PICKLE-2'] } })).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
  });
});
