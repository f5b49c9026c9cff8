/** SPDX expressions: parsed with spdx-expression-parse, OR takes the best branch, AND the worst. */
import { describe, expect, it } from 'vitest';
import {
  evaluateLicense,
  formatLicense,
  parseLicenseExpression,
  preparePolicy,
  LicenseExpressionError,
} from '../../activities/license/expression';
import { parseLicensePolicy } from '../../activities/license/policy';
import { card, check, test, writeModel } from './fixtures';

function decide(expression: string, policy: unknown = undefined) {
  const { prepared, problems } = preparePolicy(parseLicensePolicy(policy));
  expect(problems).toEqual([]);
  return evaluateLicense(parseLicenseExpression(expression), prepared);
}

describe('license expressions', () => {
  it('OR takes the most favourable branch', () => {
    expect(decide('MIT OR Apache-2.0')).toMatchObject({ decision: 'allow', category: 'permissive' });
    const choice = decide('CC-BY-NC-4.0 OR MIT');
    expect(choice).toMatchObject({ decision: 'allow', leaves: [{ license: 'MIT' }] });
    expect(choice.trail.at(-1)).toBe(
      'CC-BY-NC-4.0 OR MIT: OR takes the more favourable branch, MIT (allow) over CC-BY-NC-4.0 (deny)',
    );
  });

  it('AND takes the least favourable', () => {
    expect(decide('MIT AND CC-BY-NC-4.0')).toMatchObject({ decision: 'deny', category: 'non-commercial' });
    expect(decide('MIT AND LGPL-2.1-only')).toMatchObject({ decision: 'review', category: 'weak-copyleft' });
  });

  it('parentheses group: (MIT OR GPL-3.0-only) AND Apache-2.0 is allowed; MIT OR (GPL-3.0-only AND Apache-2.0) too', () => {
    expect(decide('(MIT OR GPL-3.0-only) AND Apache-2.0')).toMatchObject({ decision: 'allow' });
    expect(decide('(GPL-3.0-only OR CC-BY-NC-4.0) AND Apache-2.0')).toMatchObject({
      decision: 'review',
      category: 'strong-copyleft',
    });
    expect(formatLicense(parseLicenseExpression('(mit or gpl-3.0-only) and apache-2.0'))).toBe(
      '(MIT OR GPL-3.0-only) AND Apache-2.0',
    );
  });

  it('a linking exception turns strong copyleft into weak: GPL-2.0-only WITH Classpath-exception-2.0', () => {
    expect(decide('GPL-2.0-only')).toMatchObject({ category: 'strong-copyleft' });
    const withException = decide('GPL-2.0-only WITH Classpath-exception-2.0');
    expect(withException).toMatchObject({ category: 'weak-copyleft', decision: 'review' });
    expect(withException.leaves[0]?.license).toBe('GPL-2.0-only WITH Classpath-exception-2.0');
    expect(decide('Apache-2.0 WITH LLVM-exception')).toMatchObject({ category: 'permissive', decision: 'allow' });
  });

  it('model license ids may appear in expressions', () => {
    expect(decide('llama3.1 OR MIT')).toMatchObject({ decision: 'allow', leaves: [{ license: 'MIT' }] });
    expect(decide('gemma AND apache-2.0')).toMatchObject({ decision: 'review', category: 'use-restricted' });
  });

  it('the policy decides by id before category', () => {
    expect(decide('llama3.1', { licenses: { 'llama3.1': 'allow' } })).toMatchObject({
      decision: 'allow',
      leaves: [{ rule: 'license.licenses["llama3.1"]' }],
    });
    expect(decide('MIT', { licenses: { mit: 'deny' } })).toMatchObject({ decision: 'deny' });
    // Text-identical SPDX variants share a decision: GPL-3.0-or-later is decided by a GPL-3.0-only entry.
    expect(decide('GPL-3.0-or-later', { licenses: { 'GPL-3.0-only': 'deny' } })).toMatchObject({ decision: 'deny' });
    expect(decide('BSD-3-Clause', { categories: { permissive: 'review' } })).toMatchObject({ decision: 'review' });
  });

  it('malformed expressions and unknown exceptions are errors that name the problem', () => {
    expect(() => parseLicenseExpression('MIT OR')).toThrow(LicenseExpressionError);
    expect(() => parseLicenseExpression('GPL-2.0-only WITH No-Such-exception')).toThrow(
      '"No-Such-exception" is not an SPDX license exception',
    );
  });

  it('prose naming one license is read as that license', () => {
    expect(parseLicenseExpression('GNU General Public License v3 or later (GPLv3+)')).toMatchObject({
      type: 'license',
      kind: 'spdx',
    });
  });

  it('a policy entry for a license nobody knows is refused, naming the field', () => {
    const { problems } = preparePolicy(parseLicensePolicy({ licenses: { 'lama3.1': 'allow', 'MIT OR X': 'deny' } }));
    expect(problems[0]).toBe(
      'license.licenses["lama3.1"] is not an SPDX id, a model license id (e.g. llama3.1, gemma, openrail) or a LicenseRef-; fix the spelling',
    );
    expect(problems).toHaveLength(2);
  });
});

describe('expressions in a model', () => {
  test('package.json "(MIT OR CC-BY-NC-4.0)" passes by its MIT branch', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'package.json': JSON.stringify({ license: '(MIT OR CC-BY-NC-4.0)' }) }),
    );
    expect(report).toMatchObject({ license: 'MIT OR CC-BY-NC-4.0', verdict: 'pass' });
  });

  test('a card expression with an AND of a denied license fails, and names the denied part', async ({ tmp }) => {
    const report = await check(
      await writeModel(tmp, { 'README.md': card({ license: 'Apache-2.0 AND CC-BY-NC-SA-4.0' }) }),
    );
    expect(report.verdict).toBe('fail');
    expect(report.findings).toEqual([
      expect.objectContaining({
        ruleId: 'license.deny',
        message: 'license CC-BY-NC-SA-4.0 (non-commercial) is denied by license.categories.non-commercial',
      }),
    ]);
  });

  test('an unparsable expression is an unknown license (review), reported as such', async ({ tmp }) => {
    const report = await check(await writeModel(tmp, { 'README.md': card({ license: 'MIT AND OR Apache-2.0' }) }));
    expect(report).toMatchObject({ category: 'unknown', verdict: 'warn' });
    expect(report.findings.map((f) => f.ruleId)).toContain('license.invalid-expression');
  });
});
