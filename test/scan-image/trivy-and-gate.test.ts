/** Trivy's report merged into the gate's, the gate's decision rules, its policy section and output formats. */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeImagePolicyError, parseImagePolicy } from '../../activities/scan/image/policy';
import { decideImageGate } from '../../activities/scan/image/gate';
import { buildCycloneDx } from '../../activities/scan/image/cyclonedx';
import type { VulnerabilityMatch } from '../../activities/scan/image/match';
import type { Package } from '../../activities/scan/image/packages';
import { toSarif } from '../../activities/scan/image/sarif';
import type { ImageScanReport } from '../../activities/scan/image/scan';
import { mergeTrivy, runTrivy, type TrivyReport } from '../../activities/scan/image/trivy';

const FIXTURE = fileURLToPath(new URL('./trivy-report.json', import.meta.url));

const libssl3: Package = {
  name: 'libssl3',
  version: '3.0.11-1~deb12u1',
  ecosystem: 'Debian:12',
  advisoryName: 'openssl',
  purl: 'pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12',
  location: 'image:var/lib/dpkg/status',
};
const libc6: Package = {
  ...libssl3,
  name: 'libc6',
  version: '2.36-9+deb12u1',
  advisoryName: 'glibc',
  purl: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12',
};

function vuln(id: string, pkg: Package, extra: Partial<VulnerabilityMatch> = {}): VulnerabilityMatch {
  return {
    id,
    aliases: [id],
    advisoryIds: [id],
    package: pkg,
    severity: 'high',
    score: 7.5,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N',
    severitySource: 'CVSS_V3',
    fixed: '3.0.11-1~deb12u2',
    summary: 'test',
    sources: ['osv'],
    ...extra,
  };
}

function report(vulnerabilities: VulnerabilityMatch[], packages: Package[] = [libssl3, libc6]): ImageScanReport {
  const image = {
    registry: '127.0.0.1:5000',
    repository: 'ml/server',
    digest: `sha256:${'a'.repeat(64)}`,
    pinned: `127.0.0.1:5000/ml/server@sha256:${'a'.repeat(64)}`,
    manifestDigest: `sha256:${'a'.repeat(64)}`,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    configDigest: `sha256:${'b'.repeat(64)}`,
  };
  return {
    ref: '127.0.0.1:5000/ml/server:1.0',
    image,
    config: { user: '1000', runsAsRoot: false, labels: {}, exposedPorts: [], envNames: [], secretEnvNames: [] },
    layers: [],
    packages,
    lockFiles: [],
    vulnerabilities,
    problems: [],
    advisories: { sources: [], loaded: 0, files: 0, errors: [], unevaluable: [] },
    timings: { resolveMs: 1, inventoryMs: 1, advisoryLoadMs: 1, matchMs: 1 },
    sbom: buildCycloneDx({ image, packages, vulnerabilities, toolVersion: 'test', timestamp: '2024-01-01T00:00:00Z' }),
    startedAt: '2024-01-01T00:00:00Z',
    finishedAt: '2024-01-01T00:00:01Z',
  };
}

describe('trivy', () => {
  it('merges trivy JSON: shared findings list both sources, trivy-only ones are added', async () => {
    const trivy = JSON.parse(
      await import('node:fs/promises').then((fs) => fs.readFile(FIXTURE, 'utf8')),
    ) as TrivyReport;
    const merged = mergeTrivy([vuln('CVE-2023-5363', libssl3)], trivy, [libssl3, libc6], 'medium');
    expect(merged.map((m) => [m.id, m.package.name, m.sources, m.fixed, m.severity])).toEqual([
      ['CVE-2023-5363', 'libssl3', ['osv', 'trivy'], '3.0.11-1~deb12u2', 'high'],
      ['CVE-2023-4911', 'libc6', ['trivy'], '2.36-9+deb12u3', 'high'],
    ]);
    // The trivy-only finding is located in the inventory, not in trivy's target text.
    expect(merged[1]!.package.location).toBe('image:var/lib/dpkg/status');
    expect(merged[1]!.vector).toBe('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H');
  });

  it('runs the configured binary against the pinned digest and parses its report', async () => {
    // Trivy's vulnerability database cannot be downloaded here: a stand-in prints the saved report and its args.
    const dir = await mkdtemp(join(tmpdir(), 'mrel-trivy-'));
    const bin = join(dir, 'trivy');
    await writeFile(bin, `#!/bin/sh\necho "$@" > "${dir}/args"\ncat "${FIXTURE}"\n`);
    await chmod(bin, 0o755);
    const parsed = await runTrivy(bin, '127.0.0.1:5000/ml/server@sha256:abc', { insecure: true, timeoutMs: 10_000 });
    expect(parsed.Results?.[0]?.Vulnerabilities).toHaveLength(2);
    const args = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'args'), 'utf8'));
    expect(args.trim()).toBe(
      'image --format json --quiet --scanners vuln --insecure 127.0.0.1:5000/ml/server@sha256:abc',
    );

    await writeFile(bin, '#!/bin/sh\necho "FATAL: init error: DB error" >&2\nexit 1\n');
    await expect(runTrivy(bin, 'x@sha256:abc', { insecure: false, timeoutMs: 10_000 })).rejects.toThrow(
      /trivy failed.*DB error/s,
    );
  });
});

describe('the gate decision', () => {
  const policy = parseImagePolicy({});
  const now = '2025-01-01T00:00:00Z';

  it('ignoreUnfixed drops vulnerabilities without a fix from the verdict (not from the report)', () => {
    const r = report([
      vuln('CVE-2023-5363', libssl3),
      vuln('CVE-2023-9999', libc6, { fixed: undefined, severity: 'critical' }),
    ]);
    expect(decideImageGate(r, policy, [], now).findings.map((f) => f.ruleId)).toEqual([
      'CVE-2023-9999',
      'CVE-2023-5363',
    ]);
    const ignoring = decideImageGate(r, { ...policy, ignoreUnfixed: true }, [], now);
    expect(ignoring.findings.map((f) => f.ruleId)).toEqual(['CVE-2023-5363']);
    expect(ignoring.metrics).toMatchObject({ ignoredUnfixed: 1, vulnerabilities: 2 });
  });

  it('thresholds: below failOn warns, nothing passes, and incomplete scans error even when clean', () => {
    const medium = report([vuln('CVE-1', libssl3, { severity: 'medium' })]);
    expect(decideImageGate(medium, policy, [], now).verdict).toBe('warn');
    expect(decideImageGate(medium, { ...policy, failOn: 'medium' }, [], now).verdict).toBe('fail');
    expect(decideImageGate(report([]), policy, [], now).verdict).toBe('pass');
    const incomplete = report([]);
    incomplete.problems.push({
      ruleId: 'layer-too-large',
      severity: 'medium',
      location: 'layer 0',
      message: 'x',
      incomplete: true,
    });
    const decided = decideImageGate(
      incomplete,
      policy,
      [
        {
          gate: 'image',
          ruleIds: ['*'],
          justification: 'accept everything',
          approver: 'alice',
          expiresAt: '2999-01-01',
        },
      ],
      now,
    );
    expect(decided.verdict).toBe('error');
    expect(decided.findings[0]!.waivedBy).toBeUndefined();
  });

  it('counts every finding but the result carries at most 200, saying how many were left out', () => {
    const many = Array.from({ length: 250 }, (_, i) => vuln(`CVE-2024-${1000 + i}`, libssl3));
    const decided = decideImageGate(report(many), policy, [], now);
    expect(decided.findings).toHaveLength(250);
    expect(decided.metrics).toMatchObject({ findingsTotal: 250, findingsOmitted: 50, high: 250 });
  });

  it('SARIF and CycloneDX outputs reference what they describe', () => {
    const r = report([vuln('CVE-2023-5363', libssl3, { aliases: ['CVE-2023-5363', 'DEBIAN-CVE-2023-5363'] })]);
    const decided = decideImageGate(r, policy, [], now);
    const sarif = toSarif(r, decided.findings, 'test') as {
      version: string;
      runs: {
        results: { ruleId: string; level: string }[];
        tool: { driver: { rules: { properties: Record<string, string> }[] } };
      }[];
    };
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.runs[0]!.results).toEqual([expect.objectContaining({ ruleId: 'CVE-2023-5363', level: 'error' })]);
    expect(sarif.runs[0]!.tool.driver.rules[0]!.properties['security-severity']).toBe('7.5');
    const bom = r.sbom as unknown as {
      components: { 'bom-ref': string }[];
      vulnerabilities: { affects: { ref: string }[]; ratings: { method: string }[]; references: { id: string }[] }[];
    };
    const refs = new Set(bom.components.map((c) => c['bom-ref']));
    expect(refs.size).toBe(bom.components.length);
    expect(refs.has(bom.vulnerabilities[0]!.affects[0]!.ref)).toBe(true);
    expect(bom.vulnerabilities[0]!.ratings[0]!.method).toBe('CVSSv31');
    expect(bom.vulnerabilities[0]!.references).toEqual([
      { id: 'DEBIAN-CVE-2023-5363', source: { url: 'https://osv.dev/vulnerability/DEBIAN-CVE-2023-5363' } },
    ]);
  });
});

describe('the image: policy section', () => {
  it('fills defaults and names the field of every problem', () => {
    expect(parseImagePolicy(undefined)).toMatchObject({
      failOn: 'high',
      ignoreUnfixed: false,
      advisoryDir: 'advisories',
      osvApi: { enabled: false },
    });
    let error: unknown;
    try {
      parseImagePolicy({ failOn: 'severe', trivy: { path: '' }, osvApi: { url: 'nope' }, extra: 1 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(z.ZodError);
    expect(describeImagePolicyError(error as z.ZodError).sort()).toEqual([
      'image.failOn: must be one of critical, high, medium, low, info',
      'image.osvApi.url: must be an http(s) URL such as https://api.osv.dev',
      'image.trivy.path: must be the path of a trivy binary, or leave trivy out',
      'image: has unknown field "extra"; known: failOn, warnOn, ignoreUnfixed, unknownSeverity, advisoryDir, osvApi, ' +
        'trivy, rootUser, secretEnv, requiredLabels, platform, insecureRegistries, maxLayerBytes, maxFileBytes',
    ]);
  });
});
