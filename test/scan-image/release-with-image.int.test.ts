/**
 * The image gate inside a whole release: the Deployment runs the image by the digest that was scanned, even when the
 * tag moves to another image while the release waits for approval; a vulnerable image stops the release.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parse, stringify } from 'yaml';
import { getRelease, startRelease } from '../../client/release-client';
import type { ReleaseStatus } from '../../contract/types';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';
import { dockerTest as test } from './docker-env';
import {
  DEBIAN_OPENSSL,
  FIXED,
  GHSA_LODASH,
  GHSA_PILLOW,
  GOOD_CONFIG,
  runtimeFiles,
  VULNERABLE,
  writeAdvisoryDir,
} from './fixtures';
import { buildAndPush, buildImage } from './images';

let env: ReleaseEnv;
let configDir: string;

beforeAll(async () => {
  env = await createReleaseEnv('image-release');
  const advisoryDir = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_PILLOW, GHSA_LODASH]);
  configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  const policyFile = join(configDir, 'policies', 'default.yaml');
  const policy = parse(await readFile(policyFile, 'utf8')) as Record<string, unknown>;
  await writeFile(policyFile, stringify({ ...policy, image: { advisoryDir, failOn: 'high' } }));
  env.settings.configDir = configDir;
  await env.startWorker();
});
afterAll(async () => env?.close());

describe('a release with an inference image', () => {
  test('deploys the scanned digest even after the tag moves; a vulnerable image fails the release', async ({
    docker,
  }) => {
    const tag = `${docker.registry}/ml/serve:1.0`;
    const scanned = await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const request = await env.model('pinned', '1.0.0', { environment: 'staging', image: { ref: tag } });
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue, configDir });
    const waiting = await eventually(
      () => getRelease(env.client, releaseId),
      (s) => s.stage === 'approval' || s.stage === 'failed',
    );
    expect(waiting.gates.find((g) => g.gate === 'image')).toMatchObject({ verdict: 'pass' });

    // The tag now names a different image: what was scanned is still what gets deployed.
    const moved = await buildAndPush(docker.docker, {
      tag,
      files: runtimeFiles(VULNERABLE),
      instructions: GOOD_CONFIG,
    });
    expect(moved).not.toBe(scanned);
    await env.client.workflow.getHandle(releaseId).signal('approve', { approver: 'amara' });
    const result = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(result.stage).toBe('released');
    const patch = await env.git('show', 'main:apps/pinned/overlays/staging/deployment-patch.yaml');
    expect(patch).toContain(`image: ${docker.registry}/ml/serve@${scanned}`);
    expect(patch).toContain(`policy.modelrelease.io/image-digest: ${scanned}`);

    const vulnerable = await env.model('vulnerable', '1.0.0', { environment: 'staging', image: { ref: tag } });
    const failed = await startRelease(env.client, vulnerable, { taskQueue: env.settings.taskQueue, configDir });
    await env.client.workflow
      .getHandle(failed.releaseId)
      .result()
      .catch(() => undefined);
    const status = await getRelease(env.client, failed.releaseId);
    expect(status.stage).toBe('failed');
    expect(status.reason).toMatch(/^image fail: /);
    expect(status.gates.find((g) => g.gate === 'image')?.findings.map((f) => f.ruleId)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^CVE-/)]),
    );
  });

  test('scans an image only the local engine holds, pushes it by digest after approval, and deploys that digest', async ({
    docker,
  }) => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${docker.socketPath}`;
    try {
      await buildImage(docker.docker, { tag: 'serve:ci', files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
      const imageId = ((await docker.docker.getImage('serve:ci').inspect()) as { Id: string }).Id;
      const target = `${docker.registry}/ml/pushed`;
      const request = await env.model('local', '1.0.0', {
        environment: 'staging',
        image: { ref: 'docker-daemon:serve:ci', push: target },
      });
      const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue, configDir });
      const waiting = await eventually(
        () => getRelease(env.client, releaseId),
        (s) => s.stage === 'approval' || s.stage === 'failed',
      );
      expect(waiting.gates.find((g) => g.gate === 'image')).toMatchObject({ verdict: 'pass' });
      // Nothing left the machine before the approval.
      expect((await fetch(`http://${docker.registry}/v2/ml/pushed/tags/list`)).status).toBe(404);

      await env.client.workflow.getHandle(releaseId).signal('approve', { approver: 'amara' });
      const result = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
      expect(result.stage, result.reason).toBe('released');
      expect(result.pushedImage).toMatch(new RegExp(`^${target}@sha256:[0-9a-f]{64}$`));
      const digest = result.pushedImage?.split('@')[1] ?? '';
      const manifest = await fetch(`http://${docker.registry}/v2/ml/pushed/manifests/${digest}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(manifest.status).toBe(200);
      expect(((await manifest.json()) as { config: { digest: string } }).config.digest).toBe(imageId);
      const patch = await env.git('show', 'main:apps/local/overlays/staging/deployment-patch.yaml');
      expect(patch).toContain(`image: ${result.pushedImage}`);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});
