/** LICENSE / COPYING files identified by their text: real SPDX texts, as projects really ship them. */
import { describe, expect } from 'vitest';
import { identifyLicenseText } from '../../activities/license/text-match';
import {
  card,
  check,
  MODEL_LICENSE_TEXTS,
  reflow,
  ruleIds,
  spdxText,
  test,
  withCopyright,
  writeModel,
} from './fixtures';

describe('identifying license texts', () => {
  test.for(['MIT', 'Apache-2.0', 'BSD-3-Clause', 'BSD-2-Clause', 'ISC', 'MPL-2.0', 'Unlicense', 'CC-BY-4.0'])(
    '%s with its own copyright line, reflowed, with CRLF line ends, is still identified',
    async (id) => {
      const match = identifyLicenseText(reflow(withCopyright(spdxText(id))), 0.9);
      expect(match).toMatchObject({ id, method: 'similarity' });
      expect(match.score).toBeGreaterThan(0.97);
    },
  );

  test('close relatives are told apart: BSD-2-Clause is not BSD-3-Clause, MIT is not MIT-0', () => {
    expect(identifyLicenseText(withCopyright(spdxText('BSD-2-Clause')), 0.9).id).toBe('BSD-2-Clause');
    expect(identifyLicenseText(withCopyright(spdxText('BSD-3-Clause')), 0.9).id).toBe('BSD-3-Clause');
    expect(identifyLicenseText(spdxText('MIT-0'), 0.9).id).toBe('MIT-0');
    expect(identifyLicenseText(withCopyright(spdxText('MIT')), 0.9).id).toBe('MIT');
  });

  test('GPL-3.0 text cannot say "only" or "or later": reported as GPL-3.0-only with its equivalents', () => {
    const match = identifyLicenseText(spdxText('GPL-3.0-or-later'), 0.9);
    expect(match.id).toBe('GPL-3.0-only');
    expect(match.equivalent).toEqual(expect.arrayContaining(['GPL-3.0-only', 'GPL-3.0-or-later']));
  });

  test('Apache-2.0 without its appendix (as many repositories ship it) still matches', () => {
    const text = spdxText('Apache-2.0');
    const match = identifyLicenseText(text.slice(0, text.indexOf('APPENDIX')), 0.9);
    // Pixar's license is Apache-2.0's terms without the appendix plus changes: it must not win here.
    expect(match).toMatchObject({ id: 'Apache-2.0', method: 'similarity', score: 1 });
    expect(match.candidates[1]?.id).toBe('Pixar');
  });

  test('model license texts are recognised by their title lines', () => {
    for (const [id, text] of Object.entries(MODEL_LICENSE_TEXTS)) {
      expect(identifyLicenseText(text, 0.9)).toMatchObject({ id, method: 'fingerprint' });
    }
  });

  test('a short Creative Commons notice names its license', () => {
    const match = identifyLicenseText(
      'This model is licensed under a Creative Commons Attribution-NonCommercial 4.0 International License.\n',
      0.9,
    );
    expect(match).toMatchObject({ id: 'CC-BY-NC-4.0', method: 'notice' });
  });

  test('prose that is no license matches nothing, and reports its nearest candidates', () => {
    const match = identifyLicenseText('You may use this model only on Tuesdays, for good, never for evil.', 0.9);
    expect(match.id).toBeUndefined();
    expect(match.method).toBe('none');
  });
});

describe('license files in a model', () => {
  test('LICENSE with the real MIT text (changed copyright) agrees with the card: pass', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'mit' }),
        LICENSE: withCopyright(spdxText('MIT'), 'Copyright (c) 2024 Example Labs'),
      }),
    );
    expect(report).toMatchObject({ license: 'MIT', verdict: 'pass', conflicts: [] });
    expect(report.parts).toEqual([{ license: 'MIT', locations: ['README.md (license)', 'LICENSE'] }]);
    const file = report.sources.find((s) => s.kind === 'license-file');
    expect(file?.match).toMatchObject({ id: 'MIT', method: 'similarity' });
    expect(file?.said).toMatch(/^text matches MIT \(similarity (1|0\.9\d*)\)$/);
  });

  test('only a LICENSE file (reflowed Apache-2.0 as LICENSE.txt) decides the license', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'LICENSE.txt': reflow(spdxText('Apache-2.0'), 72) }));
    expect(report).toMatchObject({ license: 'Apache-2.0', verdict: 'pass' });
  });

  test('the full CC-BY-NC-4.0 legal code as LICENSE is denied', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { LICENSE: spdxText('CC-BY-NC-4.0') }));
    expect(report).toMatchObject({ license: 'CC-BY-NC-4.0', category: 'non-commercial', verdict: 'fail' });
  });

  test('COPYING with the GPL-3.0 text and a card saying gpl-3.0 agree; strong copyleft goes to review', async ({
    tmp,
  }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'gpl-3.0' }), COPYING: spdxText('GPL-3.0-only') }),
    );
    expect(report).toMatchObject({ category: 'strong-copyleft', verdict: 'warn', conflicts: [] });
    expect(report.license).toBe('GPL-3.0');
  });

  test('MIT with an added field-of-use clause is not MIT: its terms are unknown and go to review', async ({ tmp }) => {
    const mit = withCopyright(spdxText('MIT'));
    const modified = mit.replace(
      'The above copyright notice',
      'The Software shall not be used for surveillance, for weapons, for credit scoring, for hiring decisions, for ' +
        'medical diagnosis or for any purpose that the Licensor names in writing from time to time, and any use ' +
        'outside these limits ends this license at once without notice.\n\nThe above copyright notice',
    );
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'mit' }), LICENSE: modified }));
    expect(report).toMatchObject({ license: 'MIT AND unknown', verdict: 'warn', conflicts: [] });
    const note = report.findings.find((f) => f.ruleId === 'license.unrecognised-text');
    expect(note?.message).toMatch(
      /^LICENSE is not a license text we recognise \(below the 0\.9 similarity threshold; the nearest SPDX text is MIT at similarity 0\.[5-8]\d*\)/,
    );
    expect(report.requiredApprovals[0]?.reason).toBe('license unknown needs review');
  });

  test('a lower textMatchThreshold accepts the modified MIT as MIT', async ({ tmp }) => {
    const modified = spdxText('MIT').replace('The above copyright notice', 'Be nice.\n\nThe above copyright notice');
    const report = await check(await writeModel(tmp, { LICENSE: modified }), { textMatchThreshold: 0.8 });
    expect(report).toMatchObject({ license: 'MIT', verdict: 'pass' });
  });

  test('a Llama 3.1 LICENSE with no card goes to review as llama3.1', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { LICENSE: MODEL_LICENSE_TEXTS['llama3.1'] }));
    expect(report).toMatchObject({ license: 'llama3.1', category: 'use-restricted', verdict: 'warn' });
    expect(report.sources[0]?.match).toMatchObject({
      method: 'fingerprint',
      phrase: 'llama 3.1 community license agreement',
    });
  });

  test('a nested license file (vendored tokenizer) adds its terms', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'apache-2.0' }),
        'tokenizer/LICENSE': spdxText('CC-BY-NC-SA-4.0'),
      }),
    );
    expect(report).toMatchObject({ license: 'Apache-2.0 AND CC-BY-NC-SA-4.0', verdict: 'fail', conflicts: [] });
    expect(report.findings.find((f) => f.ruleId === 'license.deny')?.location).toBe('tokenizer/LICENSE');
  });

  test('a license file too large to be a license text makes the gate undecided', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'mit' }), LICENSE: 'x '.repeat(600_000) }),
    );
    expect(report.verdict).toBe('error');
    expect(ruleIds(report)).toContain('license.source-too-large');
  });

  test('files that only look like license files (license.py, LICENSE.json) are not read as license texts', async ({
    tmp,
  }) => {
    const report = await check(
      await writeModel(tmp, {
        'README.md': card({ license: 'mit' }),
        'license.py': 'print("hello")\n',
        'LICENSE.json': '{}',
      }),
    );
    expect(report).toMatchObject({ license: 'MIT', verdict: 'pass' });
    expect(report.sources).toHaveLength(1);
  });
});
