/**
 * The policy file's gate sections (`scan:`, `license:`, `image:`, `evaluation:`, `cost:`), each checked by its
 * gate's own rules when the policy loads, so a bad section fails the release at the door, not halfway through. The
 * config loader knows none of them: the worker and the CLI hand it this map.
 */
import type { GateSectionValidators } from '../config/loader';
import { zodProblems, type IssueLike } from '../contract/problems';
import { costPolicyRoles, parseCostPolicy } from './cost/policy';
import { evaluationPolicyProblems } from './evaluate/policy';
import { licensePolicyProblems } from './license/policy-check';
import { monitorPolicyProblems } from './monitor/analysis/policy';
import { imagePolicySchema } from './scan/image/policy';
import { scanPolicySchema } from './scan/policy';

/** Problems per section, each already naming the field (e.g. `license.categories.permissive: …`). */
export const GATE_POLICY_SECTIONS: GateSectionValidators = {
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

/**
 * Every section a release's policy is checked for at load: the gates' and the `monitor:` section (post-deploy
 * analysis, which is not a gate: it runs after the commit).
 */
export const POLICY_SECTIONS: GateSectionValidators = {
  ...GATE_POLICY_SECTIONS,
  monitor: (section, { file, knownRoles }) => monitorPolicyProblems(section, knownRoles, file),
};

/** Full zod and zod/mini schemas alike: only safeParse and its issues are used. */
interface SectionSchema {
  safeParse(data: unknown): { success: true } | { success: false; error: { issues: readonly IssueLike[] } };
}

function schemaProblems(name: string, schema: SectionSchema, section: unknown): string[] {
  const result = schema.safeParse(section ?? {});
  return result.success ? [] : zodProblems(result.error, name);
}
