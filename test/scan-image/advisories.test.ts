/** OSV ranges, severities, the offline advisory directory and the OSV API source. */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdvisoryIndex, loadAdvisoryDirectory } from '../../activities/scan/image/advisory-db';
import { matchPackages } from '../../activities/scan/image/match';
import { ecosystemMatches, evaluateAffected, type OsvAdvisory } from '../../activities/scan/image/osv';
import { queryOsvApi } from '../../activities/scan/image/osv-api';
import { npmPackage, type Package } from '../../activities/scan/image/packages';
import { advisorySeverity, cvssBaseScore, severityOfScore } from '../../activities/scan/image/severity';
import { DEBIAN_OPENSSL, GHSA_LODASH, GHSA_PILLOW, GHSA_REQUESTS, writeAdvisoryDir } from './fixtures';

const pypi = (name: string, version: string): Package => ({
  name,
  version,
  ecosystem: 'PyPI',
  advisoryName: name.toLowerCase(),
  purl: `pkg:pypi/${name.toLowerCase()}@${version}`,
  location: 'model:requirements.txt',
});
const deb = (name: string, version: string, source = name, ecosystem = 'Debian:12'): Package => ({
  name,
  version,
  ecosystem,
  advisoryName: source,
  purl: `pkg:deb/debian/${name}@${version}`,
  location: 'image:var/lib/dpkg/status',
});

describe('OSV affected ranges', () => {
  const affected = (events: object[], type = 'ECOSYSTEM', versions?: string[]) => ({
    package: { ecosystem: 'PyPI', name: 'x' },
    ranges: [{ type, events }],
    ...(versions ? { versions } : {}),
  });

  it('introduced/fixed windows, several of them, with the fix that ends the window', () => {
    const a = affected([{ introduced: '1.0' }, { fixed: '1.2' }, { introduced: '2.0' }, { fixed: '2.1.3' }]);
    expect(evaluateAffected(a, 'PyPI', '0.9')).toEqual({ affected: false });
    expect(evaluateAffected(a, 'PyPI', '1.1')).toMatchObject({ affected: true, fixed: '1.2' });
    expect(evaluateAffected(a, 'PyPI', '1.5')).toMatchObject({ affected: false });
    expect(evaluateAffected(a, 'PyPI', '2.1.2')).toMatchObject({ affected: true, fixed: '2.1.3' });
    expect(evaluateAffected(a, 'PyPI', '2.1.3')).toMatchObject({ affected: false });
  });

  it('introduced "0" means every version; last_affected includes its version; limit caps the range', () => {
    const last = affected([{ introduced: '0' }, { last_affected: '1.4' }]);
    expect(evaluateAffected(last, 'PyPI', '0.0.1')).toMatchObject({ affected: true, fixed: undefined });
    expect(evaluateAffected(last, 'PyPI', '1.4')).toMatchObject({ affected: true });
    expect(evaluateAffected(last, 'PyPI', '1.4.1')).toMatchObject({ affected: false });
    const limited = affected([{ introduced: '1.0' }, { limit: '3.0' }]);
    expect(evaluateAffected(limited, 'PyPI', '2.9')).toMatchObject({ affected: true });
    expect(evaluateAffected(limited, 'PyPI', '3.0')).toMatchObject({ affected: false });
  });

  it('explicit versions lists match exactly; GIT ranges are not version ranges', () => {
    const a = { ...affected([{ introduced: 'abc123' }], 'GIT'), versions: ['1.0', '1.1'] };
    expect(evaluateAffected(a, 'PyPI', '1.1')).toMatchObject({ affected: true });
    expect(evaluateAffected(a, 'PyPI', '1.2')).toMatchObject({ affected: false });
  });

  it('uses the ecosystem version rules: dpkg tildes, SemVer pre-releases', () => {
    const debian = { ...DEBIAN_OPENSSL.affected![0]! };
    expect(evaluateAffected(debian, 'Debian:12', '3.0.11-1~deb12u1')).toMatchObject({ affected: true });
    expect(evaluateAffected(debian, 'Debian:12', '3.0.11-1~deb12u2')).toMatchObject({ affected: false });
    const npm = GHSA_LODASH.affected![0]!;
    expect(evaluateAffected(npm, 'npm', '4.17.21-rc.1')).toMatchObject({ affected: true, fixed: '4.17.21' });
  });

  it('reports a version outside the ecosystem rules instead of guessing', () => {
    const a = affected([{ introduced: '0' }, { fixed: 'not-a-version' }]);
    expect(evaluateAffected(a, 'PyPI', '1.0')).toMatchObject({
      affected: false,
      error: expect.stringMatching(/PEP 440/),
    });
  });

  it('matches ecosystems by release: Debian:11 advisories do not apply to Debian 12', () => {
    expect(ecosystemMatches('Debian:12', 'Debian:12')).toBe(true);
    expect(ecosystemMatches('Debian:11', 'Debian:12')).toBe(false);
    expect(ecosystemMatches('Debian', 'Debian:12')).toBe(true);
    expect(ecosystemMatches('Debian:11', 'Debian')).toBe(true); // release unknown: check them all
  });
});

describe('severity from CVSS', () => {
  it.each([
    // FIRST's CVSS v3.1 examples document.
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1, 'medium'], // CVE-2013-1937 phpMyAdmin XSS
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N', 7.5, 'high'], // CVE-2014-0160 Heartbleed
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8, 'critical'], // CVE-2014-6271 Shellshock
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8, 'high'], // CVE-2016-5195 Dirty COW
    ['CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N', 6.1, 'medium'], // CVE-2023-32681 as NVD scores it
    ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.3, 'critical'],
  ])('%s → %f (%s)', (vector, score, severity) => {
    expect(cvssBaseScore(vector)).toBe(score);
    expect(severityOfScore(score)).toBe(severity);
  });

  it('takes the worst vector, then database ratings, then the policy default', () => {
    const both: OsvAdvisory = {
      id: 'X-1',
      modified: '2024-01-01T00:00:00Z',
      severity: [
        { type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N' },
        { type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' },
      ],
    };
    expect(advisorySeverity(both, undefined, 'medium')).toMatchObject({
      severity: 'critical',
      score: 9.3,
      source: 'CVSS_V4',
    });
    const ghsaOnly = { id: 'GHSA-x', modified: '', database_specific: { severity: 'MODERATE' } };
    expect(advisorySeverity(ghsaOnly, undefined, 'high')).toEqual({ severity: 'medium', source: 'database' });
    expect(advisorySeverity({ id: 'DEBIAN-CVE-1', modified: '' }, undefined, 'high')).toEqual({
      severity: 'high',
      source: 'default',
    });
    const garbage = { id: 'Y', modified: '', severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:X' }] };
    expect(advisorySeverity(garbage, undefined, 'low').source).toBe('default');
  });
});

describe('the offline advisory directory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_LODASH, GHSA_REQUESTS]);
    // PyPI also as osv.dev's all.zip, holding one more advisory than the loose files.
    await mkdir(join(dir, 'PyPI'), { recursive: true });
    await writeFile(
      join(dir, 'PyPI', 'all.zip'),
      zipSync({ 'GHSA-j7hp-h8jx-5ppr.json': strToU8(JSON.stringify(GHSA_PILLOW)) }),
    );
    await mkdir(join(dir, 'Maven'));
    await writeFile(join(dir, 'Maven', 'broken.json'), '{ not json');
  });

  it('reads loose JSON files and all.zip, only for the ecosystems asked for', async () => {
    const { index, stats } = await loadAdvisoryDirectory(dir, { ecosystems: new Set(['PyPI', 'Debian']) });
    expect(stats.ecosystems.sort()).toEqual(['Debian', 'PyPI']);
    expect(stats.errors).toEqual([]);
    expect(index.size).toBe(3);
    expect(index.lookup('PyPI', 'Pillow').map((a) => a.id)).toEqual(['GHSA-j7hp-h8jx-5ppr']);
    expect(index.lookup('Debian:12', 'openssl').map((a) => a.id)).toEqual(['DEBIAN-CVE-2023-5363']);
    expect(index.lookup('npm', 'lodash')).toEqual([]);
  });

  it('reports unreadable advisory files rather than skipping them', async () => {
    const { stats } = await loadAdvisoryDirectory(dir, { ecosystems: new Set(['Maven']) });
    expect(stats.errors).toEqual([{ file: join('Maven', 'broken.json'), message: expect.stringMatching(/^not JSON/) }]);
    await expect(loadAdvisoryDirectory(join(dir, 'nope'), { ecosystems: new Set() })).rejects.toThrow(/does not exist/);
  });

  it('matches packages, naming vulnerabilities by CVE and merging advisories for the same one', async () => {
    const index = new AdvisoryIndex();
    // PYSEC's record of the same requests vulnerability: one finding, both ids kept.
    const pysec: OsvAdvisory = {
      id: 'PYSEC-2023-74',
      modified: '2023-06-01T00:00:00Z',
      aliases: ['CVE-2023-32681', 'GHSA-j8r2-6x86-q33q'],
      affected: [
        {
          package: { ecosystem: 'PyPI', name: 'requests' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.3.0' }, { fixed: '2.31.0' }] }],
        },
      ],
    };
    for (const a of [DEBIAN_OPENSSL, GHSA_REQUESTS, pysec, GHSA_LODASH]) index.add(a);
    const { matches } = matchPackages(
      [
        pypi('Requests', '2.30.0'),
        deb('libssl3', '3.0.11-1~deb12u1', 'openssl'),
        deb('libssl1.1', '1.1.1n-0+deb11u5', 'openssl', 'Debian:11'),
        npmPackage('lodash', '4.17.21', 'image:x'),
      ],
      index,
      { unknownSeverity: 'medium' },
    );
    expect(matches.map((m) => [m.id, m.package.name, m.fixed, m.severity, m.advisoryIds])).toEqual([
      ['CVE-2023-32681', 'Requests', '2.31.0', 'medium', ['GHSA-j8r2-6x86-q33q', 'PYSEC-2023-74']],
      ['CVE-2023-5363', 'libssl3', '3.0.11-1~deb12u2', 'high', ['DEBIAN-CVE-2023-5363']],
      ['CVE-2023-5363', 'libssl1.1', '1.1.1w-0+deb11u1', 'high', ['DEBIAN-CVE-2023-5363']],
    ]);
  });
});

describe('the OSV API source', () => {
  let server: Server;
  let url: string;
  const requests: { method: string; path: string; body?: unknown }[] = [];
  const byName: Record<string, OsvAdvisory[]> = { pillow: [GHSA_PILLOW], lodash: [GHSA_LODASH] };

  beforeAll(async () => {
    // Speaks /v1/querybatch and /v1/vulns/{id} as api.osv.dev does, paging lodash's answer.
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const parsed = body ? JSON.parse(body) : undefined;
        requests.push({ method: req.method!, path: req.url!, body: parsed });
        res.setHeader('content-type', 'application/json');
        if (req.method === 'POST' && req.url === '/v1/querybatch') {
          const results = (parsed.queries as { package: { name: string }; page_token?: string }[]).map((q) => {
            if (q.package.name === 'lodash' && !q.page_token) return { next_page_token: 'page-2' };
            const vulns = (byName[q.package.name] ?? []).map((a) => ({ id: a.id, modified: a.modified }));
            return vulns.length ? { vulns } : {};
          });
          return res.end(JSON.stringify({ results }));
        }
        const m = /^\/v1\/vulns\/(.+)$/.exec(req.url ?? '');
        const advisory =
          m &&
          Object.values(byName)
            .flat()
            .find((a) => a.id === decodeURIComponent(m[1]!));
        if (advisory) return res.end(JSON.stringify(advisory));
        res.statusCode = 404;
        res.end(JSON.stringify({ code: 5, message: 'Bug not found.' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('queries in batches, follows pages and fetches each advisory once', async () => {
    const packages = [pypi('Pillow', '10.0.0'), npmPackage('lodash', '4.17.20', 'image:x'), pypi('six', '1.16.0')];
    const advisories = await queryOsvApi(packages, { url, batchSize: 2 });
    expect(advisories.map((a) => a.id).sort()).toEqual(['GHSA-35jh-r3h4-6jhm', 'GHSA-j7hp-h8jx-5ppr']);
    const batches = requests.filter((r) => r.path === '/v1/querybatch');
    expect(batches).toHaveLength(3); // 2 + 1 queries, then lodash's second page
    expect(batches[0]!.body).toEqual({
      queries: [
        { package: { name: 'pillow', ecosystem: 'PyPI' }, version: '10.0.0' },
        { package: { name: 'lodash', ecosystem: 'npm' }, version: '4.17.20' },
      ],
    });
    expect(batches[2]!.body).toMatchObject({ queries: [{ package: { name: 'lodash' }, page_token: 'page-2' }] });

    const index = new AdvisoryIndex();
    for (const a of advisories) index.add(a);
    const { matches } = matchPackages(packages, index, { unknownSeverity: 'medium' });
    expect(matches.map((m) => m.id).sort()).toEqual(['CVE-2021-23337', 'CVE-2023-4863']);
  });

  it('an API that cannot be reached is an error (the activity retries it)', async () => {
    await expect(queryOsvApi([pypi('six', '1.16.0')], { url: 'http://127.0.0.1:9' })).rejects.toThrow(
      /OSV API .* cannot be reached/,
    );
  });
});
