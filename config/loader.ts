/**
 * Loads and validates config/ files. Every error names the file and the exact field, and says what to do.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import type { ApprovalRule, ReleaseConfig, ReleaseRequest, Waiver } from '../contract/types';
import { gatePolicyProblems } from './gate-policies';
import { zodProblems } from './zod-problems';
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

/** The repository's config/ directory; MREL_CONFIG_DIR overrides it. */
export const DEFAULT_CONFIG_DIR = process.env.MREL_CONFIG_DIR ?? fileURLToPath(new URL('.', import.meta.url));

export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(
    readonly file: string,
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'), options);
    this.name = 'ConfigError';
  }
}

export { formatPath, zodProblems } from './zod-problems';

interface LoadedYaml {
  file: string;
  data: unknown;
  digest: string;
}

async function readYaml(configDir: string, path: string, whatToDo: string): Promise<LoadedYaml> {
  const file = displayPath(configDir, path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(file, [`not found; ${whatToDo}`]);
    throw new ConfigError(file, [`cannot be read: ${(err as Error).message}`], { cause: err });
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `is not valid YAML: ${e.message.split('\n')[0]}`),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // toJS refuses to expand aliases past a bound (a "billion laughs" document): that is invalid YAML for us too.
    throw new ConfigError(file, [`is not valid YAML: ${(err as Error).message.split('\n')[0]}`], { cause: err });
  }
  return { file, data, digest: createHash('sha256').update(text).digest('hex') };
}

function displayPath(configDir: string, path: string): string {
  const rel = relative(join(configDir, '..'), path);
  return rel.startsWith('..') ? path : rel;
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
  for (const [id, approver] of Object.entries(parsed.data.approvers)) {
    approver.roles.forEach((role, i) => {
      if (!known.includes(role)) problems.push(unknownRole(`approvers.${id}.roles[${i}]`, role, known));
    });
  }
  if (problems.length > 0) throw new ConfigError(loaded.file, problems);
  return { ...parsed.data, file: loaded.file, digest: loaded.digest };
}

function unknownRole(field: string, role: string, known: string[]): string {
  return `${field} "${role}" is not a known role (known: ${known.join(', ')}); add it under roles: in approvers.yaml or fix the name`;
}

export interface LoadedPolicy extends PolicyFile {
  name: string;
  file: string;
  digest: string;
}

/** Loads config/policies/<name>.yaml and checks every role it names against approvers.yaml. */
export async function loadPolicy(
  name: string,
  approvers: LoadedApprovers,
  configDir = DEFAULT_CONFIG_DIR,
): Promise<LoadedPolicy> {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
    throw new ConfigError(`policies/${name}.yaml`, [`"${name}" is not a policy name (lower-case, digits, "-", "_")`]);
  }
  const loaded = await readYaml(
    configDir,
    join(configDir, 'policies', `${name}.yaml`),
    `the request names policy "${name}"; create config/policies/${name}.yaml or name an existing policy`,
  );
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
  problems.push(...gatePolicyProblems(parsed.data as Record<string, unknown>, known));
  if (problems.length > 0) throw new ConfigError(loaded.file, problems);
  return { ...parsed.data, name, file: loaded.file, digest: loaded.digest };
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
  const policy = await loadPolicy(request.policy, approvers, configDir);
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
  };
  return {
    policy: { name: policy.name, file: policy.file, digest: policy.digest },
    approversFile: { file: approvers.file, digest: approvers.digest },
    approval,
    approvers: Object.fromEntries(Object.entries(approvers.approvers).map(([id, a]) => [id, a.roles])),
    gatePolicies: Object.fromEntries(
      Object.entries(policy).filter(
        ([key]) => !['approval', 'description', 'notifications', 'name', 'file', 'digest'].includes(key),
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
  };
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
