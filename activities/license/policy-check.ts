/**
 * Every problem with a policy's `license:` section, for the config loader and `mrel license`: the schema, license
 * ids in `licenses:` that name no license we know, and a review role that approvers.yaml does not define (a review
 * asking for that role could never be approved).
 */
import { checkLicensePolicy } from './policy';
import { preparePolicy } from './expression';

/** One line per problem, each naming the field and saying what to do; empty when the section is valid. */
export function licensePolicyProblems(section: unknown, knownRoles?: readonly string[]): string[] {
  const checked = checkLicensePolicy(section);
  if (!('policy' in checked)) return checked.problems;
  const problems = preparePolicy(checked.policy).problems;
  const role = checked.policy.reviewRole;
  if (knownRoles && !knownRoles.includes(role)) {
    problems.push(
      `license.reviewRole "${role}" is not a known role (known: ${knownRoles.join(', ')}); add it under roles: in approvers.yaml or fix the name`,
    );
  }
  return problems;
}
