/**
 * The workflow's own check of its request, frozen per plan version. The door (contract/types.ts) may tighten or widen
 * its schema at any time; a running release replays against the check it started with, so a change at the door never
 * turns a recorded history into a different outcome. Never change a schema here: add one under a new patch id.
 */
import { z } from 'zod';
import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../contract/definitions';
import { clip } from '../contract/limits';
import type { ReleaseRequest } from '../contract/types';
import { legacyReleaseRequestSchema } from './legacy-request';
import type { PlanVersion } from './plan';

const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const SHA256 = /^[0-9a-f]{64}$/;
const LIMITS = {
  uri: 2048,
  path: 1024,
  label: 128,
  imageRef: 1024,
  digests: 10_000,
  files: 10_000,
  protected: 32,
  features: 1024,
  featureKeys: 32,
  classes: 1024,
  trafficKeys: 32,
  bytes: 1024 * 1024,
  depth: 16,
} as const;

const boundedString = (max: number) =>
  z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);
const atMost = (max: number, what: string) => `must have at most ${max} ${what}`;

const boundedRecord = <V extends z.ZodType>(value: V, max: number, keyMax: number, what: string) =>
  z.record(z.string(), value).superRefine((record, ctx) => {
    const keys = Object.keys(record);
    if (keys.length > max) ctx.addIssue({ code: 'custom', message: atMost(max, what) });
    if (keys.includes('')) ctx.addIssue({ code: 'custom', message: 'keys must not be empty' });
    const long = keys.find((key) => key.length > keyMax);
    if (long !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `keys must be at most ${keyMax} characters (one has ${long.length}: ${JSON.stringify(long.slice(0, 32))}…)`,
      });
    }
  });

const nameSchema = z
  .string()
  .regex(NAME, 'use lower-case letters, digits, ".", "_" or "-" (1-63 characters, starting and ending alphanumeric)');
const classLabelSchema = z.union([boundedString(LIMITS.label), z.number()]);

/**
 * The request as the door checked it when the hardening-v1 patch bounded every field (its shape until release-plan-v1
 * added the dataset's digest). `datasetDigest` adds `evaluation.sha256`.
 */
function boundedRequestSchema(datasetDigest: boolean, imagePush = false) {
  const evaluation = z.object({
    dataset: boundedString(LIMITS.uri),
    label: boundedString(LIMITS.label),
    protected: z
      .array(boundedString(LIMITS.label))
      .min(1, 'name at least one protected column')
      .max(LIMITS.protected, atMost(LIMITS.protected, 'columns')),
    favorable: classLabelSchema,
    features: z
      .array(
        z.union([boundedString(LIMITS.label), boundedRecord(z.unknown(), LIMITS.featureKeys, LIMITS.label, 'keys')]),
      )
      .max(LIMITS.features, atMost(LIMITS.features, 'features'))
      .optional(),
    classes: z.array(classLabelSchema).max(LIMITS.classes, atMost(LIMITS.classes, 'classes')).optional(),
    threshold: z.number().optional(),
    output: z.enum(['probabilities', 'logits']).optional(),
    ...(datasetDigest
      ? { sha256: z.string().regex(SHA256, 'must be a lower-case hex sha256 (64 characters)').optional() }
      : {}),
  });
  return z
    .object({
      model: z.object({
        name: nameSchema,
        version: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/, 'use letters, digits, ".", "_", "+" or "-" (e.g. 1.4.0)'),
        source: boundedString(LIMITS.uri).refine((s) => /^(file|https?|hf):\/\//.test(s), {
          message: 'must start with file://, https://, http:// or hf:// (e.g. hf://org/repo@revision)',
        }),
        digests: boundedRecord(
          z.string().regex(SHA256, 'must be a lower-case hex sha256 (64 characters)'),
          LIMITS.digests,
          LIMITS.path,
          'files',
        ).optional(),
        files: z.array(boundedString(LIMITS.path)).max(LIMITS.files, atMost(LIMITS.files, 'files')).optional(),
      }),
      image: (imagePush
        ? z.object({ ref: boundedString(LIMITS.imageRef), push: boundedString(LIMITS.imageRef).optional() }).strict()
        : z.object({ ref: boundedString(LIMITS.imageRef) })
      ).optional(),
      environment: nameSchema,
      policy: z
        .string()
        .max(63, 'must be at most 63 characters')
        .regex(/^[a-z0-9][a-z0-9_-]*$/, 'names a file in config/policies without .yaml'),
      evaluation: evaluation.optional(),
      traffic: boundedRecord(z.unknown(), LIMITS.trafficKeys, LIMITS.label, 'keys').optional(),
      team: nameSchema.optional(),
      costCenter: boundedString(LIMITS.label).optional(),
      requestedBy: boundedString(LIMITS.label),
    })
    .strict()
    .superRefine((request, ctx) => {
      const problem = jsonBoundsProblem(request, LIMITS.bytes, LIMITS.depth);
      if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
    });
}

/** The check of each plan version, keyed by the patch that introduced it. */
const REQUEST_SCHEMAS = {
  legacy: legacyReleaseRequestSchema,
  'hardening-v1': boundedRequestSchema(false),
  'release-plan-v1': boundedRequestSchema(true),
  'delivery-v1': boundedRequestSchema(true, true),
};

/** The schema a release of `version` was checked with. */
export function requestSchemaFor(
  version: Pick<PlanVersion, 'hardened' | 'planned'> & Partial<Pick<PlanVersion, 'delivering'>>,
): z.ZodType<ReleaseRequest> {
  if (version.delivering) return REQUEST_SCHEMAS['delivery-v1'] as z.ZodType<ReleaseRequest>;
  if (version.planned) return REQUEST_SCHEMAS['release-plan-v1'] as z.ZodType<ReleaseRequest>;
  return (version.hardened ? REQUEST_SCHEMAS['hardening-v1'] : REQUEST_SCHEMAS.legacy) as z.ZodType<ReleaseRequest>;
}

/** The request, checked as the release's plan version checks it; an invalid one fails the release (InvalidRequest). */
export function checkRequest(
  input: unknown,
  version: Pick<PlanVersion, 'hardened' | 'planned'> & Partial<Pick<PlanVersion, 'delivering'>>,
): ReleaseRequest {
  const parsed = requestSchemaFor(version).safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => clip(`${i.path.join('.') || '(request)'}: ${i.message}`));
  throw ApplicationFailure.nonRetryable(
    clip(`invalid release request: ${problems.join('; ')}`),
    FailureType.InvalidRequest,
    {
      problems: problems.slice(0, 20),
    },
  );
}

/**
 * Checks that `value` serialises to at most `maxBytes` of JSON (approximately: strings by their UTF-16 length) and
 * nests at most `maxDepth` levels. Iterative, and it stops at the first excess.
 */
function jsonBoundsProblem(
  value: unknown,
  maxBytes: number,
  maxDepth: number,
): { path: (string | number)[]; message: string } | undefined {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  let bytes = 0;
  while (stack.length > 0) {
    const next = stack.pop() as { value: unknown; path: (string | number)[] };
    if (next.path.length > maxDepth) {
      return { path: next.path.slice(0, 1), message: `nests more than ${maxDepth} levels deep; flatten it` };
    }
    const v = next.value;
    if (typeof v === 'string') bytes += v.length + 2;
    else if (Array.isArray(v)) {
      bytes += 2 + v.length;
      v.forEach((item, i) => stack.push({ value: item, path: [...next.path, i] }));
    } else if (typeof v === 'object' && v !== null) {
      for (const [key, item] of Object.entries(v)) {
        bytes += key.length + 4;
        stack.push({ value: item, path: [...next.path, key] });
      }
    } else bytes += 24;
    if (bytes > maxBytes) {
      return {
        path: [],
        message: `the request is larger than ${maxBytes} bytes as JSON; send less (digests, features)`,
      };
    }
  }
  return undefined;
}
