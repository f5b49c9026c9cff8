/**
 * The policy file's gate sections (`scan:`, `license:`, `image:`, `evaluation:`, `cost:`), each checked by its
 * gate's own rules when the policy loads, so a bad section fails the release at the door, not halfway through.
 */
import { licensePolicyProblems } from '../activities/license/policy-check';
import { costPolicyRoles, parseCostPolicy } from './policy-cost';
import { evaluationPolicyProblems } from './policy-evaluate';
import { imagePolicySchema } from './policy-image';
import { scanPolicySchema } from './policy-scan';
import type { z } from 'zod';
import type { ZodMiniType } from 'zod/mini';

export type SectionCheck = (section: unknown, ctx: { knownRoles: string[] }) => string[];

/** Problems per section, each already naming the field (e.g. `license.categories.permissive …`). */
export const GATE_POLICY_CHECKS: Record<string, SectionCheck> = {
  license: (section, { knownRoles }) => licensePolicyProblems(section, knownRoles),
  scan: (section) => schemaProblems('scan', scanPolicySchema, section),
  image: (section) => schemaProblems('image', imagePolicySchema, section),
  evaluation: (section) => evaluationPolicyProblems(section),
  cost: (section, { knownRoles }) => {
    const parsed = parseCostPolicy(section);
    if ('problems' in parsed) return parsed.problems;
    return costPolicyRoles(parsed.policy)
      .filter((role) => !knownRoles.includes(role))
      .map(
        (role) =>
          `cost: review role "${role}" is not a known role (known: ${knownRoles.join(', ')}); add it under roles: in approvers.yaml or fix the name`,
      );
  },
};

/** One line per schema issue, with the section name in front of the field path (`scan.failOn …`). */
function schemaProblems(
  name: string,
  schema: Pick<z.ZodType, 'safeParse'> | Pick<ZodMiniType, 'safeParse'>,
  section: unknown,
): string[] {
  const result = schema.safeParse(section ?? {});
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    const field = [name, ...issue.path.map(String)].join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
    return `${field} ${issue.message}`;
  });
}

export function gatePolicyProblems(policy: Record<string, unknown>, knownRoles: string[]): string[] {
  const problems: string[] = [];
  for (const [name, check] of Object.entries(GATE_POLICY_CHECKS)) {
    if (policy[name] === undefined) continue;
    problems.push(...check(policy[name], { knownRoles }));
  }
  return problems;
}
