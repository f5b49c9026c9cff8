/**
 * The shapes of delivery: the model as an OCI artifact, how an environment serves and is synced (the `delivery:`
 * policy section, resolved per environment), and the rollout the `monitor` stage watches after the GitOps commit.
 */

/** ModelPack (CNCF model-spec) media types: the model pushed as an OCI artifact that other tools can read. */
export const MODELPACK = {
  artifactType: 'application/vnd.cncf.model.manifest.v1+json',
  config: 'application/vnd.cncf.model.config.v1+json',
  /** Layer media types by what a file is; raw: each layer is one file's bytes, so its digest is the file's sha256. */
  weight: 'application/vnd.cncf.model.weight.v1.raw',
  weightConfig: 'application/vnd.cncf.model.weight.config.v1.raw',
  doc: 'application/vnd.cncf.model.doc.v1.raw',
  code: 'application/vnd.cncf.model.code.v1.raw',
  dataset: 'application/vnd.cncf.model.dataset.v1.raw',
  /** Layer annotation holding the file's path inside the model. */
  filepathAnnotation: 'org.cncf.model.filepath',
} as const;

/** The model pushed to a registry as one OCI artifact, pinned by digest. */
export interface ModelArtifact {
  /** `host[:port]/repository@sha256:<hex>`: what a pod mounts. */
  reference: string;
  /** The OCI manifest's digest, `sha256:<hex>`. */
  digest: string;
  /** The manifest's artifactType (MODELPACK.artifactType). */
  artifactType: string;
}

/** How an environment serves the model. */
export type ServingKind = 'deployment' | 'kserve';
/** How the pod gets the model: a Kubernetes image volume (modelcar-like) or an init container pulling by digest. */
export type ModelMount = 'image-volume' | 'init-container';
/** What applies the GitOps repository to the cluster. */
export type GitOpsControllerKind = 'flux' | 'argocd' | 'none';
/** What a stalled rollout leads to. */
export type StallAction = 'rollback' | 'pause' | 'record';

/** One environment's delivery, resolved from the policy's `delivery:` section with its defaults filled in. */
export interface EnvironmentDelivery {
  serving: ServingKind;
  modelMount: ModelMount;
  /** The model server image, pinned by digest (`repo@sha256:…`). */
  servingImage: string;
  /** The image the init container pulls the model with (init-container mount), pinned by digest. */
  pullerImage?: string;
  gitops:
    | { kind: 'flux'; namespace: string; kustomization: string; gitRepository?: string }
    | { kind: 'argocd'; namespace: string; application: string }
    | { kind: 'none' };
  /** After the commit, ask the controller to reconcile now instead of at its interval. */
  requestReconcile: boolean;
  rollout: {
    /** How long the commit may take to be applied and the rollout to complete (a duration). */
    timeout: string;
    onStall: StallAction;
    /** The pause path: who may send `rollback` / `keep`, how long the release waits, and what happens then. */
    pause: { roles: string[]; timeout: string; onTimeout: 'rollback' | 'keep' };
  };
}

/** Where the workload the release rendered lives. */
export interface WorkloadRef {
  kind: 'Deployment' | 'InferenceService';
  namespace: string;
  name: string;
}

/**
 * The workload a release renders for its environment: named after the model, in the environment's namespace. The
 * renderer names it so, and the monitor watches it by this name.
 */
export function workloadOf({
  request,
  delivery,
}: {
  request: { model: { name: string }; environment: string };
  delivery?: Pick<EnvironmentDelivery, 'serving'>;
}): WorkloadRef {
  return {
    kind: delivery?.serving === 'kserve' ? 'InferenceService' : 'Deployment',
    namespace: request.environment,
    name: request.model.name,
  };
}

/** What the monitor's rollout watch receives. */
export interface RolloutWatchInput {
  releaseId: string;
  /** The GitOps commit (full sha) whose application is awaited. */
  commit: string;
  workload: WorkloadRef;
  gitops: EnvironmentDelivery['gitops'];
  requestReconcile: boolean;
  /** Milliseconds from the watch's first start until the rollout counts as stalled. */
  timeoutMs: number;
  /** Why the watch runs: the release's own rollout or the rollout of its rollback. */
  purpose: 'release' | 'rollback';
}

export interface ReplicaCounts {
  desired: number;
  updated: number;
  ready: number;
  available: number;
}

/** Heartbeat details of the watch: what a retried attempt resumes from, and what the UI shows. */
export interface RolloutProgress {
  phase: 'sync' | 'rollout';
  /** When the watch first started (ISO), so that a retry keeps the original deadline. */
  startedAt: string;
  /** The revision the controller reports as applied so far. */
  appliedRevision?: string;
  /** The last resourceVersion seen on the workload, to resume the watch from. */
  resourceVersion?: string;
  replicas?: ReplicaCounts;
  message: string;
}

export interface RolloutResult {
  /** healthy: the commit is applied and the rollout complete; stalled: it was not, within the timeout or by the deadline. */
  outcome: 'healthy' | 'stalled' | 'no-cluster';
  reason: string;
  appliedRevision?: string;
  replicas?: ReplicaCounts;
  /** Watch events and list calls made, for the bench and the evidence. */
  apiRequests?: number;
  finishedAt: string;
}

/** What the revert activity receives: the release's own commit to revert, and why. */
export interface RevertInput {
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  /** The commit the release made. */
  commit: string;
  reason: string;
  /** Who decided it (a person from a `rollback` signal, or the policy). */
  decidedBy: string;
}
