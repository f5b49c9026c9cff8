/**
 * The release request check as it was before the request's fields were bounded (the hardening-v1 patch). Releases
 * started before that patch replay against this check, so that tightening the door never turns a running release's
 * history into a different outcome. New releases use releaseRequestSchema. Never change this file.
 */
import { z } from 'zod';

/** Lower-case DNS-label-like names: they end up in workflow ids, Git paths and Kubernetes object names. */
const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const SHA256 = /^[0-9a-f]{64}$/;

const modelNameSchema = z
  .string()
  .regex(NAME, 'use lower-case letters, digits, ".", "_" or "-" (1-63 characters, starting and ending alphanumeric)');

const sourceUriSchema = z
  .string()
  .min(1)
  .refine((s) => /^(file|https?|hf):\/\//.test(s), {
    message: 'must start with file://, https://, http:// or hf:// (e.g. hf://org/repo@revision)',
  });

const modelRefSchema = z.object({
  name: modelNameSchema,
  version: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/, 'use letters, digits, ".", "_", "+" or "-" (e.g. 1.4.0)'),
  source: sourceUriSchema,
  /** Declared sha256 per file path (relative to the model root); a mismatch fails the release. */
  digests: z
    .record(z.string().min(1), z.string().regex(SHA256, 'must be a lower-case hex sha256 (64 characters)'))
    .optional(),
  /** Files to fetch when the source is a plain https:// directory that cannot be listed. */
  files: z.array(z.string().min(1)).optional(),
});

export const legacyReleaseRequestSchema = z
  .object({
    model: modelRefSchema,
    image: z.object({ ref: z.string().min(1) }).optional(),
    environment: modelNameSchema,
    policy: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'names a file in config/policies without .yaml'),
    evaluation: z
      .object({
        /** The curated dataset (CSV or JSON Lines), file:// URI or path on the evaluation worker. */
        dataset: z.string().min(1),
        label: z.string().min(1),
        protected: z.array(z.string().min(1)).min(1),
        favorable: z.union([z.string(), z.number()]),
        /** Feature columns and preprocessing, when the model's metadata does not carry them. */
        features: z.array(z.union([z.string().min(1), z.record(z.string(), z.unknown())])).optional(),
        classes: z.array(z.union([z.string(), z.number()])).optional(),
        threshold: z.number().optional(),
        output: z.enum(['probabilities', 'logits']).optional(),
      })
      .optional(),
    traffic: z.record(z.string(), z.unknown()).optional(),
    team: modelNameSchema.optional(),
    costCenter: z.string().min(1).optional(),
    requestedBy: z.string().min(1),
  })
  .strict();
