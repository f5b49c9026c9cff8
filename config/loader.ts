/**
 * Loads and validates config/ files. Every error names the file and the exact field, and says what to do.
 *
 * The loader knows the frame of each file (approvers, the policy's approval and notifications, waivers, sources,
 * pricing), never a gate's own section: whoever loads a policy passes the gates' section validators in, so config/
 * depends on nothing but the contract.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { zodProblems } from '../contract/problems';
import {
  ConfigError,
  DEFAULT_CONFIG_DIR,
  displayPath,
  readPolicyYaml,
  readYamlFile,
  type LoadedYaml,
} from './yaml-file';

export { ConfigError, DEFAULT_CONFIG_DIR, readPolicyYaml, readYamlFile, type LoadedYaml } from './yaml-file';
import type { ApprovalRule, ReleaseConfig, ReleaseRequest, Waiver } from '../contract/types';
import {
  approversFileSchema,
  NOTIFICATION_EVENTS,
  policyFileSchema,
  sourceOverridesEnvSchema,
  sourcesFileSchema,
  waiversFileSchema,
  type ApproversFile,
  type PolicyFile,
  type SourcePolicy,
} from './schema';

/**
 * Checks one gate's section of a policy file (`scan:`, `cost:` …) and returns one line per problem, each naming the
 * field from the section down (`cost.headroom: must be ≥ 0`). `knownRoles` are approvers.yaml's roles, for sections
 * that name reviewers.
 */
export type GateSectionValidator = (
  section: unknown,
  context: { file: string; knownRoles: readonly string[] },
) => string[];

/** The validators of every gate section a policy may hold, by section name. */
export type GateSectionValidators = Readonly<Record<string, GateSectionValidator>>;

async function readYaml(configDir: string, path: string, whatToDo: string): Promise<LoadedYaml> {
  return readYamlFile(path, displayPath(configDir, path), whatToDo);
}

export interface LoadedApprovers extends ApproversFile {
  file: string;
  digest: string;
}

export async function loadApprovers(configDir = DEFAULT_CONFIG_DIR): Promise<LoadedApprovers> {
  const loaded = await readYaml(configDir, join(configDir, 'approvers.yaml'), 'create it with roles and approvers');
  const parsed = approversFileSchema.safeParse(loaded.data);
  if (!parsed.success) throw new ConfigError(loaded.file, zodProblems(parsed.error));
  const known = Object.keys(parsed.data.roles);
  const problems: string[] = [];
  // A key or identity shared by two approvers would let either claim the other's decisions.
  const owners = new Map<string, string>();
  const claim = (value: string, field: string, what: string) => {
    const first = owners.get(value);
    if (first === undefined) owners.set(value, field);
    else problems.push(`${field} is the same ${what} as ${first}; each ${what} belongs to one approver`);
  };
  for (const [id, approver] of Object.entries(parsed.data.approvers)) {
    approver.roles.forEach((role, i) => {
      if (!known.includes(role)) problems.push(unknownRole(`approvers.${id}.roles[${i}]`, role, known));
    });
    approver.keys?.forEach((line, i) =>
      claim(`key ${line.trim().split(/\s+/)[1]}`, `approvers.${id}.keys[${i}]`, 'key'),
    );
    approver.identities?.forEach((identity, i) =>
      claim(`identity ${identity}`, `approvers.${id}.identities[${i}]`, 'identity'),
    );
  }
  if (problems.length > 0) throw new ConfigError(loaded.file, problems);
  return { ...parsed.data, file: loaded.file, digest: loaded.digest };
}

function unknownRole(field: string, role: string, known: string[]): string {
  return `${field} "${role}" is not a known role (known: ${known.join(', ')}); add it under roles: in approvers.yaml or fix the name`;
}

/** The policy file's own keys; every other top-level key is a gate's section. */
const FRAME_KEYS = ['approval', 'delivery', 'description', 'notifications', 'waivers'];

export interface LoadedPolicy extends PolicyFile {
  name: string;
  file: string;
  digest: string;
}

/**
 * Loads config/policies/<name>.yaml, checks every role it names against approvers.yaml, and checks each gate section
 * present with its validator from `sections`; a section that no validator claims is kept as written, for later stages.
 */
export async function loadPolicy(
  name: string,
  approvers: LoadedApprovers,
  sections: GateSectionValidators,
  configDir = DEFAULT_CONFIG_DIR,
): Promise<LoadedPolicy> {
  const { loaded } = await readPolicyYaml(name, configDir, false);
  return checkPolicy(name, loaded, approvers, sections);
}

/**
 * Loads a policy from a YAML file anywhere (`mrel scan --policy ./strict.yaml`, to try a policy before it is
 * committed), checked exactly as loadPolicy checks config/policies/<name>.yaml; its name is the file's base name.
 */
export async function loadPolicyFile(
  path: string,
  approvers: LoadedApprovers,
  sections: GateSectionValidators,
  configDir = DEFAULT_CONFIG_DIR,
): Promise<LoadedPolicy> {
  const { name, loaded } = await readPolicyYaml(path, configDir, true);
  return checkPolicy(name, loaded, approvers, sections);
}

function checkPolicy(
  name: string,
  loaded: LoadedYaml,
  approvers: LoadedApprovers,
  sections: GateSectionValidators,
): LoadedPolicy {
  const parsed = policyFileSchema.safeParse(loaded.data);
  if (!parsed.success) throw new ConfigError(loaded.file, zodProblems(parsed.error));
  const known = Object.keys(approvers.roles);
  const problems: string[] = [];
  for (const [env, rule] of Object.entries(parsed.data.approval.environments)) {
    const at = `approval.environments.${env}`;
    rule.allowedRoles.forEach((role, i) => {
      if (!known.includes(role)) problems.push(unknownRole(`${at}.allowedRoles[${i}]`, role, known));
    });
    let required = 0;
    rule.requiredRoles.forEach((req, i) => {
      required += req.count;
      if (!known.includes(req.role)) problems.push(unknownRole(`${at}.requiredRoles[${i}].role`, req.role, known));
      else if (!rule.allowedRoles.includes(req.role)) {
        problems.push(`${at}.requiredRoles[${i}].role "${req.role}" must also be listed in ${at}.allowedRoles`);
      }
    });
    if (required > rule.minApprovers) {
      problems.push(
        `${at}.minApprovers is ${rule.minApprovers} but requiredRoles need ${required} approvers; raise minApprovers to at least ${required}`,
      );
    }
  }
  problems.push(...deliveryProblems(parsed.data, known));
  for (const [section, value] of Object.entries(parsed.data)) {
    if (FRAME_KEYS.includes(section) || value === undefined) continue;
    const validate = sections[section];
    if (validate) problems.push(...validate(value, { file: loaded.file, knownRoles: known }));
  }
  if (problems.length > 0) throw new ConfigError(loaded.file, problems);
  return { ...parsed.data, name, file: loaded.file, digest: loaded.digest };
}

/** The `delivery:` section's references to the rest of the policy: its environments and the roles of its pause path. */
function deliveryProblems(policy: PolicyFile, known: string[]): string[] {
  const delivery = policy.delivery;
  if (delivery === undefined) return [];
  const problems: string[] = [];
  const checkRoles = (at: string, roles: string[] | undefined) =>
    roles?.forEach((role, i) => {
      if (!known.includes(role)) problems.push(unknownRole(`${at}.rollout.pause.roles[${i}]`, role, known));
    });
  checkRoles('delivery', delivery.rollout?.pause?.roles);
  const environments = Object.keys(policy.approval.environments);
  for (const [env, settings] of Object.entries(delivery.environments ?? {})) {
    if (!environments.includes(env)) {
      problems.push(
        `delivery.environments.${env} is not an environment of approval.environments (known: ${environments.join(', ')}); fix the name or add its approval rule`,
      );
    }
    checkRoles(`delivery.environments.${env}`, settings.rollout?.pause?.roles);
  }
  return problems;
}

/**
 * Loads config/waivers.yaml (absent = no waivers) and returns those that apply to this release, expired ones
 * included: whether a waiver still counts is decided when a gate runs, against the workflow's clock.
 */
export async function loadWaivers(
  approvers: LoadedApprovers,
  scope: Pick<ReleaseRequest, 'environment'> & { model: string; version: string },
  configDir = DEFAULT_CONFIG_DIR,
): Promise<{ waivers: Waiver[]; file?: string; digest?: string }> {
  const path = join(configDir, 'waivers.yaml');
  let loaded: LoadedYaml;
  try {
    loaded = await readYaml(configDir, path, '');
  } catch (err) {
    if (err instanceof ConfigError && err.problems[0]?.startsWith('not found')) return { waivers: [] };
    throw err;
  }
  const parsed = waiversFileSchema.safeParse(loaded.data ?? {});
  if (!parsed.success) throw new ConfigError(loaded.file, zodProblems(parsed.error));
  const problems: string[] = [];
  parsed.data.waivers.forEach((w, i) => {
    if (!approvers.approvers[w.approver]) {
      problems.push(
        `waivers[${i}].approver "${w.approver}" is not in ${approvers.file}; a waiver must be signed by a known approver`,
      );
    }
  });
  if (problems.length > 0) throw new ConfigError(loaded.file, problems);
  const waivers = parsed.data.waivers
    .filter(
      (w) =>
        (w.model === '*' || w.model === scope.model) &&
        (w.version === undefined || w.version === scope.version) &&
        (w.environment === undefined || w.environment === scope.environment),
    )
    .map((w) => ({
      gate: w.gate,
      ruleIds: w.ruleIds,
      justification: w.justification,
      approver: w.approver,
      // A date alone means "through the end of that day" (UTC).
      expiresAt: w.expiresAt.length === 10 ? `${w.expiresAt}T23:59:59.999Z` : new Date(w.expiresAt).toISOString(),
    }));
  return { waivers, file: loaded.file, digest: loaded.digest };
}

/** Resolves the policy and approvers a release needs, as one snapshot recorded in the workflow's history. */
export async function resolveReleaseConfig(
  request: Pick<ReleaseRequest, 'policy' | 'environment'> & { model?: { name: string; version: string } },
  sections: GateSectionValidators,
  configDir = DEFAULT_CONFIG_DIR,
): Promise<ReleaseConfig> {
  const approvers = await loadApprovers(configDir);
  const waivers = request.model
    ? await loadWaivers(
        approvers,
        { environment: request.environment, model: request.model.name, version: request.model.version },
        configDir,
      )
    : { waivers: [] };
  const policy = await loadPolicy(request.policy, approvers, sections, configDir);
  const rule = policy.approval.environments[request.environment];
  if (!rule) {
    const known = Object.keys(policy.approval.environments);
    throw new ConfigError(policy.file, [
      `approval.environments has no rule for environment "${request.environment}" (known: ${known.join(', ')}); add one or release to a known environment`,
    ]);
  }
  const approval: ApprovalRule = {
    environment: request.environment,
    minApprovers: rule.minApprovers,
    allowedRoles: rule.allowedRoles,
    requiredRoles: rule.requiredRoles.map((r) => ({ ...r, reason: `policy ${policy.name}` })),
    timeout: policy.approval.timeout,
    allowUnsigned: rule.allowUnsigned ?? request.environment !== 'production',
  };
  return {
    policy: { name: policy.name, file: policy.file, digest: policy.digest },
    approversFile: { file: approvers.file, digest: approvers.digest },
    approval,
    approvers: Object.fromEntries(Object.entries(approvers.approvers).map(([id, a]) => [id, a.roles])),
    ...approverKeys(approvers),
    gatePolicies: Object.fromEntries(
      Object.entries(policy).filter(
        ([key]) => !['approval', 'description', 'notifications', 'waivers', 'name', 'file', 'digest'].includes(key),
      ),
    ),
    notifications: (policy.notifications?.webhooks ?? [])
      .filter((w) => w.environments === undefined || w.environments.includes(request.environment))
      .map((w) => ({
        name: w.name,
        format: w.format,
        ...(w.url === undefined ? {} : { url: w.url }),
        ...(w.urlFromEnv === undefined ? {} : { urlFromEnv: w.urlFromEnv }),
        events: w.events ?? [...NOTIFICATION_EVENTS],
      })),
    waivers: waivers.waivers,
    ...(waivers.file ? { waiversFile: { file: waivers.file, digest: waivers.digest as string } } : {}),
    ...(policy.waivers
      ? {
          waiverPolicy: {
            maxDays: policy.waivers.maxDays,
            roles:
              policy.waivers.roles['*'] === undefined
                ? { ...policy.waivers.roles, '*': ['release-manager'] }
                : policy.waivers.roles,
            hold: policy.waivers.hold,
          },
        }
      : {}),
  };
}

/** `approverKeys` for the approvers who list SSH keys; nothing when none do (snapshots stay as they were). */
function approverKeys(approvers: LoadedApprovers): Pick<ReleaseConfig, 'approverKeys'> {
  const entries = Object.entries(approvers.approvers)
    .filter(([, a]) => a.keys !== undefined && a.keys.length > 0)
    .map(([id, a]) => [id, (a.keys ?? []).map((line) => line.trim())]);
  return entries.length > 0 ? { approverKeys: Object.fromEntries(entries) } : {};
}

/**
 * Loads config/sources.yaml, where model sources and evaluation datasets may come from, plus what the environment
 * adds (MREL_SOURCE_ROOTS, MREL_SOURCE_HOSTS, MREL_SOURCE_NETWORKS). Relative roots resolve against the repository
 * root (the config directory's parent). The door and the workers both check every source against the result.
 */
export async function loadSourcePolicy(
  configDir = DEFAULT_CONFIG_DIR,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SourcePolicy> {
  const loaded = await readYaml(
    configDir,
    join(configDir, 'sources.yaml'),
    'create it with the roots, hosts and networks that sources may come from (see README, Configuration)',
  );
  const parsed = sourcesFileSchema.safeParse(loaded.data ?? {});
  if (!parsed.success) throw new ConfigError(loaded.file, zodProblems(parsed.error));
  const overrides = sourceOverridesEnvSchema.safeParse(env);
  if (!overrides.success) {
    // Not a field path: these variables are separated lists, and people count their items from one.
    throw new ConfigError(
      'environment',
      overrides.error.issues.map((i) => {
        const item = typeof i.path[1] === 'number' ? ` (item ${i.path[1] + 1})` : '';
        return `environment variable ${String(i.path[0])}${item}: ${i.message}`;
      }),
    );
  }
  const projectRoot = resolve(configDir, '..');
  const unique = (items: string[]) => [...new Set(items)];
  return {
    roots: unique([
      ...parsed.data.roots.map((root) => (isAbsolute(root) ? resolve(root) : resolve(projectRoot, root))),
      ...overrides.data.MREL_SOURCE_ROOTS.map((root) => resolve(root)),
    ]),
    hosts: unique([...parsed.data.hosts, ...overrides.data.MREL_SOURCE_HOSTS]),
    networks: unique([...parsed.data.networks, ...overrides.data.MREL_SOURCE_NETWORKS]),
  };
}
