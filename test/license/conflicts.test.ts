/** Sources that disagree: the card says one license, a LICENSE file or package metadata another. */
import { describe, expect } from 'vitest';
import { card, check, MODEL_LICENSE_TEXTS, spdxText, test, withCopyright, writeModel } from './fixtures';

describe('card / file / metadata conflicts', () => {
  test('card apache-2.0 but LICENSE is MIT: a conflict finding naming both, and legal review', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'apache-2.0' }), LICENSE: withCopyright(spdxText('MIT')) }),
    );
    expect(report.conflicts).toEqual([
      { a: { location: 'README.md (license)', license: 'Apache-2.0' }, b: { location: 'LICENSE', license: 'MIT' } },
    ]);
    expect(report).toMatchObject({ license: 'Apache-2.0 AND MIT', verdict: 'warn' });
    expect(report.findings).toEqual([
      expect.objectContaining({
        ruleId: 'license.conflict',
        severity: 'medium',
        location: 'README.md (license), LICENSE',
        message:
          'README.md (license) says Apache-2.0 but LICENSE says MIT; both are taken to apply (license.onConflict: review)',
      }),
    ]);
    expect(report.requiredApprovals).toEqual([
      {
        role: 'legal',
        count: 1,
        reason: 'license sources disagree: README.md (license) says Apache-2.0, LICENSE says MIT',
      },
    ]);
    expect(report.summary).toBe('license Apache-2.0 AND MIT (permissive): needs review by legal; 1 conflicting source');
  });

  test('with onConflict: deny the same disagreement fails the gate', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'apache-2.0' }), LICENSE: spdxText('MIT') }),
      { onConflict: 'deny' },
    );
    expect(report.verdict).toBe('fail');
    expect(report.findings[0]).toMatchObject({ ruleId: 'license.conflict', severity: 'high' });
  });

  test('card mit but LICENSE is the Llama 3 agreement: conflict, and the stricter license counts', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'mit' }), LICENSE: MODEL_LICENSE_TEXTS.llama3 }),
    );
    expect(report).toMatchObject({ license: 'MIT AND llama3', category: 'use-restricted', verdict: 'warn' });
    expect(report.conflicts).toHaveLength(1);
    expect(report.requiredApprovals[0]?.reason).toBe(
      'license llama3 needs review; license sources disagree: README.md (license) says MIT, LICENSE says llama3',
    );
  });

  test('card apache-2.0 but package.json says MIT: a conflict between declarations', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'apache-2.0' }),
        'package.json': JSON.stringify({ name: 'm', license: 'MIT' }),
      }),
    );
    expect(report.conflicts).toEqual([
      {
        a: { location: 'README.md (license)', license: 'Apache-2.0' },
        b: { location: 'package.json (license)', license: 'MIT' },
      },
    ]);
  });

  test('dual licensing is no conflict: metadata MIT OR Apache-2.0 with LICENSE-MIT and LICENSE-APACHE', async ({
    tmp,
  }) => {
    const report = await check(
      await writeModel(tmp, {
        'pyproject.toml': '[project]\nname = "m"\nlicense = "MIT OR Apache-2.0"\n',
        'LICENSE-MIT': withCopyright(spdxText('MIT')),
        'LICENSE-APACHE': spdxText('Apache-2.0'),
      }),
    );
    expect(report).toMatchObject({ license: 'MIT OR Apache-2.0', verdict: 'pass', conflicts: [] });
    expect(report.parts).toEqual([
      {
        license: 'MIT OR Apache-2.0',
        locations: ['pyproject.toml (project.license)', 'LICENSE-APACHE', 'LICENSE-MIT'],
      },
    ]);
  });

  test('the same license spelled differently everywhere is no conflict', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'apache-2.0' }),
        LICENSE: spdxText('Apache-2.0'),
        'setup.cfg': '[metadata]\nname = m\nlicense = Apache License 2.0\n',
        'config.json': JSON.stringify({ model_type: 'bert', license: 'Apache-2.0' }),
      }),
    );
    expect(report).toMatchObject({ license: 'Apache-2.0', verdict: 'pass', conflicts: [] });
    expect(report.sources.map((s) => [s.location, s.license])).toEqual([
      ['README.md (license)', 'Apache-2.0'],
      ['LICENSE', 'Apache-2.0'],
      ['config.json (license)', 'Apache-2.0'],
      ['setup.cfg (metadata.license)', 'Apache-2.0'],
    ]);
    expect(report.findings.map((f) => f.message)).toEqual([
      'setup.cfg (metadata.license) says "Apache License 2.0", read as the SPDX id Apache-2.0',
    ]);
  });

  test('package.json that does not parse makes the gate undecided', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'mit' }), 'package.json': '{ "license": "MIT", ' }),
    );
    expect(report.verdict).toBe('error');
    expect(report.findings.find((f) => f.ruleId === 'license.metadata-unreadable')?.message).toMatch(
      /^package\.json cannot be parsed/,
    );
  });

  test('a waiver for the conflict (signed, unexpired) lets it pass without review', async ({ tmp }) => {
    const dir = await writeModel(tmp, { 'README.md': card({ license: 'apache-2.0' }), LICENSE: spdxText('MIT') });
    const waiver = {
      gate: 'license',
      ruleIds: ['license.conflict'],
      justification: 'LICENSE is stale; upstream relicensed to Apache-2.0 in v2',
      approver: 'erin',
      expiresAt: '2026-12-31T23:59:59.999Z',
    };
    const report = await check(dir, undefined, [waiver]);
    expect(report).toMatchObject({ verdict: 'pass', requiredApprovals: [] });
    expect(report.findings[0]?.waivedBy).toMatchObject({ approver: 'erin' });
    const expired = await check(dir, undefined, [{ ...waiver, expiresAt: '2026-01-01T00:00:00.000Z' }]);
    expect(expired.verdict).toBe('warn');
  });
});
