/**
 * The `image:` section of a policy file: how the image and dependency vulnerability gate decides.
 *
 * ```yaml
 * image:
 *   failOn: high                 # an unwaived vulnerability or finding at or above this fails the release
 *   warnOn: low                  # below failOn but at or above this: warn
 *   ignoreUnfixed: false         # true: vulnerabilities without a published fix are recorded but do not count
 *   unknownSeverity: medium      # advisories with no CVSS vector and no rating count as this
 *   advisoryDir: advisories      # OSV advisories, laid out as osv.dev's dumps (<Ecosystem>/<ID>.json or all.zip)
 *   osvApi:                      # optional online source, queried in addition to advisoryDir
 *     enabled: false
 *     url: https://api.osv.dev
 *   trivy:                       # optional: trivy's findings are merged in when a binary is named
 *     path: /usr/local/bin/trivy
 *     timeoutSeconds: 600
 *   rootUser: medium             # severity of "the image runs as root"
 *   secretEnv: high              # severity of a secret-looking environment variable
 *   requiredLabels: [org.opencontainers.image.source, org.opencontainers.image.revision]
 *   platform: linux/amd64        # which image of a multi-platform index is scanned
 *   insecureRegistries: []       # plain-HTTP registries besides loopback ones (host:port)
 *   maxLayerBytes: 8589934592    # a larger layer is not read to the end: the gate errors (fail closed)
 *   maxFileBytes: 67108864       # a larger package database is not read: the gate errors
 * ```
 */
import { z } from 'zod';
import { zodProblems } from '../../../contract/problems';
import { SEVERITIES } from '../../../contract/types';

const severity = z.enum(SEVERITIES, { error: () => `must be one of ${SEVERITIES.join(', ')}` });

const FIELDS = [
  'failOn',
  'warnOn',
  'ignoreUnfixed',
  'unknownSeverity',
  'advisoryDir',
  'osvApi',
  'trivy',
  'rootUser',
  'secretEnv',
  'requiredLabels',
  'platform',
  'insecureRegistries',
  'maxLayerBytes',
  'maxFileBytes',
];

const unknownKeys =
  (known: string[]) =>
  (issue: { code: string; keys?: string[] }): string | undefined =>
    issue.code === 'unrecognized_keys'
      ? `has unknown field${issue.keys?.length === 1 ? '' : 's'} ${(issue.keys ?? []).map((k) => `"${k}"`).join(', ')}; known: ${known.join(', ')}`
      : undefined;

export const imagePolicySchema = z.strictObject(
  {
    failOn: severity.default('high'),
    warnOn: severity.default('low'),
    ignoreUnfixed: z.boolean({ error: () => 'must be true or false' }).default(false),
    unknownSeverity: severity.default('medium'),
    advisoryDir: z
      .string({ error: () => 'must be a directory path (relative to the worker or CLI working directory)' })
      .min(1, 'must name a directory of OSV advisories (e.g. advisories)')
      .default('advisories'),
    osvApi: z
      .strictObject(
        {
          enabled: z.boolean({ error: () => 'must be true or false' }).default(false),
          url: z
            .url({ error: () => 'must be an http(s) URL such as https://api.osv.dev' })
            .default('https://api.osv.dev'),
        },
        { error: unknownKeys(['enabled', 'url']) },
      )
      .prefault({}),
    trivy: z
      .strictObject(
        {
          path: z.string().min(1, 'must be the path of a trivy binary, or leave trivy out').optional(),
          timeoutSeconds: z
            .number({ error: () => 'must be a number of seconds (e.g. 600)' })
            .int('must be a whole number of seconds')
            .positive('must be positive')
            .default(600),
        },
        { error: unknownKeys(['path', 'timeoutSeconds']) },
      )
      .prefault({}),
    rootUser: severity.default('medium'),
    secretEnv: severity.default('high'),
    requiredLabels: z
      .array(z.string().min(1, 'label names must not be empty'))
      .default(['org.opencontainers.image.source', 'org.opencontainers.image.revision']),
    platform: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'must be os/architecture[/variant], e.g. linux/amd64')
      .default('linux/amd64'),
    insecureRegistries: z.array(z.string().min(1, 'must be host or host:port')).default([]),
    maxLayerBytes: z
      .number({ error: () => 'must be a number of bytes (e.g. 8589934592 for 8 GiB)' })
      .int()
      .positive('must be positive')
      .default(8 * 1024 ** 3),
    maxFileBytes: z
      .number({ error: () => 'must be a number of bytes (e.g. 67108864 for 64 MiB)' })
      .int()
      .positive('must be positive')
      .default(64 * 1024 ** 2),
  },
  { error: unknownKeys(FIELDS) },
);

/** The image policy with every default filled in. */
export type ImagePolicy = z.infer<typeof imagePolicySchema>;

/** Parses a policy's `image:` section (undefined or null = all defaults). Throws zod's error on bad input. */
export function parseImagePolicy(section: unknown): ImagePolicy {
  return imagePolicySchema.parse(section ?? {});
}

/** One line per problem, each naming the field: `image.failOn: must be one of critical, …`. */
export function describeImagePolicyError(error: z.ZodError): string[] {
  return zodProblems(error, 'image');
}
