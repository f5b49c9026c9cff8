/**
 * The second example as a user runs it: credit-risk 1.1.0 from an HTTPS model mirror signed by its own CA, with its
 * inference image in a real registry, started from examples/releases/credit-risk-https.yaml. It reaches approval
 * with every gate passing or warning, deploys the image by the digest the image gate scanned, and a byte changed on
 * the mirror fails the release before any gate runs.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { FilesystemStore, loadManifest } from '../../activities/store';
import { readRequestFile } from '../../client/cli';
import { getRelease, startRelease } from '../../client/release-client';
import { freePort } from '../../scripts/dev-server';
import {
  EXAMPLE_IMAGE,
  EXAMPLE_REQUEST,
  MIRROR_ROOT,
  ensureAdvisories,
  ensureCertificates,
  exampleImageFiles,
  pushImage,
  startModelMirror,
  startRegistry,
  type ExampleRegistry,
  type ModelMirror,
} from '../../scripts/example-mirror';
import type { ReleaseStatus } from '../../contract/types';
import { SHIPPED_CONFIG_DIR } from '../helpers/config-dirs';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let mirror: ModelMirror;
let registry: ExampleRegistry;
let mirrorRoot: string;
let imageDigest: string;

beforeAll(async () => {
  env = await createReleaseEnv('https-example');
  const certs = await ensureCertificates(join(env.dir, 'tls'));
  // A copy, so that tampering with a served file leaves the repository's example alone.
  mirrorRoot = join(env.dir, 'mirror');
  await cp(MIRROR_ROOT, mirrorRoot, { recursive: true });
  mirror = await startModelMirror({ root: mirrorRoot, certs, port: 0 });
  registry = await startRegistry({ port: await freePort(), dir: join(env.dir, 'registry') });
  imageDigest = await pushImage(registry.address, EXAMPLE_IMAGE, exampleImageFiles());

  // The shipped default policy and approvers, as a user runs the example, with its advisories where the worker looks.
  const advisories = join(env.dir, 'advisories');
  expect(await ensureAdvisories(advisories)).toBe(true);
  const configDir = join(env.dir, 'config');
  await cp(SHIPPED_CONFIG_DIR, configDir, { recursive: true });
  const policyFile = join(configDir, 'policies', 'default.yaml');
  const policy = parse(await readFile(policyFile, 'utf8')) as { image: Record<string, unknown> };
  await writeFile(policyFile, stringify({ ...policy, image: { ...policy.image, advisoryDir: advisories } }));
  env.settings.configDir = configDir;
  env.settings.sourceCaFile = certs.caFile;
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
  await mirror?.close();
  await registry?.stop();
});

/** The request file as shipped, pointed at this run's ports (the shipped ones may be taken on a shared machine). */
async function exampleRequest(environment?: string): Promise<Record<string, unknown>> {
  const request = (await readRequestFile(EXAMPLE_REQUEST)) as {
    model: { source: string };
    image: { ref: string };
    environment: string;
  };
  expect(request.model.source).toBe('https://localhost:8443/credit-risk/1.1.0/');
  expect(request.image.ref).toBe(`127.0.0.1:5000/${EXAMPLE_IMAGE.repository}:${EXAMPLE_IMAGE.tag}`);
  return {
    ...request,
    model: { ...request.model, source: request.model.source.replace('https://localhost:8443', mirror.url) },
    image: { ref: request.image.ref.replace('127.0.0.1:5000', registry.address) },
    environment: environment ?? request.environment,
  };
}

async function settled(releaseId: string): Promise<ReleaseStatus> {
  return eventually(
    () => getRelease(env.client, releaseId),
    (s) => ['approval', 'failed', 'rejected', 'expired', 'released'].includes(s.stage),
    90_000,
  );
}

describe('the HTTPS example', () => {
  it('reaches approval with every gate passing or warning and deploys the image by its scanned digest', async () => {
    const options = { taskQueue: env.settings.taskQueue, configDir: env.settings.configDir };
    const { releaseId } = await startRelease(env.client, await exampleRequest(), options);
    expect(releaseId).toBe('release/credit-risk/1.1.0/staging');
    const waiting = await settled(releaseId);
    expect(waiting.reason).toBeUndefined();
    expect(waiting.stage).toBe('approval');
    const verdicts = Object.fromEntries(waiting.gates.map((g) => [g.gate, g.verdict]));
    expect(Object.keys(verdicts)).toEqual(expect.arrayContaining(['scan', 'license', 'image', 'cost']));
    for (const [gate, verdict] of Object.entries(verdicts)) expect(['pass', 'warn'], gate).toContain(verdict);
    // The status names the manifest by digest; its file list is read from the worker's store.
    const manifest = await loadManifest(new FilesystemStore(env.settings.storeRoot), waiting.manifest!);
    expect(manifest.files.map((f) => f.path).sort()).toEqual(['README.md', 'group1-shard1of1.bin', 'model.json']);
    const pinned = `${registry.address}/${EXAMPLE_IMAGE.repository}@${imageDigest}`;
    const image = waiting.gates.find((g) => g.gate === 'image');
    expect(image?.metrics.packages).toBe(10);
    expect(image?.deployment?.image).toBe(pinned);

    await env.client.workflow.getHandle(releaseId).signal('approve', { approver: 'alice' });
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    const patch = await env.git('show', 'main:apps/credit-risk/overlays/staging/deployment-patch.yaml');
    expect(patch).toContain(`image: ${pinned}`);
  });

  it('fails with DigestMismatch when one byte of a served file changes', async () => {
    const shard = join(mirrorRoot, 'credit-risk', '1.1.0', 'group1-shard1of1.bin');
    const bytes = await readFile(shard);
    bytes[0] = bytes[0]! ^ 0xff;
    await writeFile(shard, bytes);
    const { releaseId } = await startRelease(env.client, await exampleRequest('production'), {
      taskQueue: env.settings.taskQueue,
      configDir: env.settings.configDir,
    });
    const failed = await settled(releaseId);
    expect(failed.stage).toBe('failed');
    expect(failed.reason).toMatch(/^acquire fail: digest mismatch for group1-shard1of1\.bin/);
    const acquire = failed.gates.find((g) => g.gate === 'acquire');
    expect(acquire?.findings.map((f) => f.ruleId)).toEqual(['DigestMismatch']);
    // Nothing was looked at past the mismatch.
    expect(failed.gates.map((g) => g.gate)).toEqual(['acquire']);
  });
});
