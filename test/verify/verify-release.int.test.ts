/**
 * `mrel verify` on a release that the real workflow committed (real dev server, worker, artifact store and git), with
 * the worker's release signing key: the commit carries the ML-BOM, the attestation and the config copies, and verifies
 * with nothing but the trusted public key in --config.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, getRelease, startRelease } from '../../client/release-client';
import type { ReleaseStatus } from '../../contract/types';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { newSigningKeyPem, tamper, verify, writeConfig } from './signed-release';

let env: ReleaseEnv;
const pem = newSigningKeyPem();

beforeAll(async () => {
  env = await createReleaseEnv('verify');
  env.settings.signingKey = { pem };
  await env.startWorker();
});
afterAll(async () => env?.close());

describe('mrel verify on a workflow release', () => {
  it('verifies what the release committed, and names the Deployment someone edited afterwards', async () => {
    const request = await env.model('credit-risk', '2.0.0');
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    await eventually(
      () => getRelease(env.client, releaseId),
      (s: ReleaseStatus) => s.stage === 'approval',
    );
    for (const approver of ['boris', 'amara']) {
      expect((await decide(env.client, releaseId, { approver, decision: 'approve' })).accepted).toBe(true);
    }
    const result = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(result.stage).toBe('released');

    // Only the trusted key: approvers.yaml and the policy come from the copies the bundle keeps.
    const config = await writeConfig(join(env.dir, 'verify-config'), 'approvers: {}\n', [pem]);
    const verified = await verify([env.settings.gitopsRepo, releaseId, '--config', config]);
    expect(verified.out).toMatch(/^VERIFIED release\/credit-risk\/2\.0\.0\/production at [0-9a-f]{12}/);
    expect(verified.code).toBe(0);
    const bundle = JSON.parse(await env.git('show', 'main:releases/credit-risk/2.0.0/production/bundle.json')) as {
      files: { name: string }[];
    };
    expect(bundle.files.map((f) => f.name)).toEqual(
      expect.arrayContaining(['config/approvers.yaml', 'config/policies/default.yaml']),
    );

    await tamper(env.settings.gitopsRepo, env.dir, async (dir) => {
      const patch = join(dir, 'apps/credit-risk/overlays/production/deployment-patch.yaml');
      await writeFile(
        patch,
        (await readFile(patch, 'utf8')).replace(
          /MODEL_MANIFEST_DIGEST\n(\s+)value: \S+/,
          'MODEL_MANIFEST_DIGEST\n$1value: sha256:' + '0'.repeat(64),
        ),
      );
    });
    const tampered = await verify([env.settings.gitopsRepo, releaseId, '--config', config]);
    expect(tampered.out).toMatch(
      /^workload: .*deployment-patch\.yaml: MODEL_MANIFEST_DIGEST is sha256:0{64}, not the attested model/m,
    );
    expect(tampered.code).toBe(1);
  });
});
