/**
 * The shapes that flow through a release. Each input shape is a zod schema (validated at the door and again by the
 * workflow) with its TypeScript type inferred from it, so the two never drift apart.
 *
 * This file is imported by workflow code: it must stay free of I/O and Node builtins.
 */
import { z } from 'zod';

/** Lower-case DNS-label-like names: they end up in workflow ids, Git paths and Kubernetes object names. */
const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const SHA256 = /^[0-9a-f]{64}$/;

export const modelNameSchema = z
  .string()
  .regex(NAME, 'use lower-case letters, digits, ".", "_" or "-" (1-63 characters, starting and ending alphanumeric)');

export const sourceUriSchema = z
  .string()
  .min(1)
  .refine((s) => /^(file|https?|hf):\/\//.test(s), {
    message: 'must start with file://, https://, http:// or hf:// (e.g. hf://org/repo@revision)',
  });

export const modelRefSchema = z.object({
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

export const releaseRequestSchema = z
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

export type ModelRef = z.infer<typeof modelRefSchema>;
export type ReleaseRequest = z.infer<typeof releaseRequestSchema>;

/** One acquired file, addressed by its content digest in the artifact store. */
export interface ArtifactFile {
  /** Path relative to the model root, with forward slashes. */
  path: string;
  size: number;
  sha256: string;
}

/** What acquire stored. Every later stage reads artifacts only through this manifest, by digest. */
export interface ArtifactManifest {
  model: string;
  version: string;
  source: string;
  /** Commit sha for hf://, the directory path for file://, the URL (plus ETag when given) for https://. */
  resolvedRevision: string;
  files: ArtifactFile[];
  totalSize: number;
  /** The content-addressed store root; a file lives at `<storeRoot>/sha256/<first 2 hex>/<sha256>`. */
  storeRoot: string;
  /** sha256 over the sorted `path\0sha256\n` lines: one digest that names the whole model. */
  manifestDigest: string;
}

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Finding {
  gate: string;
  ruleId: string;
  severity: Severity;
  /** A file path, optionally with `:offset`, or another locator the gate explains. */
  location: string;
  message: string;
  waivable: boolean;
  /** Set when a valid (unexpired) waiver covers this finding: it stays in the record but no longer counts. */
  waivedBy?: { approver: string; justification: string; expiresAt: string };
}

export type Verdict = 'pass' | 'warn' | 'fail' | 'error';

export interface GateResult {
  gate: string;
  /** A gate that could not decide returns `error`, never `pass`. */
  verdict: Verdict;
  summary: string;
  metrics: Record<string, number | string | boolean>;
  findings: Finding[];
  /** Where the gate's full evidence lives (store path), when it wrote any. */
  evidence?: string;
  /** Approvals this gate asks for on top of the policy's (e.g. legal review of a license, finops for a budget). */
  requiredApprovals?: RoleRequirement[];
  /**
   * Extra Deployment annotations, rendered as `policy.modelrelease.io/<key>` (e.g. `license: apache-2.0`). Every
   * gate's verdict is annotated as `<gate>-verdict` anyway.
   */
  annotations?: Record<string, string>;
  /** What the gate sizes for the rendered Deployment (the cost gate: replicas, resources, node selection). */
  deployment?: DeploymentSizing;
  startedAt: string;
  finishedAt: string;
}

export interface DeploymentSizing {
  /** The image to run, pinned by digest (`repo@sha256:…`): what the image gate scanned is what runs. */
  image?: string;
  replicas?: number;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  nodeSelector?: Record<string, string>;
  /** Extra labels on the Deployment and its pods (e.g. instance type for cost allocation). */
  labels?: Record<string, string>;
}

/** What every gate activity receives: the release, its acquired artifacts, its policy section and waivers. */
export interface GateInput {
  releaseId: string;
  request: ReleaseRequest;
  manifest: ArtifactManifest;
  /** The gate's section of the policy file (validated by the gate's own schema), or undefined when absent. */
  policy?: unknown;
  /** Waivers that apply to this release (from config/waivers.yaml and the `waive` signal). */
  waivers: Waiver[];
  /** Results of gates that ran earlier (e.g. cost reads the evaluation's measured throughput). */
  earlier: GateResult[];
}

export const decisionInputSchema = z.object({
  approver: z.string().min(1, 'approver is required (who is deciding?)'),
  comment: z.string().max(2000).optional(),
});
export type DecisionInput = z.infer<typeof decisionInputSchema>;

export const decideInputSchema = decisionInputSchema.extend({ decision: z.enum(['approve', 'reject']) });
export type DecideInput = z.infer<typeof decideInputSchema>;

export interface Decision {
  approver: string;
  /** The approver's roles that the environment's policy accepts (first one is the primary role). */
  role: string;
  roles: string[];
  decision: 'approve' | 'reject';
  comment?: string;
  at: string;
}

export interface RefusedDecision {
  approver: string;
  decision: 'approve' | 'reject';
  comment?: string;
  at: string;
  reason: string;
}

export interface Waiver {
  gate: string;
  ruleIds: string[];
  justification: string;
  approver: string;
  expiresAt: string;
}

/** Stages a release ends in. */
export const TERMINAL_STAGES = ['released', 'rejected', 'expired', 'failed'] as const;
export type TerminalStage = (typeof TERMINAL_STAGES)[number];
/**
 * Where a release is: `config`, then each gate phase by its gates' names (`acquire`; later `scan+license`,
 * `evaluate`, `cost`), then `approval`, `gitops`, and one of the terminal stages.
 */
export type ReleaseStage = string;

/** A role that must be among the approvers, and why (the policy, or a gate that asked for review). */
export interface RoleRequirement {
  role: string;
  count: number;
  reason: string;
}

/** The approval rule for one environment, resolved from the policy file. */
export interface ApprovalRule {
  environment: string;
  minApprovers: number;
  allowedRoles: string[];
  requiredRoles: RoleRequirement[];
  /** Temporal duration string, e.g. "72h". */
  timeout: string;
}

/** Everything the workflow needs from config/, snapshotted at start so every decision replays the same. */
export interface ReleaseConfig {
  policy: { name: string; file: string; digest: string };
  approversFile: { file: string; digest: string };
  approval: ApprovalRule;
  /** approver id → roles, from config/approvers.yaml. */
  approvers: Record<string, string[]>;
  /** The policy's gate sections (`scan:`, `license:`, …), each validated by its gate's schema at load. */
  gatePolicies: Record<string, unknown>;
  /** Waivers from config/waivers.yaml scoped to this release (expiry is checked when a gate runs). */
  waivers: Waiver[];
  waiversFile?: { file: string; digest: string };
}

export interface GitOpsCommit {
  repository: string;
  branch: string;
  sha: string;
  /** Files written, relative to the repository root. */
  paths: string[];
  /** True when a commit with this Release-Id already existed (a retried activity). */
  alreadyPresent: boolean;
}

export interface AwaitedApproval {
  /** Human-readable: "2 approvals (one of them release-manager)". */
  description: string;
  /** Approvers (from approvers.yaml) whose approval would count now. */
  from: string[];
  missingRoles: RoleRequirement[];
  approvalsMissing: number;
  deadline: string;
}

export interface ReleaseStatus {
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  policy: string;
  stage: ReleaseStage;
  /** Why the release ended, for rejected / expired / failed. */
  reason?: string;
  manifest?: ArtifactManifest;
  gates: GateResult[];
  approvals: Decision[];
  refused: RefusedDecision[];
  awaiting?: AwaitedApproval;
  commit?: GitOpsCommit;
  startedAt: string;
  updatedAt: string;
}

/** What `decide` answers: whether the decision counted, and the release as it stands after it. */
export interface DecideOutcome {
  accepted: boolean;
  reason?: string;
  status: ReleaseStatus;
}

/** Input of the gitops activity: everything that goes into the commit. */
export interface GitOpsReleaseInput {
  releaseId: string;
  runId: string;
  request: ReleaseRequest;
  manifest: ArtifactManifest;
  gates: GateResult[];
  approvals: Decision[];
  policy: { name: string; digest: string };
}

export { location } from './location';
