/** The `license:` policy section: defaults, and errors that name the field and say what to do. */
import { describe, expect, it } from 'vitest';
import { checkLicensePolicy, DEFAULT_CATEGORY_DECISIONS, parseLicensePolicy } from '../../activities/license/policy';

function problems(section: unknown): string[] {
  return checkLicensePolicy(section).problems;
}

describe('license policy schema', () => {
  it('an absent section is all defaults: permissive allowed, non-commercial and proprietary denied, rest reviewed', () => {
    expect(parseLicensePolicy(undefined)).toEqual({
      reviewRole: 'legal',
      categories: DEFAULT_CATEGORY_DECISIONS,
      licenses: {},
      onConflict: 'review',
      textMatchThreshold: 0.9,
    });
    expect(DEFAULT_CATEGORY_DECISIONS).toEqual({
      permissive: 'allow',
      'weak-copyleft': 'review',
      'strong-copyleft': 'review',
      'use-restricted': 'review',
      'non-commercial': 'deny',
      proprietary: 'deny',
      unknown: 'review',
    });
  });

  it('a partial categories map keeps the defaults for the rest', () => {
    const policy = parseLicensePolicy({ categories: { 'strong-copyleft': 'deny' } });
    expect(policy.categories).toMatchObject({ 'strong-copyleft': 'deny', permissive: 'allow', unknown: 'review' });
  });

  it('errors name the field and say what to do', () => {
    expect(problems({ categories: { permisive: 'allow' } })).toEqual([
      'license.categories: has unknown category "permisive"; use permissive, weak-copyleft, strong-copyleft, use-restricted, non-commercial, proprietary, unknown',
    ]);
    expect(problems({ licenses: { MIT: 'yes' } })).toEqual(['license.licenses.MIT: must be allow, review or deny']);
    expect(problems({ onConflict: 'ignore' })).toEqual(['license.onConflict: must be review or deny']);
    expect(problems({ textMatchThreshold: 0.2 })).toEqual([
      'license.textMatchThreshold: must be at least 0.5: lower thresholds match unrelated licenses',
    ]);
    expect(problems({ reviewRole: 'Legal Team' })).toEqual([
      'license.reviewRole: must be a role from approvers.yaml (lower-case words joined by "-", e.g. legal)',
    ]);
    expect(problems({ failOn: 'deny' })).toEqual([
      'license: has unknown field "failOn"; known: reviewRole, categories, licenses, onConflict, textMatchThreshold',
    ]);
  });
});
