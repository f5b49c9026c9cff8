/** What the model card's front matter says, and what the gate decides from it under the default policy. */
import { describe, expect } from 'vitest';
import { card, check, MODEL_LICENSE_TEXTS, ruleIds, spdxText, test, writeModel } from './fixtures';

describe('model card licenses (default policy)', () => {
  test('MIT is permissive and allowed: pass, no approvals asked', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'mit' }) }));
    expect(report).toMatchObject({ license: 'MIT', category: 'permissive', decision: 'allow', verdict: 'pass' });
    expect(report.summary).toBe('license MIT (permissive): allowed');
    expect(report.requiredApprovals).toEqual([]);
    expect(report.findings).toEqual([]);
    expect(report.sources).toEqual([
      expect.objectContaining({ kind: 'model-card', location: 'README.md (license)', license: 'MIT' }),
    ]);
  });

  test('apache-2.0 as the Hub writes it resolves to the SPDX id Apache-2.0', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'apache-2.0', tags: ['text-classification'] }) }),
    );
    expect(report).toMatchObject({ license: 'Apache-2.0', category: 'permissive', verdict: 'pass' });
    expect(report.trail).toEqual(['Apache-2.0 is permissive: allow (license.categories.permissive)']);
  });

  test('llama3 is use-restricted: warn, and legal must approve', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'llama3' }) }));
    expect(report).toMatchObject({
      license: 'llama3',
      category: 'use-restricted',
      decision: 'review',
      verdict: 'warn',
    });
    expect(report.requiredApprovals).toEqual([{ role: 'legal', count: 1, reason: 'license llama3 needs review' }]);
    expect(report.findings).toEqual([
      expect.objectContaining({
        gate: 'license',
        ruleId: 'license.review',
        severity: 'medium',
        location: 'README.md (license)',
        message: 'license llama3 (use-restricted) needs review by legal (license.categories.use-restricted)',
      }),
    ]);
  });

  test.for([
    'llama2',
    'llama3.1',
    'llama3.2',
    'llama3.3',
    'gemma',
    'openrail',
    'openrail++',
    'bigscience-bloom-rail-1.0',
    'bigscience-openrail-m',
    'creativeml-openrail-m',
  ])('%s is a known use-restricted model license that goes to review', async (id, { tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: id }) }));
    expect(report).toMatchObject({ license: id, category: 'use-restricted', verdict: 'warn' });
  });

  test('openrail goes to review with the policy role named in the reason', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'openrail' }) }), {
      reviewRole: 'ml-ethics',
    });
    expect(report.verdict).toBe('warn');
    expect(report.requiredApprovals).toEqual([
      { role: 'ml-ethics', count: 1, reason: 'license openrail needs review' },
    ]);
  });

  test.for(['cc-by-nc-4.0', 'cc-by-nc-sa-4.0', 'cc-by-nc-nd-4.0'])(
    '%s is non-commercial: denied, verdict fail',
    async (id, { tmp }) => {
      const report = await check(await writeModel(tmp, { 'README.md': card({ license: id }) }));
      expect(report).toMatchObject({ category: 'non-commercial', decision: 'deny', verdict: 'fail' });
      expect(report.license).toBe(id.toUpperCase());
      expect(report.summary).toBe(`license ${id.toUpperCase()} (non-commercial): denied by policy`);
      expect(report.findings[0]).toMatchObject({ ruleId: 'license.deny', severity: 'high' });
    },
  );

  test('"other" with an unknown license_name is unknown: review, and the name and link are kept', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({
          license: 'other',
          license_name: 'acme-model-license',
          license_link: 'https://acme.example/model-license',
        }),
      }),
    );
    expect(report).toMatchObject({ license: 'other', category: 'unknown', verdict: 'warn' });
    expect(report.sources[0]).toMatchObject({
      licenseName: 'acme-model-license',
      licenseLink: 'https://acme.example/model-license',
      said: 'license: other; license_name: acme-model-license; license_link: https://acme.example/model-license',
    });
    expect(report.requiredApprovals[0]?.reason).toBe('license other needs review');
  });

  test('"other" with a known license_name is that license', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'other', license_name: 'llama3.1' }) }),
    );
    expect(report).toMatchObject({ license: 'llama3.1', category: 'use-restricted' });
  });

  test('"other" with a Gemma terms link is gemma', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'other', license_link: 'https://ai.google.dev/gemma/terms' }),
      }),
    );
    expect(report.license).toBe('gemma');
  });

  test('"other" defers to the LICENSE file: a Llama 3 text there decides, with no conflict', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'other' }),
        LICENSE: MODEL_LICENSE_TEXTS.llama3,
      }),
    );
    expect(report).toMatchObject({ license: 'llama3', category: 'use-restricted', verdict: 'warn', conflicts: [] });
  });

  test('no license anywhere is unknown: never a silent pass', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': '# A model without metadata\n', 'weights.bin': 'x' }),
    );
    expect(report).toMatchObject({ license: 'unknown', category: 'unknown', decision: 'review', verdict: 'warn' });
    expect(ruleIds(report)).toEqual(['license.missing', 'license.review', 'license.card-without-metadata']);
    expect(report.findings[0]?.message).toBe(
      'no license in the model card front matter, LICENSE/COPYING files or package metadata',
    );
  });

  test('no license at all under a policy that denies unknown: fail', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'model.bin': 'x' }), { categories: { unknown: 'deny' } });
    expect(report).toMatchObject({ license: 'unknown', verdict: 'fail' });
  });

  test('a card whose front matter is not YAML cannot be read: error, even though a LICENSE says MIT', async ({
    tmp,
  }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': '---\nlicense: [mit\n---\n# model\n', LICENSE: spdxText('MIT') }),
    );
    expect(report.verdict).toBe('error');
    expect(report.incomplete).toBe(true);
    expect(report.summary).toMatch(/^could not decide the license: README\.md: the front matter is not valid YAML/);
    expect(report.findings.find((f) => f.ruleId === 'license.card-unreadable')).toMatchObject({
      severity: 'medium',
      waivable: false,
    });
  });

  test('a card that lists several licenses means all of them apply', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: ['apache-2.0', 'cc-by-nc-4.0'] }) }),
    );
    expect(report).toMatchObject({ license: 'Apache-2.0 AND CC-BY-NC-4.0', verdict: 'fail' });
  });

  test('a license id we do not know is unknown (review), and says so', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'acme-eula-7' }) }));
    expect(report).toMatchObject({ license: 'acme-eula-7', category: 'unknown', verdict: 'warn' });
    expect(report.findings.map((f) => f.message)).toContain(
      'README.md (license) names "acme-eula-7", which is neither an SPDX id nor a known model license',
    );
  });
});
