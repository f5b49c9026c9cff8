import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfigActivities } from '../../activities/config';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import { ConfigError, loadApprovers, resolveReleaseConfig } from '../../config/loader';
import { activityEnvironment } from '../gitops/fixtures';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import type { ReleaseConfig } from '../../contract/types';
import { makeKey, type TestKey } from './ssh-tools';

let dir: string;
let ed: TestKey;
let ec: TestKey;
let weak: TestKey;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-approver-keys-'));
  ed = await makeKey(dir, 'amara', 'ed25519');
  ec = await makeKey(dir, 'amara-laptop', 'ecdsa-384');
  weak = await makeKey(dir, 'boris', 'rsa-1024');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** A copy of the fixture config whose approvers.yaml is `approvers` (YAML under `approvers:`). */
async function configWith(approvers: string): Promise<string> {
  const config = await mkdtemp(join(dir, 'config-'));
  await cp(FIXTURE_CONFIG_DIR, config, { recursive: true });
  // The fixture's roles and people, plus the approvers under test.
  const fixture = await readFile(join(config, 'approvers.yaml'), 'utf8');
  await writeFile(join(config, 'approvers.yaml'), `${fixture.trimEnd()}\n${approvers}`);
  return config;
}

async function problemsOf(promise: Promise<unknown>): Promise<string[]> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).problems;
}

describe('approvers.yaml keys and identities', () => {
  it('loads keys and identities, and hands the keys of approvers who have them to the release', async () => {
    const config = await configWith(
      `  zoe:\n    roles: [release-manager]\n    keys:\n      - '${ed.line}'\n      - '${ec.line}'\n    identities: ['oidc:https://issuer.example.com#zoe-sub', 'token:zoe-ci']\n`,
    );
    const approvers = await loadApprovers(config);
    expect(approvers.approvers.zoe?.identities).toEqual(['oidc:https://issuer.example.com#zoe-sub', 'token:zoe-ci']);
    const release = await resolveReleaseConfig(
      { policy: 'default', environment: 'production' },
      GATE_POLICY_SECTIONS,
      config,
    );
    expect(release.approverKeys).toEqual({ zoe: [ed.line, ec.line] });
    expect(release.approvers.zoe).toEqual(['release-manager']);
  });

  it('leaves approverKeys out when nobody lists keys, so snapshots stay as they were', async () => {
    const release = await resolveReleaseConfig(
      { policy: 'default', environment: 'production' },
      GATE_POLICY_SECTIONS,
      FIXTURE_CONFIG_DIR,
    );
    expect(release).not.toHaveProperty('approverKeys');
  });

  it('names approvers.<id>.keys[i] for a key cut short, of an unknown type or not base64, quoting none', async () => {
    const [type, data] = ed.line.split(' ') as [string, string];
    const config = await configWith(
      `  zoe:\n    roles: [release-manager]\n    keys:\n      - '${ed.line}'\n      - '${type} ${data.slice(0, 48)}'\n      - 'ssh-dss ${data}'\n      - '${type} ${data}$'\n      - 'ecdsa-sha2-nistp256 ${data}'\n`,
    );
    const problems = await problemsOf(loadApprovers(config));
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'approvers.zoe.keys[1]',
      'approvers.zoe.keys[2]',
      'approvers.zoe.keys[3]',
      'approvers.zoe.keys[4]',
    ]);
    expect(problems[0]).toContain('cut short');
    expect(problems[2]).toContain('not valid base64');
    expect(problems[3]).toContain('is not of its type ecdsa-sha2-nistp256');
    for (const problem of problems) expect(problem).not.toContain(data.slice(0, 20));
  });

  it('refuses an identity of no known kind, and one key or identity for two approvers', async () => {
    const config = await configWith(
      `  zoe:\n    roles: [release-manager]\n    keys: ['${ed.line}']\n    identities: ['token:shared']\n  yann:\n    roles: [ml-lead]\n    keys: ['${ed.line.replace(/ \S+$/, ' yann@laptop')}']\n    identities: ['token:shared', 'ldap:yann']\n`,
    );
    const problems = await problemsOf(loadApprovers(config));
    expect(problems).toEqual([
      'approvers.yann.identities[1]: identities are oidc:<issuer URL>#<subject> or token:<name> (e.g. oidc:https://issuer.example.com#1234, token:ci)',
    ]);
    const fixed = await configWith(
      `  zoe:\n    roles: [release-manager]\n    keys: ['${ed.line}']\n    identities: ['token:shared']\n  yann:\n    roles: [ml-lead]\n    keys: ['${ed.line.replace(/ \S+$/, ' yann@laptop')}']\n    identities: ['token:shared']\n`,
    );
    expect(await problemsOf(loadApprovers(fixed))).toEqual([
      'approvers.yann.keys[0] is the same key as approvers.zoe.keys[0]; each key belongs to one approver',
      'approvers.yann.identities[0] is the same identity as approvers.zoe.identities[0]; each identity belongs to one approver',
    ]);
  });

  it('fails the release config (InvalidConfig) for a key of the right form that does not parse, naming it', async () => {
    const config = await configWith(`  zoe:\n    roles: [release-manager]\n    keys: ['${ed.line}', '${weak.line}']\n`);
    const activities = createConfigActivities({ configDir: config });
    const env = activityEnvironment();
    const failure = await env.run(activities.loadReleaseConfig, { policy: 'default', environment: 'production' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('InvalidConfig');
    expect((failure as ApplicationFailure).message).toMatch(
      /approvers\.yaml: approvers\.zoe\.keys\[1\]: RSA keys need at least 2048 bits/,
    );

    const good = await configWith(`  zoe:\n    roles: [release-manager]\n    keys: ['${ed.line}', '${ec.line}']\n`);
    const loaded: ReleaseConfig = await activityEnvironment().run(
      createConfigActivities({ configDir: good }).loadReleaseConfig,
      {
        policy: 'default',
        environment: 'production',
      },
    );
    expect(loaded.approverKeys?.zoe).toHaveLength(2);
  });
});
