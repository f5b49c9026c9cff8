/**
 * The policy's `delivery:` section: checked when the policy loads (a tag instead of a digest fails there, naming the
 * field), then resolved per environment with the environment's overrides and the defaults.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveDelivery } from '../../activities/gitops/delivery-policy';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import { ConfigError, DEFAULT_CONFIG_DIR, loadApprovers, loadPolicy } from '../../config/loader';
import { PULLER_IMAGE, SERVING_IMAGE } from './fixtures';

const FIXTURE_CONFIG = resolve(import.meta.dirname, '../fixtures/config');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-delivery-'));
  await cp(FIXTURE_CONFIG, join(dir, 'config'), { recursive: true });
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const APPROVAL = `approval:
  timeout: 72h
  environments:
    staging: { minApprovers: 1, allowedRoles: [ml-lead, release-manager] }
    production: { minApprovers: 1, allowedRoles: [release-manager] }
`;

/** Loads config/policies/<name>.yaml holding the approval rules above and `delivery` (YAML under `delivery:`). */
async function loadWithDelivery(delivery: string, name = 'delivered') {
  const config = join(dir, 'config');
  await writeFile(join(config, 'policies', `${name}.yaml`), `${APPROVAL}delivery:\n${delivery}`);
  return loadPolicy(name, await loadApprovers(config), GATE_POLICY_SECTIONS, config);
}

async function problemsOf(promise: Promise<unknown>): Promise<string[]> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).problems;
}

describe('the delivery section at load', () => {
  it.each([
    ['a tag', 'ml/model-server:1.2'],
    ['latest', 'ml/model-server:latest'],
    ['no tag at all', 'ml/model-server'],
    ['a short digest', 'ml/model-server@sha256:abc123'],
  ])('refuses a serving image given by %s, naming the field', async (_what, image) => {
    const problems = await problemsOf(loadWithDelivery(`  servingImage: ${image}\n`));
    expect(problems).toEqual([expect.stringMatching(/^delivery\.servingImage: must be pinned by digest/)]);
  });

  it('refuses a serving image or puller given by tag in an environment override, naming the environment', async () => {
    const problems = await problemsOf(
      loadWithDelivery(
        `  servingImage: ${SERVING_IMAGE}\n  environments:\n    production:\n      servingImage: ml/server:latest\n      modelMount: init-container\n      pullerImage: ghcr.io/oras-project/oras:v1.2.0\n`,
      ),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^delivery\.environments\.production\.servingImage: must be pinned by digest/),
      expect.stringMatching(/^delivery\.environments\.production\.pullerImage: must be pinned by digest/),
    ]);
  });

  it('requires a serving image, and a puller where the model is mounted by init container', async () => {
    expect(await problemsOf(loadWithDelivery('  serving: kserve\n'))).toEqual([
      expect.stringMatching(/^delivery\.servingImage: is required/),
    ]);
    expect(
      await problemsOf(
        loadWithDelivery(
          `  servingImage: ${SERVING_IMAGE}\n  environments:\n    staging:\n      modelMount: init-container\n`,
        ),
      ),
    ).toEqual([expect.stringMatching(/^delivery\.environments\.staging\.pullerImage: is required when modelMount/)]);
  });

  it('refuses an environment the approval rules do not know, an unknown role and an unknown field', async () => {
    const problems = await problemsOf(
      loadWithDelivery(
        `  servingImage: ${SERVING_IMAGE}\n  environments:\n    prod:\n      rollout: { pause: { roles: [release-managr] } }\n`,
      ),
    );
    expect(problems).toEqual([
      'delivery.environments.prod is not an environment of approval.environments (known: staging, production); fix the name or add its approval rule',
      expect.stringMatching(
        /^delivery\.environments\.prod\.rollout\.pause\.roles\[0\] "release-managr" is not a known role/,
      ),
    ]);
    expect(await problemsOf(loadWithDelivery(`  servingImage: ${SERVING_IMAGE}\n  servingimage: x\n`))).toEqual([
      expect.stringMatching(/servingimage/),
    ]);
    expect(
      await problemsOf(loadWithDelivery(`  servingImage: ${SERVING_IMAGE}\n  rollout: { onStall: ignore }\n`)),
    ).toEqual([expect.stringMatching(/^delivery\.rollout\.onStall: /)]);
  });
});

describe('resolveDelivery', () => {
  it('fills in the defaults, naming the Flux Kustomization after the model and environment', async () => {
    const policy = await loadWithDelivery(`  servingImage: ${SERVING_IMAGE}\n  gitops: { kind: flux }\n`);
    expect(resolveDelivery(policy, 'staging', 'sentiment')).toEqual({
      serving: 'deployment',
      modelMount: 'image-volume',
      servingImage: SERVING_IMAGE,
      gitops: { kind: 'flux', namespace: 'flux-system', kustomization: 'sentiment-staging' },
      requestReconcile: true,
      rollout: {
        timeout: '10m',
        onStall: 'rollback',
        // Who may decide a paused rollout: by default, who may approve the environment.
        pause: { roles: ['ml-lead', 'release-manager'], timeout: '4h', onTimeout: 'rollback' },
      },
    });
  });

  it("applies an environment's overrides over the section's settings", async () => {
    const policy = await loadWithDelivery(
      [
        `  servingImage: ${SERVING_IMAGE}`,
        `  pullerImage: ${PULLER_IMAGE}`,
        '  gitops: { kind: argocd }',
        '  rollout: { timeout: 15m, pause: { timeout: 1h } }',
        '  environments:',
        '    production:',
        '      serving: kserve',
        '      modelMount: init-container',
        '      requestReconcile: false',
        '      gitops: { kind: flux, namespace: gitops, kustomization: prod-models, gitRepository: fleet }',
        '      rollout: { onStall: pause, pause: { roles: [release-manager, ml-lead], onTimeout: keep } }',
        '',
      ].join('\n'),
    );
    expect(resolveDelivery(policy, 'production', 'fraud')).toEqual({
      serving: 'kserve',
      modelMount: 'init-container',
      servingImage: SERVING_IMAGE,
      pullerImage: PULLER_IMAGE,
      gitops: { kind: 'flux', namespace: 'gitops', kustomization: 'prod-models', gitRepository: 'fleet' },
      requestReconcile: false,
      rollout: {
        timeout: '15m',
        onStall: 'pause',
        pause: { roles: ['release-manager', 'ml-lead'], timeout: '1h', onTimeout: 'keep' },
      },
    });
    // Staging keeps the section's settings; the puller it does not use stays out of its delivery.
    const staging = resolveDelivery(policy, 'staging', 'fraud');
    expect(staging).toMatchObject({
      serving: 'deployment',
      modelMount: 'image-volume',
      gitops: { kind: 'argocd', namespace: 'argocd', application: 'fraud-staging' },
      rollout: { timeout: '15m', onStall: 'rollback' },
    });
    expect(staging).not.toHaveProperty('pullerImage');
  });

  it('gives nothing for a policy without a delivery section, and refuses a bad section handed to it', async () => {
    const config = join(dir, 'config');
    const approvers = await loadApprovers(config);
    const plain = `${APPROVAL}`;
    await writeFile(join(config, 'policies', 'plain.yaml'), plain);
    const policy = await loadPolicy('plain', approvers, GATE_POLICY_SECTIONS, config);
    expect(resolveDelivery(policy, 'staging', 'sentiment')).toBeUndefined();
    expect(() =>
      resolveDelivery({ ...policy, delivery: { servingImage: 'ml/server:latest' } }, 'staging', 'sentiment'),
    ).toThrow(/delivery\.servingImage: must be pinned by digest/);
  });

  it('resolves the shipped default policy: production pauses for its approvers, the others roll back', async () => {
    expect(await readFile(join(DEFAULT_CONFIG_DIR, 'policies', 'default.yaml'), 'utf8')).toContain('delivery:');
    const policy = await loadPolicy('default', await loadApprovers(), GATE_POLICY_SECTIONS);
    const production = resolveDelivery(policy, 'production', 'sentiment');
    expect(production?.rollout).toEqual({
      timeout: '10m',
      onStall: 'pause',
      pause: { roles: ['release-manager', 'ml-lead', 'ml-ethics'], timeout: '4h', onTimeout: 'rollback' },
    });
    expect(production?.servingImage).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(resolveDelivery(policy, 'dev', 'sentiment')?.rollout.onStall).toBe('rollback');
    const fixture = await loadPolicy(
      'default',
      await loadApprovers(FIXTURE_CONFIG),
      GATE_POLICY_SECTIONS,
      FIXTURE_CONFIG,
    );
    expect(resolveDelivery(fixture, 'staging', 'sentiment')?.gitops).toEqual({
      kind: 'flux',
      namespace: 'flux-system',
      kustomization: 'sentiment-staging',
    });
  });
});
