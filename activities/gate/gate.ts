/**
 * The gate contract: what one gate module declares. Every gate of the release (scan, license, image, fairness,
 * robustness, explain, cost) is one object of this shape; the activity adapter (./activity.ts) does what all of
 * them share, and the registry (../gates.ts) derives config checks, worker registration and annotations from the
 * list. Pure: nothing here knows Temporal.
 */
import type {
  ArtifactManifest,
  DeploymentSizing,
  EarlierGate,
  Finding,
  MeasuredThroughput,
  PinnedArtifact,
  ReleaseRequest,
  RoleRequirement,
  Verdict,
  Waiver,
} from '../../contract/types';
import type { ArtifactStore } from '../store/artifact-store';

/** The task queue a gate's activity runs on: the release worker's, or the evaluation (GPU) worker's. */
export type GateQueue = 'release' | 'evaluation';

/** A config file the gate read besides the policy (the price catalog, an advisory database), named by digest. */
export interface GateInputFile {
  name: string;
  digest: string;
}

/** What a gate's `run` gets: the release, its validated policy section, and its artifacts through the store. */
export interface GateRunContext<P> {
  releaseId: string;
  request: ReleaseRequest;
  policy: P;
  /** The policy file, for messages (`config/policies/<name>.yaml`). */
  policyFile: string;
  waivers: Waiver[];
  earlier: EarlierGate[];
  /** The full manifest, loaded from the store by digest. */
  manifest: ArtifactManifest;
  /** The evaluation dataset, pinned by digest (absent without an evaluation). */
  dataset?: PinnedArtifact;
  store: ArtifactStore;
  /** A local file holding the blob (random-access readers). */
  localFile(sha256: string): Promise<string>;
  signal?: AbortSignal;
  /**
   * Reports progress: the adapter heartbeats it (throttled per `step`) so a lost worker is noticed. A `checkpoint`
   * (state a retry resumes from) is heartbeated every time: dropping one would make a retry redo that work.
   */
  progress(details: { step: string } & Record<string, unknown>, options?: { checkpoint?: boolean }): void;
  /** The progress an earlier attempt last reported, to resume from (a heartbeat's details). */
  resumeFrom?: unknown;
  /** The current time (ISO), for waiver expiry. */
  now: string;
}

/** What a gate's `judge` decides from what `run` measured. */
export interface Judgement {
  verdict: Verdict;
  /** One line for the status and the UI: what was found and why the verdict. */
  summary: string;
  /** Every finding, waivers applied (the adapter keeps the first MAX_RESULT_FINDINGS in the result). */
  findings: Finding[];
  /** Figures for people (status table, dashboards). Later gates never read these: they read the typed outputs. */
  metrics?: Record<string, number | string | boolean>;
  /** The full report for the evidence bundle (JSON). */
  evidence: Record<string, unknown>;
  /** Typed outputs later stages read. */
  throughput?: MeasuredThroughput;
  deployment?: DeploymentSizing;
  requiredApprovals?: RoleRequirement[];
  /** Extra Deployment annotations (`policy.modelrelease.io/<key>`). */
  annotations?: Record<string, string>;
  /** Config files read besides the policy, by digest, for the evidence. */
  inputs?: GateInputFile[];
  /** Further documents of the evidence (the image's CycloneDX SBOM), each stored and bundled on its own. */
  attachments?: { name: string; data: unknown }[];
}

/** A gate that could not decide for a reason no retry can fix: the adapter turns it into an `error` verdict. */
export class CannotDecide extends Error {
  constructor(
    readonly ruleId: string,
    message: string,
    readonly location = '',
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'CannotDecide';
  }
}

/** A policy section that does not validate: named problems, one per bad field. */
export class InvalidPolicy extends Error {
  constructor(
    readonly file: string,
    readonly section: string,
    readonly problems: string[],
  ) {
    super(`invalid ${section} policy in ${file}: ${problems.join('; ')}`);
    this.name = 'InvalidPolicy';
  }
}

export interface Gate<P = unknown, R = unknown> {
  /** The gate's name in results, status, findings and annotations (`<name>-verdict`). */
  name: string;
  /** The policy section it reads (the three evaluation gates share `evaluation`). */
  section: string;
  /** The activity name the workflow calls. */
  activity: string;
  queue: GateQueue;
  /** Validates the policy section (undefined = absent: defaults); throws InvalidPolicy naming each bad field. */
  parsePolicy(section: unknown, file: string): P;
  /** Whether the gate applies to a release (default always); the release plan uses the same rule. */
  when?(request: ReleaseRequest): boolean;
  /** Measures: reads artifacts, runs the model, queries sources. Throws CannotDecide when it cannot. */
  run(ctx: GateRunContext<P>): Promise<R>;
  /** Decides from the measurement and the policy; pure. */
  judge(report: R, policy: P, ctx: Pick<GateRunContext<P>, 'waivers' | 'now' | 'request' | 'earlier'>): Judgement;
}

/** Declares a gate with its types checked (an identity function). */
export function defineGate<P, R>(gate: Gate<P, R>): Gate<P, R> {
  return gate;
}
