/**
 * The one layout of the GitOps repository: where each release's files go, which labels and annotations its objects
 * carry, and how a reader finds them again. The renderer writes it and readers (the sprawl report, `mrel verify`) read
 * it through these helpers only, so a change of layout is made here once and both sides follow.
 *
 *   apps/<model>/base/                      kustomize base: Deployment and Service, nothing release-specific
 *   apps/<model>/overlays/<environment>/    the live release of that environment: namespace, image, labels, policy
 *                                           (a Deployment patch on the base, or, where the environment serves with
 *                                           KServe, an InferenceService of its own)
 *   releases/<model>/<version>/<environment>/
 *     evidence.json                         the release summary (gates, approvals, decision time)
 *     bundle.json                           the evidence bundle's index; its sha256 is the bundle digest
 *     evidence/<sha256>.json                every evidence blob, named by its content digest
 */
import { UnsafePathError } from './errors';

export const APPS_DIR = 'apps';
export const BASE_DIR = 'base';
export const OVERLAYS_DIR = 'overlays';
export const RELEASES_DIR = 'releases';
/** Evidence blobs inside a release folder. */
export const EVIDENCE_DIR = 'evidence';

/** File names inside the base, an overlay and a release folder. */
export const LAYOUT_FILES = {
  kustomization: 'kustomization.yaml',
  deployment: 'deployment.yaml',
  service: 'service.yaml',
  deploymentPatch: 'deployment-patch.yaml',
  inferenceService: 'inference-service.yaml',
  evidence: 'evidence.json',
  bundle: 'bundle.json',
} as const;

/** `apps/<model>`: every file of one model's deployment. */
export function appDir(model: string): string {
  return `${APPS_DIR}/${segment(model, 'model')}`;
}

/** `apps/<model>/base` */
export function basePath(model: string): string {
  return `${appDir(model)}/${BASE_DIR}`;
}

/** `apps/<model>/overlays`: the folder holding one overlay per environment. */
export function overlaysDir(model: string): string {
  return `${appDir(model)}/${OVERLAYS_DIR}`;
}

/** `apps/<model>/overlays/<environment>` */
export function overlayPath(model: string, environment: string): string {
  return `${overlaysDir(model)}/${segment(environment, 'environment')}`;
}

/** `releases/<model>/<version>/<environment>`: one release's evidence, per environment so that a staging release never
 * overwrites the production evidence of the same version. */
export function releaseDir(model: string, version: string, environment: string): string {
  return [RELEASES_DIR, segment(model, 'model'), segment(version, 'version'), segment(environment, 'environment')].join(
    '/',
  );
}

/** `evidence/<sha256>[.<ext>]`, relative to a release folder: named by content, so a reader can verify every file. */
export function evidenceBlobPath(sha256: string, extension?: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new UnsafePathError(`evidence digest ${JSON.stringify(sha256.slice(0, 80))} is not a lower-case hex sha256`);
  }
  if (extension !== undefined && !/^[a-z0-9]{1,10}$/.test(extension)) {
    throw new UnsafePathError(
      `evidence file extension ${JSON.stringify(extension.slice(0, 20))} is not [a-z0-9]{1,10}`,
    );
  }
  return `${EVIDENCE_DIR}/${sha256}${extension === undefined ? '' : `.${extension}`}`;
}

/** The sha256 an evidence blob path (relative to its release folder) names, or undefined for any other path. */
export function parseEvidenceBlobPath(path: string): string | undefined {
  return new RegExp(`^${EVIDENCE_DIR}/([0-9a-f]{64})(?:\\.[a-z0-9]{1,10})?$`).exec(path)?.[1];
}

export interface ReleasePaths {
  base: string;
  overlay: string;
  /** The release folder (`releases/<model>/<version>/<environment>`). */
  release: string;
  /** The release summary inside it. */
  evidence: string;
  /** The evidence bundle's index inside it. */
  bundle: string;
}

export function releasePaths(model: string, version: string, environment: string): ReleasePaths {
  const release = releaseDir(model, version, environment);
  return {
    base: basePath(model),
    overlay: overlayPath(model, environment),
    release,
    evidence: `${release}/${LAYOUT_FILES.evidence}`,
    bundle: `${release}/${LAYOUT_FILES.bundle}`,
  };
}

/** The model and environment of an overlay folder path, or undefined for any other path. */
export function parseOverlayPath(path: string): { model: string; environment: string } | undefined {
  const parts = path.replace(/\/+$/, '').split('/');
  if (parts.length !== 4 || parts[0] !== APPS_DIR || parts[2] !== OVERLAYS_DIR) return undefined;
  const [, model, , environment] = parts as [string, string, string, string];
  return model !== '' && environment !== '' ? { model, environment } : undefined;
}

/** The model, version and environment of a release folder path (or of a file inside it), or undefined. */
export function parseReleaseDir(path: string): { model: string; version: string; environment: string } | undefined {
  const parts = path.split('/');
  if (parts.length < 4 || parts[0] !== RELEASES_DIR) return undefined;
  const [, model, version, environment] = parts as [string, string, string, string];
  if (model === '' || version === '' || environment === '') return undefined;
  return { model, version, environment };
}

/** Labels on every object of a model (the selector uses only `name`: selectors are immutable). */
export const APP_LABELS = {
  name: 'app.kubernetes.io/name',
  partOf: 'app.kubernetes.io/part-of',
} as const;
export const PART_OF_VALUE = 'modelrelease';

/**
 * Labels on a release's Deployment and its pods. Cost tools (OpenCost, Kubecost) allocate by these; the cost gate
 * contributes the node's instance and capacity type.
 */
export const RELEASE_LABELS = {
  model: 'modelrelease.io/model',
  version: 'modelrelease.io/version',
  team: 'modelrelease.io/team',
  costCenter: 'modelrelease.io/cost-center',
  instanceType: 'modelrelease.io/instance-type',
  capacityType: 'modelrelease.io/capacity-type',
} as const;

/** Kubernetes' well-known node label the cost gate selects nodes by. */
export const NODE_INSTANCE_TYPE_LABEL = 'node.kubernetes.io/instance-type';

/** The name Prometheus gives a Kubernetes label (`modelrelease.io/model` → `modelrelease_io_model`). */
export function prometheusLabelName(key: string): string {
  return key.replace(/[^A-Za-z0-9_]/g, '_');
}

export const ANNOTATION_PREFIX = 'policy.modelrelease.io/';

/** Names (under `policy.modelrelease.io/`) of the annotations every release Deployment carries. */
export const POLICY_ANNOTATIONS = {
  registryRef: 'model-registry-ref',
  manifestDigest: 'manifest-digest',
  files: 'files',
  releaseId: 'release-id',
  policy: 'policy',
  approvedBy: 'approved-by',
  evidenceBundle: 'evidence-bundle',
  /** The model's OCI artifact the pod mounts (`host/repository@sha256:…`). */
  modelArtifact: 'model-artifact',
  /** How the pod gets the model: `image-volume`, `init-container`, or `unavailable` (no registry artifact). */
  modelMount: 'model-mount',
  /** `sha256:<hex>` of the release's signed `attestation.dsse.json` (releases committed with a signing key). */
  attestation: 'attestation',
} as const;

/** `policy.modelrelease.io/<name>`; the name must already be a valid annotation name part. */
export function annotationKey(name: string): string {
  return `${ANNOTATION_PREFIX}${name}`;
}

/** The `<name>` of a `policy.modelrelease.io/<name>` key, or undefined for any other key. */
export function parseAnnotationKey(key: string): string | undefined {
  return key.startsWith(ANNOTATION_PREFIX) && key.length > ANNOTATION_PREFIX.length
    ? key.slice(ANNOTATION_PREFIX.length)
    : undefined;
}

/** The annotation name of a gate's verdict (`scan` → `scan-verdict`). */
export function verdictAnnotationName(gateName: string): string {
  return `${gateName}-verdict`;
}

/**
 * One path segment of the layout. Names reach here validated by the request schema; this keeps a segment from ever
 * adding or climbing folders if one does not.
 */
function segment(value: string, field: string): string {
  if (value === '' || value === '.' || value === '..' || /[/\\\0]/.test(value)) {
    throw new UnsafePathError(
      `${field} ${JSON.stringify(value.slice(0, 80))} cannot be a folder name in the GitOps layout (no "/", "\\", "." or "..")`,
    );
  }
  return value;
}
