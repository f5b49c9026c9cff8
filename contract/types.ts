/**
 * The shapes that flow through a release. Each input shape is a zod schema (validated at the door and again by the
 * workflow) with its TypeScript type inferred from it, so the two never drift apart.
 *
 * This file is imported by workflow code: it must stay free of I/O and Node builtins.
 */
import type { EnvironmentDelivery, ModelArtifact, ReplicaCounts } from './delivery';
import { z } from 'zod';
import { decisionSignatureSchema } from './decision-payload';
import type { NotificationEvent } from './notification-events';
import type { MonitoringStatus, MonitorPolicy, PauseDecision } from './monitoring';
import { MAX_APPROVER_CHARS, MAX_COMMENT_CHARS } from './limits';

/** Lower-case DNS-label-like names: they end up in workflow ids, Git paths and Kubernetes object names. */
const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const SHA256 = /^[0-9a-f]{64}$/;

export const modelNameSchema = z
  .string()
  .regex(NAME, 'use lower-case letters, digits, ".", "_" or "-" (1-63 characters, starting and ending alphanumeric)');

/**
 * What one request may carry. Every request is recorded in its workflow's first history event (Temporal refuses
 * payloads over 2 MB and warns from 512 KB), so each field is bounded here, at the door, with the limit in the message.
 */
export const REQUEST_LIMITS = {
  uri: 2048,
  path: 1024,
  /** Person, team and cost-center ids, column names, class labels. */
  label: 128,
  imageRef: 1024,
  digests: 10_000,
  files: 10_000,
  protected: 32,
  features: 1024,
  featureKeys: 32,
  classes: 1024,
  trafficKeys: 32,
  /** The whole request as JSON, and how deeply its open parts (traffic, feature objects) may nest. */
  bytes: 1024 * 1024,
  depth: 16,
} as const;

/** A non-empty string of at most `max` characters. */
const boundedString = (max: number) =>
  z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);
const atMost = (max: number, what: string) => `must have at most ${max} ${what}`;

/** A record with at most `max` keys, each of 1 to `keyMax` characters (an offending key is shown cut short). */
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

export const sourceUriSchema = boundedString(REQUEST_LIMITS.uri).refine((s) => /^(file|https?|hf):\/\//.test(s), {
  message: 'must start with file://, https://, http:// or hf:// (e.g. hf://org/repo@revision)',
});

export const modelRefSchema = z.object({
  name: modelNameSchema,
  version: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/, 'use letters, digits, ".", "_", "+" or "-" (e.g. 1.4.0)'),
  source: sourceUriSchema,
  /** Declared sha256 per file path (relative to the model root); a mismatch fails the release. */
  digests: boundedRecord(
    z.string().regex(SHA256, 'must be a lower-case hex sha256 (64 characters)'),
    REQUEST_LIMITS.digests,
    REQUEST_LIMITS.path,
    'files',
  ).optional(),
  /** Files to fetch when the source is a plain https:// directory that cannot be listed. */
  files: z
    .array(boundedString(REQUEST_LIMITS.path))
    .max(REQUEST_LIMITS.files, atMost(REQUEST_LIMITS.files, 'files'))
    .optional(),
});

const classLabelSchema = z.union([boundedString(REQUEST_LIMITS.label), z.number()]);

export const releaseRequestSchema = z
  .object({
    model: modelRefSchema,
    image: z
      .object({
        /** The inference image: a registry reference, or `docker-daemon:<name>[:tag]` for one only the local engine holds. */
        ref: boundedString(REQUEST_LIMITS.imageRef),
        /** Push the scanned image to this repository (`host/repo`) by digest before the commit; the release runs that. */
        push: boundedString(REQUEST_LIMITS.imageRef).optional(),
      })
      .strict()
      .optional(),
    environment: modelNameSchema,
    policy: z
      .string()
      .max(63, 'must be at most 63 characters')
      .regex(/^[a-z0-9][a-z0-9_-]*$/, 'names a file in config/policies without .yaml'),
    evaluation: z
      .object({
        /** The curated dataset (CSV or JSON Lines), file:// URI or path on the evaluation worker. */
        dataset: boundedString(REQUEST_LIMITS.uri),
        /** The dataset's sha256: acquire pins it and refuses other content (like model.digests). */
        sha256: z.string().regex(SHA256, 'must be a lower-case hex sha256 (64 characters)').optional(),
        label: boundedString(REQUEST_LIMITS.label),
        protected: z
          .array(boundedString(REQUEST_LIMITS.label))
          .min(1, 'name at least one protected column')
          .max(REQUEST_LIMITS.protected, atMost(REQUEST_LIMITS.protected, 'columns')),
        favorable: classLabelSchema,
        /** Feature columns and preprocessing, when the model's metadata does not carry them. */
        features: z
          .array(
            z.union([
              boundedString(REQUEST_LIMITS.label),
              boundedRecord(z.unknown(), REQUEST_LIMITS.featureKeys, REQUEST_LIMITS.label, 'keys'),
            ]),
          )
          .max(REQUEST_LIMITS.features, atMost(REQUEST_LIMITS.features, 'features'))
          .optional(),
        classes: z
          .array(classLabelSchema)
          .max(REQUEST_LIMITS.classes, atMost(REQUEST_LIMITS.classes, 'classes'))
          .optional(),
        threshold: z.number().optional(),
        output: z.enum(['probabilities', 'logits']).optional(),
      })
      .optional(),
    /** Validated in full by the cost gate's schema (activities/cost/traffic.ts); bounded here. */
    traffic: boundedRecord(z.unknown(), REQUEST_LIMITS.trafficKeys, REQUEST_LIMITS.label, 'keys').optional(),
    team: modelNameSchema.optional(),
    costCenter: boundedString(REQUEST_LIMITS.label).optional(),
    requestedBy: boundedString(REQUEST_LIMITS.label),
  })
  .strict()
  .superRefine((request, ctx) => {
    const image = request.image;
    const local = image?.ref.startsWith('docker-daemon:') ?? false;
    if (image && local && image.push === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['image', 'push'],
        message:
          'a docker-daemon: image exists only in the local engine: name the repository to push it to (image.push: registry/repo)',
      });
    if (image?.push !== undefined && !local)
      ctx.addIssue({
        code: 'custom',
        path: ['image', 'push'],
        message:
          'only a docker-daemon: image is pushed by the release; a registry image is deployed by digest as it is',
      });
    const problem = jsonBoundsProblem(request, REQUEST_LIMITS.bytes, REQUEST_LIMITS.depth);
    if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
  });

/**
 * Checks that `value` serialises to at most `maxBytes` of JSON (approximately: strings by their UTF-16 length) and
 * nests at most `maxDepth` levels. Iterative, and it stops at the first excess, so a hostile value costs no more
 * than the limits.
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
  /** Commit sha for hf://, the source URI for file://, the URL (plus ETag when given) for https://. */
  resolvedRevision: string;
  files: ArtifactFile[];
  totalSize: number;
  /** Only in manifests of releases acquired before the artifact store: the worker's store folder. Never written now. */
  storeRoot?: string;
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
  /**
   * The gate's full evidence: `sha256:<hex>` of a canonical JSON blob in the artifact store, committed with the
   * release's evidence bundle (releases from before the store kept evidence carry a store path).
   */
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
  /** Prediction throughput the gate measured (the evaluation gates), read by the cost gate. */
  throughput?: MeasuredThroughput;
  /** Config files the gate read besides the policy (the price catalog), by digest, for the evidence bundle. */
  inputs?: { name: string; digest: string }[];
  /** Further evidence documents by digest (`sha256:<hex>`), e.g. the image's SBOM `sbom.cdx.json`. */
  attachments?: { name: string; digest: string }[];
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

/**
 * What acquire returns and every later step carries: the manifest named by digest, never its file list. The full
 * ArtifactManifest is a blob in the artifact store (`blob`), so a model of 20,000 files keeps each activity input and
 * the workflow history small. No host path: `resolvedRevision` is a commit, a URL or the source URI.
 */
export interface ManifestRef {
  model: string;
  version: string;
  source: string;
  resolvedRevision: string;
  /** sha256 over the sorted `path\0sha256\n` lines: the model's identity. */
  manifestDigest: string;
  /** sha256 of the stored manifest JSON in the artifact store. */
  blob: string;
  fileCount: number;
  totalSize: number;
  /** Files of 0 bytes (at most 20 named), worth a note. */
  emptyFiles?: string[];
  /** The model pushed as an OCI (ModelPack) artifact, when the worker's store is a registry. */
  artifact?: ModelArtifact;
}

/** A single acquired file, such as the evaluation dataset: pinned by digest like the model. */
export interface PinnedArtifact {
  source: string;
  sha256: string;
  size: number;
}

/** Throughput a gate measured while predicting, which the cost gate prices from. */
export interface MeasuredThroughput {
  unit: 'rows' | 'tokens';
  perSecond: number;
  /** The tfjs backend it ran on (`tensorflow`, `wasm`, `cpu`, …), a key of the price catalog's `backends`. */
  backend: string;
}

/** What a later gate may read of an earlier one: verdict and typed outputs, never findings or metrics. */
export type EarlierGate = Pick<GateResult, 'gate' | 'verdict' | 'throughput' | 'deployment'>;

/** What every gate activity receives: the release, its acquired artifacts, its policy section and waivers. */
export interface GateInput {
  releaseId: string;
  request: ReleaseRequest;
  /** The manifest by digest (releases acquired before the store kept manifests carry the whole ArtifactManifest). */
  manifest: ManifestRef | ArtifactManifest;
  /** The evaluation dataset, acquired and pinned with the model (absent without an evaluation). */
  dataset?: PinnedArtifact;
  /** The gate's section of the policy file (validated by the gate's own schema), or undefined when absent. */
  policy?: unknown;
  /** Waivers that apply to this release (from config/waivers.yaml and the `waive` signal). */
  waivers: Waiver[];
  /** Verdicts and typed outputs of gates that ran earlier (e.g. cost reads the evaluation's measured throughput). */
  earlier: EarlierGate[];
}

export const decisionInputSchema = decisionSignatureSchema.extend({
  approver: z
    .string()
    .min(1, 'approver is required (who is deciding?)')
    .max(MAX_APPROVER_CHARS, `approver must be at most ${MAX_APPROVER_CHARS} characters (an id from approvers.yaml)`),
  comment: z.string().max(MAX_COMMENT_CHARS, `comment must be at most ${MAX_COMMENT_CHARS} characters`).optional(),
  /**
   * Set by clients that wait for an answer: a decision that reaches the release after this time (e.g. an update
   * admitted while no worker ran, delivered when one came back) is refused, so nobody's decision applies unseen.
   */
  validUntil: z.iso.datetime({ message: 'validUntil must be an ISO 8601 UTC time' }).optional(),
});
export type DecisionInput = z.infer<typeof decisionInputSchema>;

export const decideInputSchema = decisionInputSchema.extend({ decision: z.enum(['approve', 'reject']) });

/** The `waive` signal: accept named findings of one gate until an expiry, with a justification. */
export const waiveInputSchema = decisionSignatureSchema.extend({
  approver: z
    .string()
    .min(1, 'approver is required (who is waiving?)')
    .max(MAX_APPROVER_CHARS, `approver must be at most ${MAX_APPROVER_CHARS} characters (an id from approvers.yaml)`),
  gate: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'gate must be a gate name such as scan, license or fairness'),
  ruleIds: z
    .array(z.string().min(1).max(128, 'each rule id must be at most 128 characters'))
    .min(1, 'list the rule ids to waive')
    .max(20, 'waive at most 20 rule ids at once'),
  justification: z
    .string()
    .min(1, 'justification is required: why is this risk accepted?')
    .max(MAX_COMMENT_CHARS, `justification must be at most ${MAX_COMMENT_CHARS} characters`),
  expiresAt: z.iso.datetime({ message: 'expiresAt must be an ISO 8601 UTC time' }),
  comment: z.string().max(MAX_COMMENT_CHARS, `comment must be at most ${MAX_COMMENT_CHARS} characters`).optional(),
});
export type WaiveInput = z.infer<typeof waiveInputSchema>;
export type DecideInput = z.infer<typeof decideInputSchema>;

export interface Decision {
  approver: string;
  /** The approver's roles that the environment's policy accepts (first one is the primary role). */
  role: string;
  roles: string[];
  decision: 'approve' | 'reject';
  comment?: string;
  at: string;
  /** The SSH signature the release verified (TRUST_PATCH releases): the key's fingerprint and what was signed. */
  signed?: SignedBy;
  /** Counted without a signature, where the environment's policy allows unsigned decisions. */
  unsigned?: true;
}

/** A verified SSH signature of a decision: enough for `mrel verify` to check it again against approvers.yaml. */
export interface SignedBy {
  /** `SHA256:…` as `ssh-keygen -l` prints it. */
  fingerprint: string;
  keyType: string;
  signedAt: string;
  /** The run and manifest digest the signed payload bound (contract/decision-payload.ts). */
  runId: string;
  manifestDigest: string;
  /** The armored signature (≤ 4 KiB). */
  signature: string;
  /** sha256:<hex> of the signed payload: a second signature over the same decision is a replay. */
  payloadDigest: string;
}

export interface RefusedDecision {
  approver: string;
  decision: 'approve' | 'reject' | 'rollback' | 'keep' | 'waive';
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
export const TERMINAL_STAGES = ['released', 'rejected', 'expired', 'failed', 'rolled-back'] as const;
export type TerminalStage = (typeof TERMINAL_STAGES)[number];
/**
 * Where a release is: `config`, then each gate phase by its gates' names (`acquire`; later `scan+license`,
 * `evaluate`, `cost`), then `approval`, `gitops`, `monitor` (the rollout is watched; releases with a delivery),
 * `monitoring` (the live model is analysed for the policy's window; releases whose policy has a `monitor:` section),
 * and one of the terminal stages.
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
  /**
   * Whether unsigned decisions count (marked unsigned). Absent in snapshots taken before signed decisions: those
   * releases count every decision as they always did.
   */
  allowUnsigned?: boolean;
}

export { NOTIFICATION_EVENTS, type NotificationEvent } from './notification-events';

/** A webhook of the release's environment, from the policy's `notifications:` section. */
export interface NotificationTarget {
  name: string;
  format: 'slack' | 'teams';
  /** One of the two: the URL itself, or the worker's environment variable that holds it (webhook URLs are secrets). */
  url?: string;
  urlFromEnv?: string;
  events: NotificationEvent[];
}

/** What the notify activity sends: one event of one release to one webhook. */
export interface NotifyInput {
  target: NotificationTarget;
  event: NotificationEvent;
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  /** One line, e.g. "awaits approval: needs 1 approval from [ml-lead, release-manager]". */
  headline: string;
  /** Further lines (who may approve, until when, a gate's summary). */
  details: string[];
}

/** A notification that could not be delivered after its retries (kept in the status, the latest few). */
export interface NotificationFailure {
  target: string;
  event: NotificationEvent;
  error: string;
  at: string;
}

/** Everything the workflow needs from config/, snapshotted at start so every decision replays the same. */
export interface ReleaseConfig {
  policy: { name: string; file: string; digest: string };
  approversFile: { file: string; digest: string };
  approval: ApprovalRule;
  /** approver id → roles, from config/approvers.yaml. */
  approvers: Record<string, string[]>;
  /**
   * approver id → their SSH public keys (authorized_keys lines), for approvers with `keys:` in approvers.yaml; signed
   * decisions are verified against these. Absent in snapshots taken before signed decisions.
   */
  approverKeys?: Record<string, string[]>;
  /** The policy's gate sections (`scan:`, `license:`, …), each validated by its gate's schema at load. */
  gatePolicies: Record<string, unknown>;
  /** Waivers from config/waivers.yaml scoped to this release (expiry is checked when a gate runs). */
  waivers: Waiver[];
  waiversFile?: { file: string; digest: string };
  /** Webhooks for this environment (absent in snapshots taken before notifications existed). */
  notifications?: NotificationTarget[];
  /**
   * The task queues the workers serve (MREL_TASK_QUEUE, MREL_EVALUATION_TASK_QUEUE): evaluation steps are scheduled on
   * `evaluation`. Absent in snapshots taken before the release plan routed queues (those use `evaluation`).
   */
  taskQueues?: { release: string; evaluation: string };
  /**
   * How long a step waits for a worker to take it before its status says that no worker polls its queue (a duration;
   * default 2 minutes).
   */
  scheduleToStartTimeout?: string;
  /** How the environment is served and synced (the policy's `delivery:` section); absent in older snapshots. */
  delivery?: EnvironmentDelivery;
  /** The post-deploy analysis window (the policy's `monitor:` section for this environment); absent: no window. */
  monitor?: MonitorPolicy;
  /** The policy's `waivers:` section: the `waive` signal counts only with it (TRUST_PATCH releases). */
  waiverPolicy?: WaiverPolicy;
}

export interface WaiverPolicy {
  maxDays: number;
  /** Roles that may waive each gate's findings; `'*'` for any gate. */
  roles: Record<string, string[]>;
  /** A gate that fails only on waivable findings holds the release for a waive instead of ending it. */
  hold: boolean;
}

/** A waiver granted to a running release by the `waive` signal. */
export interface GrantedWaiver extends Waiver {
  role: string;
  at: string;
  comment?: string;
  signed?: SignedBy;
  unsigned?: true;
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
  /** The acquired model by digest (releases acquired before the store kept manifests show the whole manifest). */
  manifest?: ManifestRef | ArtifactManifest;
  gates: GateResult[];
  approvals: Decision[];
  /** The first and the latest refused decisions (MAX_REFUSED); `refusedOmitted` counts those in between. */
  refused: RefusedDecision[];
  refusedOmitted?: number;
  awaiting?: AwaitedApproval;
  /** Notifications that could not be delivered after their retries, the latest few. */
  notificationFailures?: NotificationFailure[];
  /** Set while a step is being retried or waits for a `retry` signal: what failed, how often, what comes next. */
  retrying?: RetryState;
  commit?: GitOpsCommit;
  /** The scanned image as the release pushed it (`registry/repo@sha256:…`), when the request asked for a push. */
  pushedImage?: string;
  /** The rollout after the commit (releases with a delivery): what was watched, how it ended, what was done. */
  rollout?: RolloutStatus;
  /** Waivers granted by the `waive` signal (TRUST_PATCH releases). */
  waivers?: GrantedWaiver[];
  /** Gates that failed only on waivable findings: the release waits for a `waive` until `until` (TRUST_PATCH). */
  held?: { gates: string[]; reason: string; until: string };
  /** The post-deploy analysis window (MONITORING_PATCH releases whose policy has a `monitor:` section). */
  monitoring?: MonitoringStatus;
  startedAt: string;
  updatedAt: string;
  /**
   * Set by the client when the release's worker did not answer the status query: the status is then the compact copy
   * the release keeps on the server (its memo), and may lag the latest heartbeat.
   */
  served?: { from: 'memo'; reason: string };
  /** Activities the server is running or retrying for this release (attempt, last failure, next retry), from the client. */
  pending?: PendingStep[];
}

/** A person's `rollback` or `keep` on a stalled rollout: the same record as on a breached monitoring window. */
export type RolloutDecision = PauseDecision;

export interface RolloutStatus {
  /** watching: the commit's application and the rollout; paused: a stalled rollout waits for people; then the end. */
  state: 'watching' | 'paused' | 'rolling-back' | 'healthy' | 'stalled' | 'rolled-back' | 'no-cluster';
  /** What the monitor watches (Deployment or InferenceService), `<namespace>/<name>`. */
  workload?: string;
  /** How many times the rollout was watched (a `keep` watches it once more). */
  watches: number;
  reason?: string;
  appliedRevision?: string;
  replicas?: ReplicaCounts;
  /** While paused: who may decide, until when, and what happens then. */
  awaiting?: { roles: string[]; from: string[]; deadline: string; onTimeout: 'rollback' | 'keep' };
  decisions: RolloutDecision[];
  /** The revert commit of a rollback. */
  revert?: { sha: string; decidedBy: string; reason: string };
  /** How the rollback's own rollout ended. */
  rollbackOutcome?: string;
}

export const rolloutDecisionInputSchema = decisionSignatureSchema.extend({
  approver: z
    .string()
    .min(1, 'approver is required (an id from config/approvers.yaml)')
    .max(MAX_APPROVER_CHARS, `approver must be at most ${MAX_APPROVER_CHARS} characters`),
  comment: z.string().max(MAX_COMMENT_CHARS, `comment must be at most ${MAX_COMMENT_CHARS} characters`).optional(),
});
export type RolloutDecisionInput = z.infer<typeof rolloutDecisionInputSchema>;

export interface RetryState {
  /** The step being retried: `acquire`, a gate name, `gitops`. */
  step: string;
  /** Rounds tried so far (each round is one activity call with its own few quick attempts). */
  attempt: number;
  lastFailure: string;
  failedAt: string;
  /** When the next round starts; absent while the release waits for a `retry` signal. */
  nextRetryAt?: string;
  /** What would move the release on, when it waits for people (e.g. `mrel retry <id>` once the remote is fixed). */
  waitingFor?: string;
}

/** One pending activity as the Temporal server reports it. */
export interface PendingStep {
  activity: string;
  state: string;
  attempt: number;
  lastFailure?: string;
  nextRetryAt?: string;
  lastHeartbeatAt?: string;
  lastWorker?: string;
  /** The activity's last heartbeat details: its progress (e.g. `{file, bytes}` while acquiring). */
  progress?: unknown;
}

export const retryInputSchema = z.object({
  requestedBy: z
    .string()
    .min(1, 'requestedBy is required (who asks for the retry?)')
    .max(MAX_APPROVER_CHARS, `requestedBy must be at most ${MAX_APPROVER_CHARS} characters`),
});
export type RetryInput = z.infer<typeof retryInputSchema>;

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
  /** The model by digest (releases acquired before the store kept manifests carry the whole manifest). */
  manifest: ManifestRef | ArtifactManifest;
  gates: GateResult[];
  approvals: Decision[];
  policy: { name: string; digest: string };
  /**
   * How the environment serves the model (ReleaseConfig.delivery). Absent for releases started before delivery
   * policies: those render exactly as they did, so a retried commit writes the same bytes.
   */
  delivery?: EnvironmentDelivery;
  /**
   * The image the release pushed by digest (`registry/repo@sha256:…`, from a `docker-daemon:` image it scanned): the
   * workload runs it. Absent when nothing was pushed.
   */
  deployImage?: string;
}

export { location } from './location';
