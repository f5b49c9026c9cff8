import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_DIR, loadApprovers, resolveReleaseConfig } from '../../config/loader';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-config-'));
  await cp(DEFAULT_CONFIG_DIR, join(dir, 'config'), { recursive: true });
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const configDir = () => join(dir, 'config');

async function problemsOf(promise: Promise<unknown>): Promise<string[]> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).message.split('\n');
}

describe('config loader', () => {
  it('resolves the shipped default policy for production with digests of both files', async () => {
    const config = await resolveReleaseConfig(
      { policy: 'default', environment: 'production' },
      GATE_POLICY_SECTIONS,
      configDir(),
    );
    expect(config.approval).toEqual({
      environment: 'production',
      minApprovers: 2,
      allowedRoles: ['release-manager', 'ml-lead', 'ml-ethics'],
      requiredRoles: [{ role: 'release-manager', count: 1, reason: 'policy default' }],
      timeout: '72h',
      allowUnsigned: true,
    });
    expect(config.policy).toEqual({
      name: 'default',
      file: 'config/policies/default.yaml',
      digest: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(config.approvers.dana).toEqual(['ml-ethics', 'ml-lead']);
  });

  it('counts only signed decisions in production unless the policy says allowUnsigned; unsigned ones elsewhere', async () => {
    const rule = '      minApprovers: 1\n      allowedRoles: [release-manager]\n';
    await writeFile(
      join(configDir(), 'policies', 'signed.yaml'),
      `approval:\n  timeout: 72h\n  environments:\n    production:\n${rule}    staging:\n${rule}    dev:\n${rule}      allowUnsigned: false\n`,
    );
    const allowUnsigned = async (environment: string) =>
      (await resolveReleaseConfig({ policy: 'signed', environment }, GATE_POLICY_SECTIONS, configDir())).approval
        .allowUnsigned;
    expect(await allowUnsigned('production')).toBe(false);
    expect(await allowUnsigned('staging')).toBe(true);
    expect(await allowUnsigned('dev')).toBe(false);
    await writeFile(
      join(configDir(), 'policies', 'bad.yaml'),
      `approval:\n  timeout: 72h\n  environments:\n    production:\n${rule}      allowUnsigned: sometimes\n`,
    );
    const problems = await problemsOf(
      resolveReleaseConfig({ policy: 'bad', environment: 'production' }, GATE_POLICY_SECTIONS, configDir()),
    );
    expect(problems.join('\n')).toContain('approval.environments.production.allowUnsigned');
  });

  it('names the file, the field and the known roles for an unknown role', async () => {
    await writeFile(
      join(configDir(), 'policies', 'prod.yaml'),
      'approval:\n  timeout: 72h\n  environments:\n    production:\n      minApprovers: 1\n      allowedRoles: [release-manager]\n      requiredRoles:\n        - role: ml-ethic\n',
    );
    const problems = await problemsOf(
      resolveReleaseConfig({ policy: 'prod', environment: 'production' }, GATE_POLICY_SECTIONS, configDir()),
    );
    expect(problems[0]).toBe(
      'config/policies/prod.yaml: approval.environments.production.requiredRoles[0].role "ml-ethic" is not a known role (known: release-manager, ml-lead, ml-engineer, ml-ethics, legal, finops); add it under roles: in approvers.yaml or fix the name',
    );
  });

  it('reports every schema problem with its path', async () => {
    await writeFile(
      join(configDir(), 'policies', 'broken.yaml'),
      'approval:\n  timeout: three days\n  environments:\n    staging:\n      minApprovers: 0\n      allowedRoles: []\n',
    );
    const problems = await problemsOf(
      resolveReleaseConfig({ policy: 'broken', environment: 'staging' }, GATE_POLICY_SECTIONS, configDir()),
    );
    expect(problems).toEqual([
      'config/policies/broken.yaml: approval.timeout: must be a positive duration such as 90s, 30m, 72h, 7d or 2w',
      expect.stringMatching(/^config\/policies\/broken.yaml: approval.environments.staging.minApprovers: /),
      'config/policies/broken.yaml: approval.environments.staging.allowedRoles: name at least one role whose approval counts',
    ]);
  });

  it('refuses required roles that need more approvers than minApprovers', async () => {
    await writeFile(
      join(configDir(), 'policies', 'tight.yaml'),
      'approval:\n  timeout: 1h\n  environments:\n    production:\n      minApprovers: 1\n      allowedRoles: [release-manager, legal]\n      requiredRoles: [{role: release-manager}, {role: legal}]\n',
    );
    const problems = await problemsOf(
      resolveReleaseConfig({ policy: 'tight', environment: 'production' }, GATE_POLICY_SECTIONS, configDir()),
    );
    expect(problems).toEqual([
      'config/policies/tight.yaml: approval.environments.production.minApprovers is 1 but requiredRoles need 2 approvers; raise minApprovers to at least 2',
    ]);
  });

  it('says what to do about a missing policy, an unknown environment and broken YAML', async () => {
    expect(
      await problemsOf(resolveReleaseConfig({ policy: 'nope', environment: 'dev' }, GATE_POLICY_SECTIONS, configDir())),
    ).toEqual([
      'config/policies/nope.yaml: not found; the request names policy "nope"; create config/policies/nope.yaml or name an existing policy',
    ]);
    expect(
      await problemsOf(
        resolveReleaseConfig({ policy: 'default', environment: 'moon' }, GATE_POLICY_SECTIONS, configDir()),
      ),
    ).toEqual([
      'config/policies/default.yaml: approval.environments has no rule for environment "moon" (known: dev, staging, production); add one or release to a known environment',
    ]);
    await writeFile(join(configDir(), 'approvers.yaml'), 'roles: [\n');
    const problems = await problemsOf(loadApprovers(configDir()));
    expect(problems[0]).toMatch(/^config\/approvers.yaml: is not valid YAML: /);
  });

  it('checks approvers against the declared roles', async () => {
    await writeFile(
      join(configDir(), 'approvers.yaml'),
      'roles:\n  release-manager: {}\napprovers:\n  zoe:\n    roles: [release-manger]\n',
    );
    expect(await problemsOf(loadApprovers(configDir()))).toEqual([
      'config/approvers.yaml: approvers.zoe.roles[0] "release-manger" is not a known role (known: release-manager); add it under roles: in approvers.yaml or fix the name',
    ]);
  });
});
