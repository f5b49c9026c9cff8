/**
 * The image gate against a real dockerd and registry: images built FROM scratch with busybox and real package
 * databases, pushed, then scanned through the activity as the workflow will call it.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { beforeAll, describe, expect } from 'vitest';
import { createImageScanActivities, RegistryUnavailableError } from '../../activities/scan/image';
import { freePort } from '../../scripts/docker-test-env';
import type { GateResult, Waiver } from '../../contract/types';
import { readEvidence, readEvidenceBytes } from '../helpers/evidence';
import { dockerTest as test } from './docker-env';
import {
  DEBIAN_OPENSSL,
  FIXED,
  GHSA_LODASH,
  GHSA_PILLOW,
  GHSA_REQUESTS,
  dpkgStanza,
  GOOD_CONFIG,
  gateInput,
  OS_RELEASE_DEBIAN_12,
  modelManifest,
  type StoredModel,
  nodePackageJson,
  runtimeFiles,
  VULNERABLE,
  writeAdvisoryDir,
} from './fixtures';
import { buildAndPush } from './images';

let advisoryDir: string;
let cleanModel: StoredModel;

beforeAll(async () => {
  advisoryDir = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_PILLOW, GHSA_LODASH, GHSA_REQUESTS]);
  cleanModel = await modelManifest({ 'model.json': '{"format":"layers-model"}' });
});

function activities(model: StoredModel) {
  return createImageScanActivities({ store: model.store });
}

async function scan(ref: string, model: StoredModel, policy: Record<string, unknown> = {}, waivers: Waiver[] = []) {
  return activities(model).scanImage(gateInput(model.manifest, ref, { advisoryDir, ...policy }, waivers));
}

function vulnIds(result: GateResult): string[] {
  return result.findings
    .filter((f) => f.ruleId.startsWith('CVE-'))
    .map((f) => f.ruleId)
    .sort();
}

describe('image gate against dockerd and a registry', () => {
  test('a clean image passes and the result pins its digest', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-clean:1.0`;
    const digest = await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });

    const result = await scan(tag, cleanModel);

    expect(result.verdict).toBe('pass');
    expect(result.findings).toEqual([]);
    expect(result.metrics.imageDigest).toBe(digest);
    expect(result.metrics.packages).toBe(5);
    expect(result.annotations).toEqual({
      'image-digest': digest,
      'image-ref': `${docker.registry}/ml/server-clean@${digest}`,
    });
    const evidence = await readEvidence<{ image: { digest: string }; os: { ecosystem: string } }>(
      cleanModel.store,
      result.evidence,
    );
    expect(evidence).toMatchObject({
      gate: 'image',
      verdict: 'pass',
      manifestDigest: cleanModel.manifest.manifestDigest,
    });
    expect(evidence.report.image.digest).toBe(digest);
    expect(evidence.report.os.ecosystem).toBe('Debian:12');
    // The SBOM is an attachment of the evidence, stored by digest on its own and named in both.
    const sbomDigest = result.attachments?.find((a) => a.name === 'sbom.cdx.json')?.digest;
    expect(sbomDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(evidence.attachments).toEqual([{ name: 'sbom.cdx.json', digest: sbomDigest }]);
    const sbom = JSON.parse((await readEvidenceBytes(cleanModel.store, sbomDigest)).toString('utf8'));
    expect(sbom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6' });
    expect(sbom.metadata.component).toMatchObject({ type: 'container', version: digest });
    expect(
      sbom.components
        .map((c: { purl?: string }) => c.purl)
        .filter(Boolean)
        .sort(),
    ).toEqual([
      'pkg:deb/debian/libc6@2.36-9%2Bdeb12u3?arch=amd64&distro=debian-12',
      'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12',
      'pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12',
      'pkg:npm/lodash@4.17.21',
      'pkg:pypi/pillow@10.0.1',
    ]);
  });

  test('a vulnerable Debian, Python and npm package fail the gate with exactly those findings', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-vuln:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(VULNERABLE), instructions: GOOD_CONFIG });

    const result = await scan(tag, cleanModel);

    expect(result.verdict).toBe('fail');
    // libssl3 and openssl are both built from the openssl source package: both are affected.
    expect(result.findings.map((f) => [f.ruleId, f.severity, f.location.split('#')[1]])).toEqual([
      ['CVE-2021-23337', 'high', 'lodash@4.17.20'],
      ['CVE-2023-4863', 'high', 'Pillow@10.0.0'],
      ['CVE-2023-5363', 'high', 'libssl3@3.0.11-1~deb12u1'],
      ['CVE-2023-5363', 'high', 'openssl@3.0.11-1~deb12u1'],
    ]);
    const pillow = result.findings.find((f) => f.ruleId === 'CVE-2023-4863')!;
    expect(pillow.location).toBe(
      'image:usr/local/lib/python3.11/site-packages/Pillow-10.0.0.dist-info/METADATA#Pillow@10.0.0',
    );
    expect(pillow.message).toContain('fixed in 10.0.1');
    expect(pillow.message).toContain('GHSA-j7hp-h8jx-5ppr');
    expect(result.metrics).toMatchObject({ high: 4, vulnerabilities: 4, packages: 5 });
  });

  test('a waiver clears one vulnerability and an expired waiver does not', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-waived:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(VULNERABLE), instructions: GOOD_CONFIG });
    const waiver = (ruleIds: string[], expiresAt: string): Waiver => ({
      gate: 'image',
      ruleIds,
      justification: 'template() is never called with user input in the server',
      approver: 'alice',
      expiresAt,
    });

    // The waiver names lodash's advisory by its GHSA id; the finding carries the CVE: aliases count.
    const result = await scan(tag, cleanModel, {}, [
      waiver(['GHSA-35jh-r3h4-6jhm'], '2999-01-01T00:00:00Z'),
      waiver(['CVE-2023-4863'], '2020-01-01T00:00:00Z'),
    ]);

    const lodash = result.findings.find((f) => f.ruleId === 'CVE-2021-23337')!;
    expect(lodash.waivedBy).toMatchObject({ approver: 'alice' });
    expect(result.findings.find((f) => f.ruleId === 'CVE-2023-4863')!.waivedBy).toBeUndefined();
    expect(result.metrics.waived).toBe(1);
    expect(result.verdict).toBe('fail');

    const allWaived = await scan(tag, cleanModel, {}, [
      waiver(['CVE-2021-23337', 'CVE-2023-4863', 'CVE-2023-5363'], '2999-01-01T00:00:00Z'),
    ]);
    expect(allWaived.verdict).toBe('pass');
    expect(allWaived.metrics.waived).toBe(4);
  });

  test('root user and secret-looking environment variables are reported without their values', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-root:1.0`;
    const secret = 'AKIAIOSFODNN7EXAMPLE';
    await buildAndPush(docker.docker, {
      tag,
      files: runtimeFiles(FIXED),
      instructions: [
        `ENV AWS_ACCESS_KEY_ID=${secret} DB_PASSWORD=hunter2 PASSWORD_FILE=/run/secrets/db LOG_LEVEL=info`,
        'EXPOSE 80',
      ],
    });

    const result = await scan(tag, cleanModel);

    expect(result.verdict).toBe('fail');
    expect(result.findings.map((f) => [f.ruleId, f.severity, f.location])).toEqual([
      ['secret-in-env', 'high', 'image-config:Env:AWS_ACCESS_KEY_ID'],
      ['secret-in-env', 'high', 'image-config:Env:DB_PASSWORD'],
      ['image-runs-as-root', 'medium', 'image-config:User'],
      ['privileged-port', 'low', 'image-config:ExposedPorts'],
      ['oci-labels-missing', 'info', 'image-config:Labels'],
    ]);
    expect(result.metrics.runsAsRoot).toBe(true);
    for (const stored of [result.evidence, ...(result.attachments ?? []).map((a) => a.digest)]) {
      const evidence = (await readEvidenceBytes(cleanModel.store, stored)).toString('utf8');
      expect(evidence).not.toContain(secret);
      expect(evidence).not.toContain('hunter2');
    }
    expect(JSON.stringify(result)).not.toContain(secret);
  });

  test('a tag that moves after the scan does not change the pinned digest', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-moving:stable`;
    const first = await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const scanned = await scan(tag, cleanModel);
    expect(scanned.verdict).toBe('pass');

    // Someone pushes a vulnerable image to the same tag after the gate passed.
    const moved = await buildAndPush(docker.docker, {
      tag,
      files: runtimeFiles(VULNERABLE),
      instructions: GOOD_CONFIG,
    });
    expect(moved).not.toBe(first);

    // What gets deployed is the digest the gate scanned, and that digest still names the clean image.
    const pinned = scanned.annotations!['image-ref']!;
    expect(pinned).toBe(`${docker.registry}/ml/server-moving@${first}`);
    const again = await scan(pinned, cleanModel);
    expect(again.verdict).toBe('pass');
    expect(again.metrics.imageDigest).toBe(first);
    const retag = await scan(tag, cleanModel);
    expect(retag.metrics.imageDigest).toBe(moved);
    expect(retag.verdict).toBe('fail');
  });

  test('files deleted in a later layer (whiteouts) are not reported', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-whiteout:1.0`;
    const files = [
      ...runtimeFiles(FIXED),
      { path: 'usr/lib/node_modules/lodash/package.json', content: nodePackageJson('lodash', '4.17.20') },
      {
        path: 'opt/venv/lib/python3.11/site-packages/Pillow-10.0.0.dist-info/METADATA',
        content: 'Name: Pillow\nVersion: 10.0.0\n',
      },
    ];
    await buildAndPush(docker.docker, {
      tag,
      files,
      // dockerd writes these removals as whiteout files in a second layer.
      instructions: ['RUN ["/bin/busybox", "rm", "-rf", "/usr/lib/node_modules/lodash", "/opt/venv"]', ...GOOD_CONFIG],
    });

    const result = await scan(tag, cleanModel);

    expect(result.metrics.layers).toBe(2);
    expect(result.verdict).toBe('pass');
    expect(result.metrics.packages).toBe(5);
  });

  test('lock files in the model repository are matched too', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-locks:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const model = await modelManifest({
      'model.json': '{}',
      'requirements.txt': '# runtime\nrequests==2.30.0 --hash=sha256:abc\nnumpy>=1.24\n',
    });

    const result = await scan(tag, model, { failOn: 'high', warnOn: 'medium' });

    expect(result.verdict).toBe('warn');
    expect(vulnIds(result)).toEqual(['CVE-2023-32681']);
    expect(result.findings[0]!.location).toBe('model:requirements.txt#requests@2.30.0');
    expect(result.findings[0]!.severity).toBe('medium');
  });

  test('a malformed package database is an error, never a pass', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-broken:1.0`;
    await buildAndPush(docker.docker, {
      tag,
      files: [
        ...runtimeFiles(FIXED).filter((f) => f.path !== 'var/lib/dpkg/status'),
        { path: 'var/lib/dpkg/status', content: 'Package: libssl3\nthis line is not a field\nVersion: 1\n' },
      ],
      instructions: GOOD_CONFIG,
    });

    const result = await scan(tag, cleanModel);

    expect(result.verdict).toBe('error');
    expect(result.findings.map((f) => f.ruleId)).toContain('package-db-malformed');
    expect(result.summary).toContain('scan incomplete');
  });

  test('an advisory directory without an ecosystem the image uses is an error, not a pass', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-clean:uncovered`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const partial = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_LODASH]);

    const result = await scan(tag, cleanModel, { advisoryDir: partial });

    expect(result.verdict).toBe('error');
    expect(result.findings).toEqual([
      expect.objectContaining({
        ruleId: 'advisories-missing-ecosystem',
        message: expect.stringContaining('no folder for PyPI'),
      }),
    ]);
  });

  test('a layer over the size limit makes the verdict error', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-huge:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });

    // busybox alone expands to ~2 MB; a 100 kB limit stands for a layer too large to read.
    const result = await scan(tag, cleanModel, { maxLayerBytes: 100_000 });

    expect(result.verdict).toBe('error');
    expect(result.findings[0]).toMatchObject({ ruleId: 'layer-too-large', waivable: false });
  });

  test('an unknown tag is a non-retryable ImageNotFound failure', async ({ docker }) => {
    const error = await scan(`${docker.registry}/ml/server-clean:no-such-tag`, cleanModel).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: 'ImageNotFound', nonRetryable: true });
    expect((error as Error).message).toContain('ml/server-clean:no-such-tag was not found');
  });

  test('a registry that is down is a retryable error', async () => {
    const port = await freePort();
    const error = await scan(`127.0.0.1:${port}/ml/server:1.0`, cleanModel).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect(error).not.toBeInstanceOf(ApplicationFailure);
    expect((error as Error).message).toMatch(/cannot be reached \(ECONNREFUSED\)/);
  });

  test('the GateResult keeps 200 findings and says how many it left out; the evidence keeps all', async ({
    docker,
  }) => {
    const tag = `${docker.registry}/ml/server-many:1.0`;
    // 250 binary packages built from the vulnerable openssl source: 250 findings.
    const status = Array.from({ length: 250 }, (_, i) =>
      dpkgStanza({ name: `libssl-part${i}`, version: VULNERABLE.openssl, source: 'openssl' }),
    ).join('\n');
    await buildAndPush(docker.docker, {
      tag,
      files: [
        { path: 'etc/os-release', content: OS_RELEASE_DEBIAN_12 },
        { path: 'var/lib/dpkg/status', content: status },
      ],
      instructions: GOOD_CONFIG,
    });

    const result = await scan(tag, cleanModel);

    expect(result.verdict).toBe('fail');
    expect(result.findings).toHaveLength(200);
    expect(result.metrics).toMatchObject({ findingsTotal: 250, findingsOmitted: 50, high: 250 });
    const evidence = await readEvidence(cleanModel.store, result.evidence);
    expect(evidence.findings).toHaveLength(250);
  });

  test('inside an activity context it heartbeats while it works and honours cancellation', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-activity:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const input = gateInput(cleanModel.manifest, tag, { advisoryDir });
    const { scanImage } = activities(cleanModel);

    const env = new MockActivityEnvironment();
    const phases: string[] = [];
    env.on('heartbeat', (d: { phase: string }) => phases.push(d.phase));
    const result = (await env.run(scanImage, input)) as GateResult;
    expect(result.verdict).toBe('pass');
    expect(phases).toEqual(expect.arrayContaining(['resolve', 'layers', 'advisories', 'match']));

    const cancelled = new MockActivityEnvironment();
    cancelled.on('heartbeat', (d: { phase: string }) => {
      if (d.phase === 'layers') cancelled.cancel();
    });
    await expect(cancelled.run(scanImage, input)).rejects.toBeInstanceOf(CancelledFailure);
  });
});
