/**
 * The `license:` section of a policy file: what the license gate allows, sends to review, or denies.
 *
 * ```yaml
 * license:
 *   reviewRole: legal            # who signs off a `review` license (a role in approvers.yaml)
 *   categories:                  # the decision per category; unlisted categories keep these defaults
 *     permissive: allow
 *     weak-copyleft: review
 *     strong-copyleft: review
 *     non-commercial: deny
 *     use-restricted: review
 *     proprietary: deny
 *     unknown: review
 *   licenses:                    # per-license decisions, checked before the category (SPDX or model license ids)
 *     llama3.1: allow
 *     AGPL-3.0-only: deny
 *   onConflict: review           # the model card and a LICENSE file disagree: review or deny
 *   textMatchThreshold: 0.9      # how similar a LICENSE file must be to an SPDX text to count as that license
 * ```
 */
import { z } from 'zod';
import { zodProblems } from '../../contract/problems';

/** Every category a license falls into, from least to most encumbered (unknown last: it is never assumed safe). */
export const LICENSE_CATEGORIES = [
  'permissive',
  'weak-copyleft',
  'strong-copyleft',
  'use-restricted',
  'non-commercial',
  'proprietary',
  'unknown',
] as const;
export type LicenseCategory = (typeof LICENSE_CATEGORIES)[number];

/** What the policy does with a license, from most to least favourable. */
export const LICENSE_DECISIONS = ['allow', 'review', 'deny'] as const;
export type LicenseDecision = (typeof LICENSE_DECISIONS)[number];

const decision = z.enum(LICENSE_DECISIONS, { error: () => 'must be allow, review or deny' });

/**
 * Defaults for a regulated team: only permissive licenses pass on their own; anything whose obligations need a
 * lawyer's reading (copyleft, acceptable-use clauses, custom or unknown terms) goes to review; licenses that forbid
 * commercial use or grant no rights are denied.
 */
export const DEFAULT_CATEGORY_DECISIONS: Record<LicenseCategory, LicenseDecision> = {
  permissive: 'allow',
  'weak-copyleft': 'review',
  'strong-copyleft': 'review',
  'use-restricted': 'review',
  'non-commercial': 'deny',
  proprietary: 'deny',
  unknown: 'review',
};

const categoriesSchema = z.strictObject(
  Object.fromEntries(LICENSE_CATEGORIES.map((c) => [c, decision.default(DEFAULT_CATEGORY_DECISIONS[c])])) as Record<
    LicenseCategory,
    z.ZodDefault<typeof decision>
  >,
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `has unknown categor${issue.keys.length === 1 ? 'y' : 'ies'} ${issue.keys.map((k) => `"${k}"`).join(', ')}; use ${LICENSE_CATEGORIES.join(', ')}`
        : undefined,
  },
);

export const licensePolicySchema = z.strictObject(
  {
    reviewRole: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/, 'must be a role from approvers.yaml (lower-case words joined by "-", e.g. legal)')
      .default('legal'),
    categories: categoriesSchema.prefault({}),
    licenses: z
      .record(z.string().min(1, 'license ids must not be empty'), decision)
      .default({})
      .describe('per-license decisions keyed by SPDX id or model license id (e.g. MIT, llama3.1, other)'),
    onConflict: z.enum(['review', 'deny'], { error: () => 'must be review or deny' }).default('review'),
    textMatchThreshold: z
      .number({ error: () => 'must be a number between 0.5 and 1 (e.g. 0.9)' })
      .min(0.5, 'must be at least 0.5: lower thresholds match unrelated licenses')
      .max(1, 'must be at most 1 (1 = identical text after normalisation)')
      .default(0.9),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `has unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')}; known: reviewRole, categories, licenses, onConflict, textMatchThreshold`
        : undefined,
  },
);

/** The license policy with every default filled in. */
export type LicensePolicy = z.infer<typeof licensePolicySchema>;

/**
 * Validates a policy's `license:` section (undefined or null = all defaults). Problems are one line each, naming
 * the field from `license` down: `license.categories.permissive: must be allow, review or deny`.
 */
export function checkLicensePolicy(section: unknown): { policy: LicensePolicy; problems: [] } | { problems: string[] } {
  const parsed = licensePolicySchema.safeParse(section ?? {});
  if (parsed.success) return { policy: parsed.data, problems: [] };
  return { problems: zodProblems(parsed.error, 'license') };
}

/** Parses a policy's `license:` section (undefined or null = all defaults). Throws zod's error on bad input. */
export function parseLicensePolicy(section: unknown): LicensePolicy {
  return licensePolicySchema.parse(section ?? {});
}
