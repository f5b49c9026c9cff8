/**
 * `mrel verify` on a real release commit (real git, real ssh-keygen signatures, a real Ed25519 attestation), then on
 * copies of it that someone with push rights tampered with: each broken link is named, and exits 1.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { parseEnvelope, signEnvelope } from '../../activities/trust/dsse';
import { parseSigningKey } from '../../activities/gitops/attest';
import { test } from '../gitops/fixtures';
import { newSigningKeyPem, signedRelease, tamper, verify, writeConfig } from './signed-release';

const RELEASE = 'releases/sentiment/1.4.0/production';
const PATCH = 'apps/sentiment/overlays/production/deployment-patch.yaml';

describe('mrel verify', () => {
  test('an untouched release verifies: exit 0, every link ok, as text and JSON', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    const text = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(text.err).toBe('');
    expect(text.out).toMatch(/^VERIFIED release\/sentiment\/1\.4\.0\/production at [0-9a-f]{12} \(/);
    expect(text.code).toBe(0);

    const json = await verify([release.bare, release.releaseId, '--config', release.configDir, '--format', 'json']);
    const report = JSON.parse(json.out) as { verified: boolean; links: Record<string, unknown>; problems: string[] };
    expect(report.problems).toEqual([]);
    expect(report.verified).toBe(true);
    expect(report.links).toEqual({
      evidence: 'ok',
      commit: 'ok',
      attestation: 'ok',
      'ml-bom': 'ok',
      workload: 'ok',
      approvals: 'ok',
    });
    expect(json.code).toBe(0);
  });

  test('an edited evidence file breaks the evidence link', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    await tamper(release.bare, tmp, async (dir) => {
      const bundle = JSON.parse(await readFile(join(dir, RELEASE, 'bundle.json'), 'utf8')) as {
        files: { name: string; path: string }[];
      };
      const scan = bundle.files.find((f) => f.name === 'gates/scan.json');
      await writeFile(join(dir, RELEASE, scan?.path as string), '{"gate":"scan","findings":[],"note":"all clear"}\n');
    });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toMatch(/^NOT VERIFIED/);
    expect(result.out).toMatch(/^evidence: gates\/scan\.json: evidence\/[0-9a-f]{64}\.json hashes to sha256:/m);
    // Only that link: the Statement pins bundle.json, which still lists the original digest.
    expect(result.out.split('\n')).toHaveLength(2);
    expect(result.code).toBe(1);
  });

  test('an edited release summary (evidence.json) breaks the attestation link', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    await tamper(release.bare, tmp, async (dir) => {
      const file = join(dir, RELEASE, 'evidence.json');
      await writeFile(file, (await readFile(file, 'utf8')).replace('"production"', '"staging"'));
    });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toMatch(/^attestation: evidence\.json is not the one it pins \(sha256:[0-9a-f]{64}\)/m);
    expect(result.code).toBe(1);
  });

  test('a swapped image digest in the Deployment breaks the workload link', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    const swapped = `127.0.0.1:5000/modelrelease/model-server@sha256:${'6'.repeat(64)}`;
    await tamper(release.bare, tmp, async (dir) => {
      const file = join(dir, PATCH);
      const text = await readFile(file, 'utf8');
      expect(text).toContain(`model-server@sha256:${'5'.repeat(64)}`);
      await writeFile(file, text.replace(`model-server@sha256:${'5'.repeat(64)}`, swapped.split('/').pop() as string));
    });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toContain(`workload: ${PATCH}: runs ${swapped}, which the attestation does not name`);
    expect(result.out).toContain(
      `workload: ${PATCH}: does not run the attested image 127.0.0.1:5000/modelrelease/model-server@sha256:${'5'.repeat(64)}`,
    );
    expect(result.code).toBe(1);
  });

  test('an altered attestation (same signature, another Statement) breaks the attestation link', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    await tamper(release.bare, tmp, async (dir) => {
      const file = join(dir, RELEASE, 'attestation.dsse.json');
      const envelope = parseEnvelope(await readFile(file));
      const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
      statement.subject[1].digest.sha256 = 'e'.repeat(64);
      envelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
      await writeFile(file, JSON.stringify(envelope, null, 2));
    });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toMatch(/^attestation: signatures\[0\]: the signature by key [0-9a-f]{16}… does not verify/m);
    expect(result.code).toBe(1);
  });

  test('an attestation forged with a key that config/signing-keys does not trust is refused', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    const forger = parseSigningKey(newSigningKeyPem(), 'forger');
    await tamper(release.bare, tmp, async (dir) => {
      const file = join(dir, RELEASE, 'attestation.dsse.json');
      const envelope = parseEnvelope(await readFile(file));
      const forged = signEnvelope(envelope.payloadType, Buffer.from(envelope.payload, 'base64'), forger.privateKey);
      await writeFile(file, JSON.stringify(forged, null, 2));
    });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toContain(
      `attestation: signatures[0]: key ${forger.keyid.slice(0, 16)}… is not a trusted signing key`,
    );
    expect(result.code).toBe(1);

    // The genuine release, checked against a config that trusts only another key, is not verified either.
    const untrusting = await writeConfig(join(tmp, 'other-config'), '', [newSigningKeyPem()]);
    const other = await verify([release.bare, release.releaseId, '--config', untrusting]);
    expect(other.out).toMatch(/^attestation: signatures\[0\]: key [0-9a-f]{16}… is not a trusted signing key$/m);
    expect(other.code).toBe(1);
  });

  test('an approval signed with a key that approvers.yaml no longer listed at the release is refused', async ({
    tmp,
  }) => {
    const release = await signedRelease(tmp, { bobListedKey: 'stranger' });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toMatch(/^approvals: approval by bob: .*approvers\.yaml \(approvers\.bob\.keys\)$/m);
    expect(result.out).not.toContain('approval by alice');
    expect(result.code).toBe(1);
  });

  test('a forged approval (a signature over another decision) is named', async ({ tmp }) => {
    const release = await signedRelease(tmp, { forgedBob: true });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toMatch(/^approvals: approval by bob: the signature does not match the signed content/m);
    expect(result.out.split('\n')).toHaveLength(2);
    expect(result.code).toBe(1);
  });

  test('a signed waiver verifies; a forged one, one from a role the policy does not name, or one too long is named', async ({
    tmp,
  }) => {
    const signed = await signedRelease(join(tmp, 'signed'), { waiver: {} });
    const ok = await verify([signed.bare, signed.releaseId, '--config', signed.configDir]);
    expect(ok.out).toMatch(/^VERIFIED /);
    expect(ok.code).toBe(0);

    const forged = await signedRelease(join(tmp, 'forged'), { waiver: { forged: true } });
    const bad = await verify([forged.bare, forged.releaseId, '--config', forged.configDir]);
    expect(bad.out).toMatch(
      /^approvals: waiver of scan \(pickle\.dangerous-global, pickle\.unknown-global\) by alice: the signature does not match the signed content/m,
    );
    expect(bad.out.split('\n')).toHaveLength(2);
    expect(bad.code).toBe(1);

    const byBob = await signedRelease(join(tmp, 'bob'), { waiver: { approver: 'bob' } });
    const role = await verify([byBob.bare, byBob.releaseId, '--config', byBob.configDir]);
    expect(role.out).toMatch(/^approvals: waiver of scan .* by bob: the role ml-lead may not waive scan findings/m);
    expect(role.code).toBe(1);

    const long = await signedRelease(join(tmp, 'long'), { waiver: { days: 90 } });
    const late = await verify([long.bare, long.releaseId, '--config', long.configDir]);
    expect(late.out).toMatch(
      /^approvals: waiver of scan .* by alice: expires 2025-04-01T11:30:00\.000Z, later than policy default's maximum of 30 days$/m,
    );
    expect(late.code).toBe(1);
  });

  test("a monitoring window's signed rollback verifies; a forged one or an edited window file is named", async ({
    tmp,
  }) => {
    const signed = await signedRelease(join(tmp, 'signed'), { pauseDecision: {} });
    const ok = await verify([signed.bare, signed.releaseId, '--config', signed.configDir, '--format', 'json']);
    const report = JSON.parse(ok.out) as { verified: boolean; links: Record<string, unknown>; problems: string[] };
    expect(report.problems).toEqual([]);
    expect(report.links.monitoring).toBe('ok');
    expect(ok.code).toBe(0);

    const forged = await signedRelease(join(tmp, 'forged'), { pauseDecision: { forged: true } });
    const bad = await verify([forged.bare, forged.releaseId, '--config', forged.configDir]);
    expect(bad.out).toMatch(
      /^monitoring: rollback by alice \(monitoring\/[0-9a-f]{12}…\): the signature does not match the signed content/m,
    );
    expect(bad.out.split('\n')).toHaveLength(2);
    expect(bad.code).toBe(1);

    // Someone with push rights edits the window's file afterwards (say, to hide who decided).
    await tamper(signed.bare, tmp, async (dir) => {
      const folder = join(dir, RELEASE, 'monitoring');
      const [name] = await readdir(folder);
      const file = join(folder, name as string);
      await writeFile(file, (await readFile(file, 'utf8')).replace('"alice"', '"bob"'));
    });
    const edited = await verify([signed.bare, signed.releaseId, '--config', signed.configDir]);
    expect(edited.out).toMatch(
      /^monitoring: monitoring\/[0-9a-f]{64}\.json hashes to sha256:[0-9a-f]{64}: it was edited/m,
    );
    expect(edited.code).toBe(1);
  });

  test("approvals that do not meet the policy's rule for the environment are named", async ({ tmp }) => {
    const release = await signedRelease(tmp, { approvers: ['bob'] });
    const result = await verify([release.bare, release.releaseId, '--config', release.configDir]);
    expect(result.out).toContain(
      'approvals: policy default (production): 2 approvals needed, 1 count; no approval fills the required role(s) release-manager',
    );
    expect(result.out.split('\n')).toHaveLength(2);
    expect(result.code).toBe(1);
  });

  test('an unknown release exits 1; a repository that cannot be read and a bad --format exit 2', async ({ tmp }) => {
    const release = await signedRelease(tmp);
    const missing = await verify([release.bare, 'release/sentiment/9.9.9/production', '--config', release.configDir]);
    expect(missing.out).toMatch(
      /^commit: no commit on main carries the trailer Release-Id: release\/sentiment\/9\.9\.9/m,
    );
    expect(missing.code).toBe(1);

    const unreadable = await verify([join(tmp, 'no-such-repo'), release.releaseId]);
    expect(unreadable.err).toMatch(/cannot be read as a Git repository/);
    expect(unreadable.code).toBe(2);

    const format = await verify([release.bare, release.releaseId, '--format', 'yaml']);
    expect(format.code).toBe(2);
  });
});
