/**
 * The image gate's CycloneDX SBOM is byte-stable: a retried scan of the same image stores the same bytes (and so the
 * same digest in the release's evidence bundle), whatever the clock says.
 */
import { describe, expect, it } from 'vitest';
import { buildCycloneDx, nameBasedUuid, type SbomInput } from '../../activities/scan/image/cyclonedx';
import { parseImagePolicy } from '../../activities/scan/image/policy';
import { scanImage } from '../../activities/scan/image/scan';
import { dockerTest as test } from './docker-env';
import { DEBIAN_OPENSSL, GOOD_CONFIG, VULNERABLE, runtimeFiles, writeAdvisoryDir } from './fixtures';
import { buildAndPush } from './images';

const UUID_V5 = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function sbomInput(overrides: Partial<SbomInput> = {}): SbomInput {
  return {
    image: { registry: '127.0.0.1:5000', repository: 'ml/server', digest: `sha256:${'a'.repeat(64)}`, tag: '1.0' },
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)', ecosystem: 'Debian:12' },
    packages: [
      {
        name: 'libssl3',
        version: '3.0.11-1~deb12u1',
        ecosystem: 'Debian:12',
        advisoryName: 'openssl',
        purl: 'pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12',
        location: 'image:var/lib/dpkg/status',
      },
    ],
    vulnerabilities: [],
    toolVersion: '1.0.0',
    ...overrides,
  } as SbomInput;
}

describe('buildCycloneDx', () => {
  it('gives the same bytes for the same input, with a name-based serial number and no clock time', () => {
    const first = JSON.stringify(buildCycloneDx(sbomInput()));
    const again = JSON.stringify(buildCycloneDx(structuredClone(sbomInput())));
    expect(again).toBe(first);
    const bom = JSON.parse(first);
    expect(bom.serialNumber).toMatch(UUID_V5);
    expect(bom.metadata).not.toHaveProperty('timestamp');
    expect(buildCycloneDx(sbomInput({ timestamp: '2025-01-01T00:00:00Z' })).metadata).toMatchObject({
      timestamp: '2025-01-01T00:00:00Z',
    });
  });

  it('gives another serial number for another image, tool version or content', () => {
    const serial = (input: SbomInput) => buildCycloneDx(input).serialNumber;
    const base = serial(sbomInput());
    const otherImage = sbomInput();
    otherImage.image = { ...otherImage.image, digest: `sha256:${'b'.repeat(64)}` };
    expect(serial(otherImage)).not.toBe(base);
    expect(serial(sbomInput({ toolVersion: '1.0.1' }))).not.toBe(base);
    expect(serial(sbomInput({ packages: [] }))).not.toBe(base);
  });

  it('derives UUIDs as RFC 9562 version 5 does', () => {
    // The RFC's own example: the DNS namespace and www.example.com.
    expect(nameBasedUuid('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });
});

describe('image scan retried', () => {
  test('writes an identical SBOM although the clock moved between the attempts', async ({ docker }) => {
    const tag = `${docker.registry}/ml/server-sbom:1.0`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(VULNERABLE), instructions: GOOD_CONFIG });
    const policy = parseImagePolicy({ advisoryDir: await writeAdvisoryDir([DEBIAN_OPENSSL]) });
    const clocks = [new Date('2025-01-01T10:00:00Z'), new Date('2025-06-30T23:59:59Z')];
    const sboms: string[] = [];
    for (const clock of clocks) {
      const report = await scanImage(tag, { policy, now: () => clock });
      expect(report.finishedAt).toBe(clock.toISOString());
      sboms.push(JSON.stringify(report.sbom));
    }
    expect(sboms[1]).toBe(sboms[0]);
    expect(sboms[0]).not.toContain('2025-');
    expect(JSON.parse(sboms[0]!).vulnerabilities.map((v: { id: string }) => v.id)).toContain('CVE-2023-5363');
  });
});
