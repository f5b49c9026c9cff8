/**
 * A real signed release for the verify tests: approvers with SSH keys made by ssh-keygen, decisions signed by hand
 * with `ssh-keygen -Y sign`, an Ed25519 release signing key, the manifest and evidence in a filesystem store, and the
 * commit made by the gitops activity into a bare repository. `tamper` rewrites that commit as someone with push
 * rights could.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GitOpsPublishInput } from '../../activities/gitops';
import { createGitOpsActivities } from '../../activities/gitops';
import { parseSigningKey } from '../../activities/gitops/attest';
import { sha256Hex } from '../../activities/common/canonical-json';
import { FilesystemStore } from '../../activities/store';
import { manifestDigest, storeManifest } from '../../activities/store/manifest';
import { DECISION_NAMESPACE, decisionPayload } from '../../contract/decision-payload';
import type { Decision, GrantedWaiver } from '../../contract/types';
import { runCli } from '../../client/cli';
import type { MonitoringEvidenceInput, PauseDecision } from '../../contract/monitoring';
import { activityEnvironment, bareRepo, cloneOf, commitRelease, deliveredRelease, gitIn } from '../gitops/fixtures';
import { makeKey, signByHand, sshFingerprint, type TestKey } from '../trust/ssh-tools';

const REPO_POLICY = new URL('../../config/policies/default.yaml', import.meta.url);

export interface SignedRelease {
  bare: string;
  configDir: string;
  releaseId: string;
  input: GitOpsPublishInput;
  keys: { alice: TestKey; bob: TestKey; stranger: TestKey };
}

export interface SignedReleaseOptions {
  /** approvers.yaml as of the release lists this key for bob instead of the one he signs with. */
  bobListedKey?: 'own' | 'stranger';
  /** Bob's signature is over another comment than the one the evidence records for him. */
  forgedBob?: boolean;
  /** Who approved (default both). */
  approvers?: ('alice' | 'bob')[];
  /**
   * A waiver of two scan rules granted during approval, signed by hand (the policy gains a `waivers:` section:
   * release-manager may waive scan for 30 days at most): by `approver` (default alice), valid for `days` (default 7),
   * and `forged` signs another justification than the evidence records.
   */
  waiver?: { approver?: 'alice' | 'bob'; days?: number; forged?: boolean };
  /**
   * After the release, its monitoring window breached, paused, and alice rolled it back, signed: the window's evidence
   * is committed with her decision (`forged` signs another comment than the evidence records).
   */
  pauseDecision?: { forged?: boolean };
}

function approversYaml(keys: SignedRelease['keys'], bobKey: TestKey): string {
  return [
    'roles:',
    '  release-manager: {}',
    '  ml-lead: {}',
    '  ml-ethics: {}',
    'approvers:',
    '  alice:',
    '    roles: [release-manager]',
    `    keys: ['${keys.alice.line}']`,
    '  bob:',
    '    roles: [ml-lead]',
    `    keys: ['${bobKey.line}']`,
    '',
  ].join('\n');
}

/** Writes a config folder: approvers.yaml, the repository's default policy, and the trusted signing keys. */
export async function writeConfig(dir: string, approvers: string, trustedPems: string[]): Promise<string> {
  await mkdir(join(dir, 'policies'), { recursive: true });
  await mkdir(join(dir, 'signing-keys'), { recursive: true });
  await writeFile(join(dir, 'approvers.yaml'), approvers);
  await copyFile(REPO_POLICY, join(dir, 'policies', 'default.yaml'));
  for (const pem of trustedPems) {
    await writeFile(join(dir, 'signing-keys', `${parseSigningKey(pem, 'test').keyid}.pub`), publicPemOf(pem));
  }
  return dir;
}

export function newSigningKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function publicPemOf(privatePem: string): string {
  const { privateKey } = parseSigningKey(privatePem, 'test');
  return createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
}

/** Commits a signed release of sentiment@1.4.0 to production (2 approvals: release-manager and ml-lead). */
export async function signedRelease(tmp: string, options: SignedReleaseOptions = {}): Promise<SignedRelease> {
  const keyDir = join(tmp, 'keys');
  await mkdir(keyDir, { recursive: true });
  const keys = {
    alice: await makeKey(keyDir, 'alice', 'ed25519'),
    bob: await makeKey(keyDir, 'bob', 'ecdsa-256'),
    stranger: await makeKey(keyDir, 'stranger', 'ed25519'),
  };
  const signingPem = newSigningKeyPem();
  const approvers = approversYaml(keys, options.bobListedKey === 'stranger' ? keys.stranger : keys.bob);
  const configDir = await writeConfig(join(tmp, 'config'), approvers, [signingPem]);
  if (options.waiver) {
    const policyFile = join(configDir, 'policies', 'default.yaml');
    const waivers = ['waivers:', '  maxDays: 30', '  roles:', '    scan: [release-manager]', ''].join('\n');
    await writeFile(policyFile, `${await readFile(policyFile, 'utf8')}\n${waivers}`);
  }

  const store = new FilesystemStore(join(tmp, 'store'));
  const base = deliveredRelease();
  const files = [
    { path: 'group1-shard1of1.bin', size: 4096, sha256: 'a'.repeat(64) },
    { path: 'model.json', size: 120, sha256: 'b'.repeat(64) },
  ];
  const ref = await storeManifest(store, {
    model: 'sentiment',
    version: '1.4.0',
    source: base.manifest.source,
    resolvedRevision: base.manifest.resolvedRevision,
    files,
    totalSize: 4216,
    manifestDigest: manifestDigest(files),
  });
  const manifest = { ...ref, ...(base.manifest.artifact ? { artifact: base.manifest.artifact } : {}) };

  const sign = async (approver: 'alice' | 'bob', role: string, at: string, comment: string): Promise<Decision> => {
    const signedAt = at;
    const payload = decisionPayload({
      releaseId: base.releaseId,
      runId: base.runId,
      manifestDigest: manifest.manifestDigest,
      decision: 'approve',
      comment: approver === 'bob' && options.forgedBob ? 'not what I said' : comment,
      signedAt,
    });
    const signature = await signByHand(keyDir, keys[approver], DECISION_NAMESPACE, payload);
    return {
      approver,
      role,
      roles: [role],
      decision: 'approve',
      comment,
      at,
      signed: {
        fingerprint: await sshFingerprint(keys[approver].publicFile),
        keyType: approver === 'alice' ? 'ssh-ed25519' : 'ecdsa-sha2-nistp256',
        signedAt,
        runId: base.runId,
        manifestDigest: `sha256:${manifest.manifestDigest}`,
        signature,
        payloadDigest: `sha256:${sha256Hex(payload)}`,
      },
    };
  };
  const who = options.approvers ?? ['alice', 'bob'];
  const approvals = [
    ...(who.includes('alice')
      ? [await sign('alice', 'release-manager', '2025-01-01T11:00:00.000Z', 'calendar slot agreed')]
      : []),
    ...(who.includes('bob') ? [await sign('bob', 'ml-lead', '2025-01-01T12:30:00.000Z', 'quality fine')] : []),
  ];

  const grantedWaivers: GrantedWaiver[] = [];
  if (options.waiver) {
    const approver = options.waiver.approver ?? 'alice';
    const at = '2025-01-01T11:30:00.000Z';
    const waiver = {
      gate: 'scan',
      ruleIds: ['pickle.dangerous-global', 'pickle.unknown-global'],
      justification: 'the fixture calls `id` only; reviewed with security',
      expiresAt: new Date(Date.parse(at) + (options.waiver.days ?? 7) * 86_400_000).toISOString(),
    };
    const payload = decisionPayload({
      releaseId: base.releaseId,
      runId: base.runId,
      manifestDigest: manifest.manifestDigest,
      decision: 'waive',
      signedAt: at,
      waiver: options.waiver.forged ? { ...waiver, justification: 'something else' } : waiver,
    });
    grantedWaivers.push({
      ...waiver,
      approver,
      role: approver === 'alice' ? 'release-manager' : 'ml-lead',
      at,
      signed: {
        fingerprint: await sshFingerprint(keys[approver].publicFile),
        keyType: approver === 'alice' ? 'ssh-ed25519' : 'ecdsa-sha2-nistp256',
        signedAt: at,
        runId: base.runId,
        manifestDigest: `sha256:${manifest.manifestDigest}`,
        signature: await signByHand(keyDir, keys[approver], DECISION_NAMESPACE, payload),
        payloadDigest: `sha256:${sha256Hex(payload)}`,
      },
    });
  }

  const scan = await store.putBytes('{"gate":"scan","findings":[]}\n', { path: 'evidence/scan.json' });
  const policyText = await readFile(join(configDir, 'policies', 'default.yaml'));
  const input: GitOpsPublishInput = {
    ...base,
    manifest,
    approvals,
    evidence: {
      entries: [{ name: 'gates/scan.json', sha256: scan.sha256 }],
      index: {
        policy: { name: 'default', file: 'config/policies/default.yaml', digest: sha256Hex(policyText) },
        approvers: { file: 'config/approvers.yaml', digest: sha256Hex(approvers) },
        decisions: approvals,
        refusedDecisions: [],
        ...(grantedWaivers.length > 0 ? { grantedWaivers } : {}),
        gates: base.gates.map((g) => ({
          gate: g.gate,
          verdict: g.verdict,
          summary: g.summary,
          ...(g.gate === 'scan' ? { evidenceSha256: scan.sha256 } : {}),
        })),
      },
    },
  };
  const bare = await bareRepo(tmp);
  const activities = createGitOpsActivities({
    repoUrl: bare,
    workRoot: join(tmp, 'work'),
    store,
    configDir,
    signingKey: parseSigningKey(signingPem, 'test signing key'),
  });
  const released = await commitRelease(activities, input);
  if (options.pauseDecision) {
    const at = '2025-01-02T10:00:00.000Z';
    const comment = 'error rate doubled after the rollout';
    const payload = decisionPayload({
      releaseId: base.releaseId,
      runId: base.runId,
      manifestDigest: manifest.manifestDigest,
      decision: 'rollback',
      comment: options.pauseDecision.forged ? 'keep it running' : comment,
      signedAt: at,
    });
    const decision: PauseDecision = {
      approver: 'alice',
      role: 'release-manager',
      decision: 'rollback',
      at,
      comment,
      signed: {
        fingerprint: await sshFingerprint(keys.alice.publicFile),
        keyType: 'ssh-ed25519',
        signedAt: at,
        runId: base.runId,
        manifestDigest: `sha256:${manifest.manifestDigest}`,
        signature: await signByHand(keyDir, keys.alice, DECISION_NAMESPACE, payload),
        payloadDigest: `sha256:${sha256Hex(payload)}`,
      },
    };
    const window: MonitoringEvidenceInput = {
      releaseId: base.releaseId,
      model: 'sentiment',
      version: '1.4.0',
      environment: 'production',
      commit: released.sha,
      policy: { name: 'default', digest: sha256Hex(policyText) },
      window: '24h',
      result: {
        outcome: 'breached',
        breach: { metric: 'error-rate', phase: 'Failed', message: 'result 0.12 > 0.05' },
        metrics: [],
        startedAt: '2025-01-02T09:00:00.000Z',
        finishedAt: '2025-01-02T10:00:00.000Z',
      },
      outcome: 'paused, then rolled back by alice',
      decisions: [decision],
    };
    await activityEnvironment().run(activities.commitMonitoringEvidence, window);
  }
  return { bare, configDir, releaseId: base.releaseId, input, keys };
}

/**
 * Rewrites the release commit (the branch's only commit) after `edit` changed its files, keeping its message and so
 * its Release-Id trailer, and force-pushes it.
 */
export async function tamper(bare: string, tmp: string, edit: (dir: string) => Promise<void>): Promise<void> {
  const { dir, git } = await cloneOf(bare, tmp, `tamper-${Math.random().toString(36).slice(2)}`);
  await edit(dir);
  await git.raw(['add', '-A']);
  await git.raw(['commit', '-q', '--amend', '--no-edit', '--no-verify']);
  await gitIn(dir).raw(['push', '-q', '-f', 'origin', 'HEAD:refs/heads/main']);
}

/** Runs `mrel verify` and returns its exit code and output lines. */
export async function verify(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['verify', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
