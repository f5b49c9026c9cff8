/** Schemas of the configuration files under config/. Cross-file checks (known roles) live in the loader. */
import { z } from 'zod';

const ROLE = z.string().regex(/^[a-z][a-z0-9-]*$/, 'roles are lower-case words joined by "-" (e.g. release-manager)');
/** A Temporal duration such as 72h, 30m, 7d or 90s. */
export const durationSchema = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/, 'must be a duration such as 72h, 30m, 7d or 90s');

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
  })
  .strict();

export const policyFileSchema = z
  .object({
    description: z.string().optional(),
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
