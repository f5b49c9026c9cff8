/**
 * Images that exist only in the local Docker engine (`docker-daemon:`), against a real dockerd and registry: scanned
 * through the engine's export with the same findings as the registry's copy, pushed by digest byte for byte, and the
 * engine reached only on this machine.
 */
import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeAll, describe, expect } from 'vitest';
import {
  createImageScanActivities,
  dockerEngineOptions,
  ImageScanError,
  pushScannedImage,
  scanImage,
} from '../../activities/scan/image';
import { parseImagePolicy } from '../../activities/scan/image/policy';
import { createScanImageCommand } from '../../client/commands/scan-image';
import { EXIT } from '../../client/errors';
import type { GateResult } from '../../contract/types';
import { runCommand } from '../helpers/command';
import { dockerTest as test } from './docker-env';
import {
  DEBIAN_OPENSSL,
  GHSA_LODASH,
  GHSA_PILLOW,
  GHSA_REQUESTS,
  GOOD_CONFIG,
  gateInput,
  modelManifest,
  pythonMetadata,
  runtimeFiles,
  VULNERABLE,
  writeAdvisoryDir,
  type StoredModel,
} from './fixtures';
import { buildImage, pushImage as dockerPush, type BuildSpec } from './images';

const SITE = 'usr/local/lib/python3.11/site-packages';

/**
 * Five layers whose order matters: the base has vulnerable lodash and Pillow; later layers delete lodash (a whiteout)
 * and replace Pillow with the fixed version. Read in the wrong order, lodash or the old Pillow would come back.
 */
function layeredImage(tag: string): BuildSpec {
  return {
    tag,
    files: [
      ...runtimeFiles(VULNERABLE),
      { path: 'stage/pillow-metadata', content: pythonMetadata('Pillow', '10.0.1') },
    ],
    instructions: [
      ...GOOD_CONFIG.filter((i) => !i.startsWith('USER')),
      'RUN ["/bin/busybox", "rm", "-r", "/srv/app/node_modules/lodash"]',
      `RUN ["/bin/busybox", "rm", "-r", "/${SITE}/Pillow-10.0.0.dist-info"]`,
      `RUN ["/bin/busybox", "mkdir", "-p", "/${SITE}/Pillow-10.0.1.dist-info"]`,
      `RUN ["/bin/busybox", "cp", "/stage/pillow-metadata", "/${SITE}/Pillow-10.0.1.dist-info/METADATA"]`,
      'USER 10001:10001',
    ],
  };
}

let advisoryDir: string;
let model: StoredModel;
const savedDockerHost = process.env.DOCKER_HOST;

beforeAll(async () => {
  advisoryDir = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_PILLOW, GHSA_LODASH, GHSA_REQUESTS]);
  model = await modelManifest({ 'model.json': '{"format":"layers-model"}' });
});

afterEach(() => {
  if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
  else process.env.DOCKER_HOST = savedDockerHost;
});

const findingsOf = (r: GateResult) => r.findings.map((f) => [f.ruleId, f.severity, f.location]);

async function imageId(docker: Docker, name: string): Promise<string> {
  return ((await docker.getImage(name).inspect()) as { Id: string }).Id;
}

async function registryManifest(registry: string, repository: string, reference: string) {
  const res = await fetch(`http://${registry}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    header: res.headers.get('docker-content-digest'),
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    json: res.ok
      ? (JSON.parse(bytes.toString('utf8')) as { config: { digest: string }; layers: unknown[] })
      : undefined,
  };
}

describe('images in the local Docker engine', () => {
  test('a local image scans through the export with the findings of its registry copy, pinned by its ID', async ({
    docker,
  }) => {
    const tag = `${docker.registry}/daemon/layered:ci`;
    await buildImage(docker.docker, layeredImage(tag));
    const id = await imageId(docker.docker, tag);
    const activities = createImageScanActivities({ store: model.store, docker: docker.docker });

    const local = await activities.scanImage(gateInput(model.manifest, `docker-daemon:${tag}`, { advisoryDir }));

    // Nothing was pushed for that scan.
    expect((await registryManifest(docker.registry, 'daemon/layered', 'ci')).status).toBe(404);
    expect(local.verdict).toBe('fail');
    expect(findingsOf(local)).toEqual([
      ['CVE-2023-5363', 'high', 'image:var/lib/dpkg/status#libssl3@3.0.11-1~deb12u1'],
      ['CVE-2023-5363', 'high', 'image:var/lib/dpkg/status#openssl@3.0.11-1~deb12u1'],
    ]);
    expect(local.metrics).toMatchObject({ imageDigest: id, imageRef: `docker-daemon:${id}`, packages: 4, layers: 5 });
    expect(local.annotations).toEqual({ 'image-digest': id, 'image-ref': `docker-daemon:${id}` });
    // A local image is not deployable until it is pushed by digest.
    expect(local.deployment).toBeUndefined();

    const pushed = await dockerPush(docker.docker, tag);
    const remote = await activities.scanImage(gateInput(model.manifest, tag, { advisoryDir }));
    expect(findingsOf(remote)).toEqual(findingsOf(local));
    expect(remote.metrics).toMatchObject({ imageDigest: pushed, packages: 4, layers: 5 });
  });

  test('push by digest sends exactly the scanned image, twice gives the same digest, a moved tag is refused', async ({
    docker,
  }) => {
    await buildImage(docker.docker, layeredImage('app:ci'));
    const id = await imageId(docker.docker, 'app:ci');
    const policy = parseImagePolicy({ advisoryDir });
    const scanned = await scanImage('docker-daemon:app:ci', { policy, docker: docker.docker });
    expect(scanned.image).toMatchObject({ transport: 'docker-daemon', digest: id, configDigest: id, tag: 'ci' });

    const target = `${docker.registry}/release/app`;
    const first = await pushScannedImage(
      { source: scanned.image.pinned, target, imageId: scanned.image.digest },
      { docker: docker.docker },
    );
    // The scan already named the digest the push gives.
    expect(first).toMatchObject({ ref: `${target}@${scanned.image.manifestDigest}`, imageId: id });
    expect(first.blobs.pushed).toBe(6);
    const stored = await registryManifest(docker.registry, 'release/app', first.digest);
    expect(stored).toMatchObject({ status: 200, header: first.digest, digest: first.digest });
    expect(stored.json?.config.digest).toBe(id);
    expect(stored.json?.layers).toHaveLength(5);

    const again = await pushScannedImage(
      { source: 'docker-daemon:app:ci', target: `${target}:v1`, imageId: id },
      { docker: docker.docker },
    );
    expect(again).toEqual({ ...first, blobs: { pushed: 0, present: 6 } });
    expect((await registryManifest(docker.registry, 'release/app', 'v1')).digest).toBe(first.digest);

    const fromRegistry = await scanImage(first.ref, { policy });
    expect(fromRegistry.image.configDigest).toBe(id);
    expect(fromRegistry.packages).toEqual(scanned.packages);
    expect(fromRegistry.vulnerabilities).toEqual(scanned.vulnerabilities);

    // The engine itself pulls it back as the same image.
    await docker.docker.getImage(id).remove({ force: true });
    const pull = (await docker.docker.pull(first.ref)) as NodeJS.ReadableStream;
    await new Promise((resolve, reject) =>
      docker.docker.modem.followProgress(pull, (err: Error | null) => (err ? reject(err) : resolve(undefined))),
    );
    expect(await imageId(docker.docker, first.ref)).toBe(id);

    // The tag now names another build: the scanned image is no longer what it names.
    await buildImage(docker.docker, { tag: 'app:ci', files: runtimeFiles(VULNERABLE), instructions: GOOD_CONFIG });
    const activities = createImageScanActivities({ store: model.store, docker: docker.docker });
    const refused = await new MockActivityEnvironment()
      .run(activities.pushImage, { source: 'docker-daemon:app:ci', target, imageId: id })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused).toMatchObject({ type: 'DigestMismatch', nonRetryable: true });
    expect((refused as Error).message).toContain('scan it again before pushing');
  });

  test('mrel scan-image reads docker-daemon: names and IDs, over the socket or loopback tcp', async ({ docker }) => {
    await buildImage(docker.docker, { tag: 'cli-app:ci', files: runtimeFiles(VULNERABLE), instructions: GOOD_CONFIG });
    const id = await imageId(docker.docker, 'cli-app:ci');
    const mrel = (...args: string[]) => runCommand(createScanImageCommand(), ['scan-image', ...args]);

    process.env.DOCKER_HOST = `unix://${docker.socketPath}`;
    const byName = await mrel('docker-daemon:cli-app:ci', '--advisories', advisoryDir);
    expect(byName.code).toBe(EXIT.fail);
    expect(byName.out).toMatch(new RegExp(`^FAIL: docker-daemon:${id}: 5 packages, 4 vulnerabilities`));

    // A loopback tcp engine (here: a relay to the socket) is accepted.
    const relay = await relayTo(docker.socketPath);
    try {
      process.env.DOCKER_HOST = `tcp://127.0.0.1:${(relay.address() as { port: number }).port}`;
      const byId = await mrel(`docker-daemon:${id}`, '--advisories', advisoryDir, '--format', 'json');
      expect(byId.code).toBe(EXIT.fail);
      expect(JSON.parse(byId.out)).toMatchObject({ metrics: { imageDigest: id, packages: 5 } });
    } finally {
      relay.close();
    }
  });

  test('an unknown local image is not found (exit 6); an engine elsewhere is refused; a stopped one is unavailable', async ({
    docker,
  }) => {
    const policy = parseImagePolicy({ advisoryDir });
    const missing = await scanImage('docker-daemon:nothing-here:1', { policy, docker: docker.docker }).catch((e) => e);
    expect(missing).toBeInstanceOf(ImageScanError);
    expect(missing).toMatchObject({ code: 'ImageNotFound' });
    expect(missing.message).toBe(
      'docker-daemon:nothing-here:1 was not found in the local Docker engine (`docker images` lists what it has)',
    );

    const mrel = (...args: string[]) => runCommand(createScanImageCommand(), ['scan-image', ...args]);
    process.env.DOCKER_HOST = `unix://${docker.socketPath}`;
    expect(await mrel('docker-daemon:nothing-here:1', '--advisories', advisoryDir)).toMatchObject({
      code: EXIT.notFound,
      err: expect.stringContaining('was not found in the local Docker engine'),
    });
    expect(await mrel(`docker-daemon:sha256:${'0'.repeat(64)}`, '--advisories', advisoryDir)).toMatchObject({
      code: EXIT.notFound,
    });

    for (const remote of [
      'tcp://192.0.2.10:2375',
      '10.1.2.3:2376',
      'ssh://ci@build-host',
      'tcp://127.0.0.1.example.com:2375',
    ]) {
      expect(() => dockerEngineOptions({ DOCKER_HOST: remote }), remote).toThrow(
        /DOCKER_HOST names .*loopback|connection/,
      );
    }
    expect(dockerEngineOptions({ DOCKER_HOST: 'tcp://[::1]:2375' })).toEqual({
      host: '::1',
      port: 2375,
      protocol: 'http',
    });
    process.env.DOCKER_HOST = 'tcp://192.0.2.10:2375';
    const refused = await mrel('docker-daemon:app:ci', '--advisories', advisoryDir);
    expect(refused.code).toBe(EXIT.config);
    expect(refused.err).toContain('DOCKER_HOST names host 192.0.2.10, which is not a loopback address');

    process.env.DOCKER_HOST = `unix://${docker.dir}/no-engine.sock`;
    expect(await mrel('docker-daemon:app:ci', '--advisories', advisoryDir)).toMatchObject({
      code: EXIT.unavailable,
      err: expect.stringContaining('cannot be reached'),
    });
  });
});

/** A loopback tcp port relayed to the engine's unix socket, as a tcp-listening dockerd would be. */
async function relayTo(socketPath: string): Promise<Server> {
  const server = createServer((client) => {
    const engine = createConnection(socketPath);
    client.pipe(engine).pipe(client);
    client.on('error', () => engine.destroy());
    engine.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
