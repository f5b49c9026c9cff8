/** Schemas of the configuration files under config/. Cross-file checks (known roles) live in the loader. */
import ipaddr from 'ipaddr.js';
import { SSH_KEY_TYPES } from '../contract/decision-payload';
import { z } from 'zod';
import { durationSchema } from '../contract/duration';
import { NOTIFICATION_EVENTS } from '../contract/notification-events';

export { NOTIFICATION_EVENTS };

const ROLE = z.string().regex(/^[a-z][a-z0-9-]*$/, 'roles are lower-case words joined by "-" (e.g. release-manager)');

/** How many wire fields each key type's blob holds: the type name, then its numbers or points. */
const SSH_KEY_FIELDS: Record<string, number> = { 'ssh-ed25519': 2, 'ssh-rsa': 3 };

/**
 * Whether an authorized_keys line has the form of a supported key: its type, base64, and a blob whose fields fit
 * exactly (a line cut short when pasted fails here). The config activity parses each key fully before a release uses
 * it. Says nothing of the line's content.
 */
export function sshKeyLineProblem(line: string): string | undefined {
  const [type, data] = line.trim().split(/\s+/);
  if (type === undefined || data === undefined) {
    return 'is not an SSH public key: give the line of its .pub file (`<type> <base64> [comment]`)';
  }
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    return `is not a supported SSH key type (supported: ${SSH_KEY_TYPES.join(', ')}); certificates, security keys (sk-) and DSA are not`;
  }
  if (data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
    return 'holds a key that is not valid base64: copy the line of the .pub file again';
  }
  const blob = Buffer.from(data, 'base64');
  const fields: string[] = [];
  for (let offset = 0; offset < blob.length;) {
    const length = offset + 4 <= blob.length ? blob.readUInt32BE(offset) : Number.POSITIVE_INFINITY;
    if (offset + 4 + length > blob.length) return 'holds a key that is cut short: copy the line of the .pub file again';
    fields.push(blob.subarray(offset + 4, offset + 4 + length).toString('latin1'));
    offset += 4 + length;
  }
  if (fields[0] !== type || fields.length !== (SSH_KEY_FIELDS[type] ?? 3)) {
    return `holds a key that is not of its type ${type}: copy the line of the .pub file again`;
  }
  return undefined;
}

const sshKeyLineSchema = z
  .string()
  .max(16_384, 'an SSH public key line is at most 16384 characters')
  .superRefine((line, ctx) => {
    const problem = sshKeyLineProblem(line);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Who the authenticated HTTP door maps to an approver: an OIDC issuer and subject, or a static token's name. */
const IDENTITY = z
  .string()
  .max(1024)
  .regex(
    /^(oidc:https?:\/\/[^\s#]+#\S+|token:[A-Za-z0-9][A-Za-z0-9._-]*)$/,
    'identities are oidc:<issuer URL>#<subject> or token:<name> (e.g. oidc:https://issuer.example.com#1234, token:ci)',
  );

export const approversFileSchema = z
  .object({
    roles: z.record(ROLE, z.object({ description: z.string().optional() }).strict()),
    approvers: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'approver ids are lower-case (e.g. alice or a.smith)'),
      z
        .object({
          name: z.string().optional(),
          email: z.string().optional(),
          roles: z.array(ROLE).min(1, 'give every approver at least one role'),
          /** SSH public keys (authorized_keys lines) whose signatures count as this approver's decisions. */
          keys: z.array(sshKeyLineSchema).max(32, 'at most 32 keys per approver').optional(),
          /** Who the HTTP door maps to this approver: `oidc:<issuer>#<subject>`, `token:<name>`. */
          identities: z.array(IDENTITY).max(32, 'at most 32 identities per approver').optional(),
        })
        .strict(),
    ),
  })
  .strict();
export type ApproversFile = z.infer<typeof approversFileSchema>;

export const environmentApprovalSchema = z
  .object({
    minApprovers: z.number().int().min(1, 'at least one approver is required'),
    allowedRoles: z.array(ROLE).min(1, 'name at least one role whose approval counts'),
    requiredRoles: z.array(z.object({ role: ROLE, count: z.number().int().min(1).default(1) }).strict()).default([]),
    /**
     * Whether decisions without an SSH signature (the Temporal UI's Send Signal, `mrel approve` without
     * `--sign-with`) count here, marked unsigned. Default: false for `production`, true elsewhere.
     */
    allowUnsigned: z.boolean({ error: 'allowUnsigned must be true or false' }).optional(),
  })
  .strict();

/**
 * One webhook: Slack-compatible JSON (`{text}`, also what Mattermost and Rocket.Chat take) or a Teams MessageCard. The
 * URL of a real webhook is a secret: name the worker's environment variable that holds it (`urlFromEnv`) rather than
 * writing it into Git.
 */
export const webhookSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'names are lower-case words joined by "-" (e.g. ml-releases)'),
    format: z.enum(['slack', 'teams']).default('slack'),
    url: z
      .string()
      .max(2048)
      .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
      .optional(),
    urlFromEnv: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]{0,127}$/, 'must be an environment variable name such as MREL_SLACK_WEBHOOK')
      .optional(),
    environments: z.array(z.string().min(1)).optional(),
    events: z.array(z.enum(NOTIFICATION_EVENTS)).min(1).optional(),
  })
  .strict()
  .refine((w) => (w.url === undefined) !== (w.urlFromEnv === undefined), {
    message: 'give exactly one of url and urlFromEnv (prefer urlFromEnv: webhook URLs are secrets)',
  });

/**
 * An image pinned by digest (`repository@sha256:<64 hex>`, a tag before the digest allowed and ignored): what runs is
 * exactly what was scanned and approved, and no one moving a tag such as `:latest` can change it.
 */
export const PINNED_IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:]*@sha256:[0-9a-f]{64}$/;

const pinnedImageSchema = z
  .string({
    error: (issue) =>
      issue.input === undefined ? 'is required: an image pinned by digest (repository@sha256:<64 hex>)' : undefined,
  })
  .max(1024)
  .regex(
    PINNED_IMAGE,
    'must be pinned by digest (repository@sha256:<64 hex>), not by a tag such as :latest; look the digest up with `docker buildx imagetools inspect <image>` or `crane digest <image>`',
  );

/** A Kubernetes object name (DNS-1123 label): namespaces, Flux Kustomizations, Argo CD Applications. */
const OBJECT_NAME = z
  .string()
  .regex(
    /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/,
    'must be a Kubernetes name: lower-case letters, digits and "-", at most 63',
  );

const gitopsControllerSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('flux'),
      namespace: OBJECT_NAME.optional(),
      kustomization: OBJECT_NAME.optional(),
      gitRepository: OBJECT_NAME.optional(),
    })
    .strict(),
  z
    .object({ kind: z.literal('argocd'), namespace: OBJECT_NAME.optional(), application: OBJECT_NAME.optional() })
    .strict(),
  z.object({ kind: z.literal('none') }).strict(),
]);

/**
 * The settings of the `delivery:` section that an environment may override. Defaults are filled in when the section is
 * resolved for one environment (activities/gitops/delivery-policy.ts), so that an override is told apart from a default.
 */
const deliverySettings = {
  serving: z.enum(['deployment', 'kserve']).optional(),
  modelMount: z.enum(['image-volume', 'init-container']).optional(),
  servingImage: pinnedImageSchema.optional(),
  pullerImage: pinnedImageSchema.optional(),
  gitops: gitopsControllerSchema.optional(),
  requestReconcile: z.boolean().optional(),
  rollout: z
    .object({
      timeout: durationSchema.optional(),
      onStall: z.enum(['rollback', 'pause', 'record']).optional(),
      pause: z
        .object({
          roles: z.array(ROLE).min(1, 'name at least one role that may decide a paused rollout').optional(),
          timeout: durationSchema.optional(),
          onTimeout: z.enum(['rollback', 'keep']).optional(),
        })
        .strict()
        .optional(),
    })
    .strict()
    .optional(),
};

/** A policy's `delivery:` section: how the release is served, mounted, synced and watched, with per-environment overrides. */
export const deliveryPolicySchema = z
  .object({
    ...deliverySettings,
    servingImage: pinnedImageSchema,
    environments: z.record(z.string().min(1), z.object(deliverySettings).strict()).optional(),
  })
  .strict()
  .superRefine((delivery, ctx) => {
    const needsPuller = (mount: string | undefined, puller: string | undefined, path: PropertyKey[]) => {
      if (mount === 'init-container' && puller === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'pullerImage'],
          message: 'is required when modelMount is init-container: the image (pinned by digest) that pulls the model',
        });
      }
    };
    needsPuller(delivery.modelMount, delivery.pullerImage, []);
    for (const [env, settings] of Object.entries(delivery.environments ?? {})) {
      needsPuller(settings.modelMount ?? delivery.modelMount, settings.pullerImage ?? delivery.pullerImage, [
        'environments',
        env,
      ]);
    }
  });
export type DeliveryPolicy = z.infer<typeof deliveryPolicySchema>;

export const policyFileSchema = z
  .object({
    description: z.string().optional(),
    /** How releases are delivered to each environment's cluster; without it, releases render as before delivery. */
    delivery: deliveryPolicySchema.optional(),
    /**
     * Waivers people grant a running release with the `waive` signal: who may waive which gate's findings, for how
     * long at most, and whether a gate that fails only on waivable findings holds the release for a waive.
     */
    waivers: z
      .object({
        maxDays: z
          .number({ error: 'maxDays must be a whole number of days' })
          .int('maxDays must be a whole number of days')
          .min(1, 'maxDays must be at least 1')
          .max(365, 'maxDays must be at most 365 (a waiver is reviewed at least yearly)')
          .default(30),
        /** Roles that may waive each gate's findings; `'*'` for any gate. */
        roles: z.record(z.string().min(1), z.array(ROLE).min(1, 'name at least one role')).default({}),
        hold: z.boolean({ error: 'hold must be true or false' }).default(true),
      })
      .strict()
      .optional(),
    /** Webhooks told when a release awaits approval, a gate fails, or the release ends. */
    notifications: z
      .object({ webhooks: z.array(webhookSchema).max(20) })
      .strict()
      .optional(),
    approval: z
      .object({
        timeout: durationSchema,
        environments: z.record(z.string().min(1), environmentApprovalSchema),
      })
      .strict(),
  })
  // Later stages (scan, license, evaluate, cost) add their own sections; unknown keys are kept for them.
  .passthrough();
export type PolicyFile = z.infer<typeof policyFileSchema>;

/** config/waivers.yaml: accepted risks, each scoped to a gate and rule ids, signed by an approver, with an expiry. */
export const waiversFileSchema = z
  .object({
    waivers: z
      .array(
        z
          .object({
            gate: z.string().min(1),
            ruleIds: z.array(z.string().min(1)).min(1, 'list the rule ids this waiver covers (or "*")'),
            /** Scope: a model name (default: every model), optionally one version and one environment. */
            model: z.string().min(1).default('*'),
            version: z.string().min(1).optional(),
            environment: z.string().min(1).optional(),
            justification: z.string().min(10, 'say why the risk is accepted (at least 10 characters)'),
            approver: z.string().min(1),
            expiresAt: z.iso.date().or(z.iso.datetime({ offset: true })),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();
export type WaiversFile = z.infer<typeof waiversFileSchema>;

/** One allowed source host: an exact name or IP literal, or `*.suffix` for every name under suffix. */
const HOST_NAME = /^(\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const sourceHostSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(
    (host) => HOST_NAME.test(host) || ipaddr.isValid(host),
    'must be a host name (huggingface.co), a wildcard (*.hf.co) or an IP address, without scheme or port',
  );
/** A network whose addresses may be fetched although private, loopback or link-local: a CIDR or one address. */
export const sourceNetworkSchema = z
  .string()
  .trim()
  .refine(
    (network) => ipaddr.isValid(network) || ipaddr.isValidCIDR(network),
    'must be a CIDR such as 10.20.0.0/16 or fd00::/8, or one IP address',
  );

/** config/sources.yaml: where model sources and evaluation datasets may come from. */
export const sourcesFileSchema = z
  .object({
    /** Directories; relative ones resolve against the repository root (the config directory's parent). */
    roots: z.array(z.string().min(1, 'a root must not be empty')).default([]),
    hosts: z.array(sourceHostSchema).default([]),
    networks: z.array(sourceNetworkSchema).default([]),
  })
  .strict();
export type SourcesFile = z.infer<typeof sourcesFileSchema>;

const list = (separator: string) => (text: string) =>
  text
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item !== '');

/**
 * Environment variables that add to config/sources.yaml (never take away): MREL_SOURCE_ROOTS (absolute directories,
 * separated by ":"), MREL_SOURCE_HOSTS and MREL_SOURCE_NETWORKS (comma-separated).
 */
export const sourceOverridesEnvSchema = z.object({
  MREL_SOURCE_ROOTS: z
    .string()
    .optional()
    .transform((text) => (text === undefined ? [] : list(':')(text)))
    .pipe(z.array(z.string().startsWith('/', 'roots must be absolute directories separated by ":"'))),
  MREL_SOURCE_HOSTS: z
    .string()
    .optional()
    .transform((text) => (text === undefined ? [] : list(',')(text)))
    .pipe(z.array(sourceHostSchema)),
  MREL_SOURCE_NETWORKS: z
    .string()
    .optional()
    .transform((text) => (text === undefined ? [] : list(',')(text)))
    .pipe(z.array(sourceNetworkSchema)),
});

/** The source policy as the checks use it: roots absolute, hosts lower-case, networks as written. */
export interface SourcePolicy {
  roots: string[];
  hosts: string[];
  networks: string[];
}
