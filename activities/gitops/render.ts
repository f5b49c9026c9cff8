/**
 * Renders one release into the files of the GitOps repository (see layout.ts): a kustomize base per model, an overlay
 * per environment, the release summary and, when given, the evidence bundle. The Kubernetes objects are typed
 * (k8s-types.ts) and serialised with free-form maps (labels, annotations, selectors, resources) sorted by key. Pure and
 * deterministic: the same input gives the same bytes, so a retried activity writes exactly what the first attempt
 * wrote. No host path enters a rendered object: the model is addressed by digest.
 *
 * A release that carries its environment's delivery (the policy's `delivery:` section) runs the serving image pinned
 * by digest and mounts the model's OCI artifact by digest at /mnt/models, as an image volume or through an init
 * container that pulls it; where the environment serves with KServe the overlay holds an InferenceService instead
 * (kserve.ts). Releases started before delivery policies carry none and render exactly as they did then.
 */
import { stringify } from 'yaml';
import type { EnvironmentDelivery, ModelArtifact } from '../../contract/delivery';
import { durationMs } from '../../contract/duration';
import type { DeploymentSizing, GateResult, GitOpsReleaseInput } from '../../contract/types';
import type { RenderedBundle } from './evidence-bundle';
import { readableJson as canonicalJson } from '../common/canonical-json';
import { isPinnedByDigest } from './delivery-policy';
import type {
  Container,
  Deployment,
  DeploymentPatch,
  EnvVar,
  InferenceService,
  Kustomization,
  Service,
  VolumeMount,
} from './k8s-types';
import { inferenceService, type ServingPod } from './kserve';
import {
  APP_LABELS,
  LAYOUT_FILES,
  PART_OF_VALUE,
  POLICY_ANNOTATIONS,
  RELEASE_LABELS,
  annotationKey,
  releasePaths,
  verdictAnnotationName,
} from './layout';

/**
 * The image of releases started before delivery policies, when neither the request nor the worker names one. Only
 * those releases use it, so that a retried commit of one renders the bytes it rendered then; every release with a
 * delivery runs an image pinned by digest.
 */
export const LEGACY_SERVING_IMAGE = 'modelrelease/model-server:latest';
export const SERVING_PORT = 8080;
export const CONTAINER_NAME = 'model-server';
/** Where the serving container finds the model (KServe's own model path, so one serving image fits both). */
export const MODEL_MOUNT_PATH = '/mnt/models';
export const MODEL_VOLUME = 'model';
export const MODEL_PULL_CONTAINER = 'model-pull';
/** The Deployment's progress deadline is an int32 of seconds. */
const MAX_PROGRESS_DEADLINE_SECONDS = 2 ** 31 - 1;

export interface GitIdentity {
  name: string;
  email: string;
}

export const DEFAULT_AUTHOR: GitIdentity = { name: 'modelrelease-bot', email: 'bot@modelrelease.local' };

/**
 * Extra annotations a gate contributes beside its `<gate>-verdict` (e.g. the license gate's SPDX id). Keys are names
 * under `policy.modelrelease.io/`; values are written as given.
 */
export type GateAnnotationHook = (gate: GateResult, input: GitOpsReleaseInput) => Record<string, string>;
/** Gate name → hook. */
export type GateAnnotationHooks = Readonly<Record<string, GateAnnotationHook>>;

export interface RenderOptions {
  /**
   * Releases without a delivery only: the image when the request names none, also the base's image so that the base
   * deploys on its own. A release with a delivery runs its policy's serving image instead.
   */
  servingImage?: string;
  author?: GitIdentity;
  gateAnnotations?: GateAnnotationHooks;
  /** The release's evidence bundle: its files are committed with the overlay, its digest annotates the Deployment. */
  evidenceBundle?: RenderedBundle;
  /** `sha256:<hex>` of the release's attestation, annotated on the workload (which the attestation does not cover). */
  attestation?: string;
}

/** Repository path → file content (text, or the bytes of an evidence blob), in a stable order. */
export type RenderedFiles = Map<string, string | Buffer>;

export function renderRelease(input: GitOpsReleaseInput, options: RenderOptions = {}): RenderedFiles {
  const { name: model, version } = input.request.model;
  const paths = releasePaths(model, version, input.request.environment);
  const files: RenderedFiles = new Map();
  if (input.delivery?.serving === 'kserve') renderInferenceService(input, input.delivery, options, files);
  else renderDeployment(input, options, files);
  files.set(paths.evidence, renderEvidence(input, options.author ?? DEFAULT_AUTHOR, options.evidenceBundle?.digest));
  for (const file of options.evidenceBundle?.files ?? []) files.set(file.path, file.content);
  return files;
}

/** Where the rendered workload of a release lives: what the rollout watch follows after the commit. */
export { workloadOf } from '../../contract/delivery';

/** The environment's overlay holding the release as a KServe InferenceService. */
function renderInferenceService(
  input: GitOpsReleaseInput,
  delivery: EnvironmentDelivery,
  options: RenderOptions,
  files: RenderedFiles,
): void {
  const { name: model, version } = input.request.model;
  const paths = releasePaths(model, version, input.request.environment);
  const overlay: Kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: input.request.environment,
    // Its own resource rather than a patch of the base: the base is shared with environments that run a Deployment.
    resources: [LAYOUT_FILES.inferenceService],
  };
  const isvc = inferenceService({
    name: model,
    labels: sortedRecord({ ...baseLabels(model), ...releaseLabels(input) }),
    podLabels: releaseLabels(input),
    annotations: policyAnnotations(
      input,
      options.gateAnnotations ?? {},
      options.evidenceBundle?.digest,
      options.attestation,
    ),
    sizing: deploymentSizing(input.gates),
    pod: servingPod(input, delivery),
    port: SERVING_PORT,
  });
  files.set(`${paths.overlay}/${LAYOUT_FILES.kustomization}`, toYaml(overlay));
  files.set(`${paths.overlay}/${LAYOUT_FILES.inferenceService}`, toYaml(isvc));
}

/** The kustomize base (Deployment and Service) and the environment's overlay patching it. */
function renderDeployment(input: GitOpsReleaseInput, options: RenderOptions, files: RenderedFiles): void {
  const servingImage = input.delivery?.servingImage ?? options.servingImage ?? LEGACY_SERVING_IMAGE;
  const { name: model, version } = input.request.model;
  const paths = releasePaths(model, version, input.request.environment);
  const base: Kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [LAYOUT_FILES.deployment, LAYOUT_FILES.service],
  };
  const overlay: Kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: input.request.environment,
    resources: ['../../base'],
    patches: [{ path: LAYOUT_FILES.deploymentPatch }],
  };
  const patch = deploymentPatch(
    input,
    servingImage,
    options.gateAnnotations ?? {},
    options.evidenceBundle?.digest,
    options.attestation,
  );
  files.set(`${paths.base}/${LAYOUT_FILES.deployment}`, toYaml(baseDeployment(model, servingImage)));
  files.set(`${paths.base}/${LAYOUT_FILES.service}`, toYaml(baseService(model)));
  files.set(`${paths.base}/${LAYOUT_FILES.kustomization}`, toYaml(base));
  files.set(`${paths.overlay}/${LAYOUT_FILES.kustomization}`, toYaml(overlay));
  files.set(`${paths.overlay}/${LAYOUT_FILES.deploymentPatch}`, toYaml(patch));
}

/**
 * Where the model came from, pinned: `hf://org/repo@<commit sha>` (the requested branch or tag is replaced by the
 * commit it resolved to), the URL plus ETag for https, the directory for file://.
 */
export function registryRef(source: string, resolvedRevision: string): string {
  if (source.startsWith('hf://')) return `${source.replace(/@[^/]*$/, '')}@${resolvedRevision}`;
  if (source === resolvedRevision || resolvedRevision.startsWith(source)) return resolvedRevision;
  if (source.startsWith('file://')) return source;
  return `${source}@${resolvedRevision}`;
}

/** The `policy.modelrelease.io/…` annotations of the release, sorted by key. */
export function policyAnnotations(
  input: GitOpsReleaseInput,
  hooks: GateAnnotationHooks = {},
  evidenceBundle?: string,
  attestation?: string,
): Record<string, string> {
  const { manifest, policy } = input;
  const annotations: Record<string, string> = {
    [POLICY_ANNOTATIONS.registryRef]: registryRef(manifest.source, manifest.resolvedRevision),
    [POLICY_ANNOTATIONS.manifestDigest]: sha256Ref(manifest.manifestDigest),
    [POLICY_ANNOTATIONS.releaseId]: input.releaseId,
    [POLICY_ANNOTATIONS.policy]: `${policy.name}@${sha256Ref(policy.digest)}`,
  };
  // A manifest passed by reference carries no file list: its digest names the files.
  if ('files' in manifest) {
    annotations[POLICY_ANNOTATIONS.files] = [...manifest.files]
      .sort((a, b) => compare(a.path, b.path))
      .map((f) => `${escapeListItem(f.path)}=${sha256Ref(f.sha256)}`)
      .join(',');
  }
  if (evidenceBundle !== undefined) annotations[POLICY_ANNOTATIONS.evidenceBundle] = sha256Ref(evidenceBundle);
  if (attestation !== undefined) annotations[POLICY_ANNOTATIONS.attestation] = sha256Ref(attestation);
  if (input.delivery !== undefined) {
    const artifact = modelArtifact(input);
    if (artifact !== undefined) annotations[POLICY_ANNOTATIONS.modelArtifact] = artifact.reference;
    annotations[POLICY_ANNOTATIONS.modelMount] = artifact === undefined ? 'unavailable' : input.delivery.modelMount;
  }
  const approvers = approvedBy(input);
  // Omitted rather than empty: an empty value would read as "approved by nobody" to a policy engine checking presence.
  if (approvers.length > 0) annotations[POLICY_ANNOTATIONS.approvedBy] = approvers.map((a) => a.approver).join(',');
  for (const gate of input.gates) {
    annotations[verdictAnnotationName(annotationName(gate.gate))] = gate.verdict;
    for (const [key, value] of Object.entries(gate.annotations ?? {})) annotations[annotationName(key)] = value;
    const hook = Object.hasOwn(hooks, gate.gate) ? hooks[gate.gate] : undefined;
    for (const [key, value] of Object.entries(hook?.(gate, input) ?? {})) annotations[annotationName(key)] = value;
  }
  return sortedRecord(
    Object.fromEntries(Object.entries(annotations).map(([key, value]) => [annotationKey(key), value])),
  );
}

/** Approvals that count (rejections are kept in the evidence, not in the sign-off). */
export function approvedBy(input: GitOpsReleaseInput): GitOpsReleaseInput['approvals'] {
  return input.approvals.filter((a) => a.decision === 'approve');
}

/**
 * When the release was decided, taken from the input rather than the clock so that a retry renders the same bytes:
 * the latest approval, else the latest gate's end.
 */
export function decidedAt(input: GitOpsReleaseInput): string | undefined {
  const approvals = approvedBy(input).map((a) => a.at);
  const candidates = approvals.length > 0 ? approvals : input.gates.map((g) => g.finishedAt);
  return candidates.reduce<string | undefined>(
    (latest, at) => (latest === undefined || at > latest ? at : latest),
    undefined,
  );
}

/**
 * The release summary (`evidence.json`, canonical JSON like the bundle's index, so that neither the order of a gate's
 * metrics nor of any other map shows): request, manifest, gate results, approvals, policy and decision time. Digests
 * only: the manifest leaves out the worker's store location, and a gate's evidence is kept when it is a digest (the
 * store path that older gate results carry is dropped; the bundle holds the evidence itself).
 */
export function renderEvidence(
  input: GitOpsReleaseInput,
  author: GitIdentity = DEFAULT_AUTHOR,
  evidenceBundle?: string,
): string {
  const evidence = {
    releaseId: input.releaseId,
    runId: input.runId,
    request: input.request,
    manifest: withoutStoreLocation(input.manifest),
    gates: input.gates.map(withoutEvidencePath),
    approvals: input.approvals,
    policy: { name: input.policy.name, digest: input.policy.digest },
    commit: { author: { name: author.name, email: author.email } },
    decidedAt: decidedAt(input),
    ...(evidenceBundle === undefined ? {} : { evidenceBundle: sha256Ref(evidenceBundle) }),
    ...(input.delivery === undefined ? {} : { delivery: input.delivery }),
  };
  return canonicalJson(evidence);
}

function withoutStoreLocation(manifest: GitOpsReleaseInput['manifest']): Record<string, unknown> {
  // A rest pattern rather than `delete`, so that the input (kept by the caller) is left as it is.
  const { storeRoot, ...rest } = manifest as GitOpsReleaseInput['manifest'] & { storeRoot?: string };
  void storeRoot;
  return rest;
}

const DIGEST = /^(?:sha256:)?[0-9a-f]{64}$/;

function withoutEvidencePath(gate: GateResult): GateResult {
  if (gate.evidence === undefined || DIGEST.test(gate.evidence)) return gate;
  const { evidence, ...rest } = gate;
  void evidence;
  return rest;
}

function baseLabels(model: string): Record<string, string> {
  return sortedRecord({ [APP_LABELS.name]: model, [APP_LABELS.partOf]: PART_OF_VALUE });
}

/** Only the name: selectors are immutable, so nothing that changes per release may enter them. */
function selectorLabels(model: string): Record<string, string> {
  return { [APP_LABELS.name]: model };
}

function baseDeployment(model: string, servingImage: string): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: model, labels: baseLabels(model) },
    spec: {
      selector: { matchLabels: selectorLabels(model) },
      template: {
        metadata: { labels: baseLabels(model) },
        spec: {
          containers: [
            {
              name: CONTAINER_NAME,
              image: servingImage,
              ports: [{ name: 'http', containerPort: SERVING_PORT, protocol: 'TCP' }],
              readinessProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                initialDelaySeconds: 5,
                periodSeconds: 10,
              },
            },
          ],
        },
      },
    },
  };
}

function baseService(model: string): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: model, labels: baseLabels(model) },
    spec: {
      selector: selectorLabels(model),
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

function deploymentPatch(
  input: GitOpsReleaseInput,
  servingImage: string,
  hooks: GateAnnotationHooks,
  evidenceBundle: string | undefined,
  attestation?: string,
): DeploymentPatch {
  const { request } = input;
  const sizing = deploymentSizing(input.gates);
  const labels = releaseLabels(input);
  const pod = input.delivery === undefined ? undefined : servingPod(input, input.delivery);
  const container: DeploymentPatch['spec']['template']['spec']['containers'][number] = {
    name: CONTAINER_NAME,
    image: pod?.image ?? input.deployImage ?? sizing.image ?? request.image?.ref ?? servingImage,
    env: pod?.env ?? modelEnv(input),
  };
  if (sizing.resources) container.resources = sortedResources(sizing.resources);
  if (pod?.volumeMounts) container.volumeMounts = pod.volumeMounts;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: request.model.name,
      labels,
      annotations: policyAnnotations(input, hooks, evidenceBundle, attestation),
    },
    spec: {
      replicas: sizing.replicas ?? 1,
      // Kubernetes then reports ProgressDeadlineExceeded when the policy's rollout timeout runs out, not at its own 10m.
      ...(input.delivery === undefined ? {} : { progressDeadlineSeconds: progressDeadlineSeconds(input.delivery) }),
      template: {
        // Cost tools (OpenCost, Kubecost) allocate by pod labels, not by the Deployment's.
        metadata: { labels },
        spec: {
          ...(pod?.initContainers ? { initContainers: pod.initContainers } : {}),
          containers: [container],
          ...(sizing.nodeSelector ? { nodeSelector: sortedRecord(sizing.nodeSelector) } : {}),
          ...(pod?.volumes ? { volumes: pod.volumes } : {}),
        },
      },
    },
  };
}

/** The release's labels, on the workload and its pods: model, version, cost allocation, and what the gates sized. */
function releaseLabels(input: GitOpsReleaseInput): Record<string, string> {
  const { request } = input;
  return sortedRecord({
    ...deploymentSizing(input.gates).labels,
    [RELEASE_LABELS.model]: labelValue(request.model.name),
    [RELEASE_LABELS.version]: labelValue(request.model.version),
    [RELEASE_LABELS.team]: labelValue(request.team ?? 'unassigned'),
    [RELEASE_LABELS.costCenter]: labelValue(request.costCenter ?? 'unassigned'),
  });
}

/** The model by digest, never by a worker's path. */
function modelEnv(input: GitOpsReleaseInput): EnvVar[] {
  const { request, manifest } = input;
  return [
    { name: 'MODEL_NAME', value: request.model.name },
    { name: 'MODEL_VERSION', value: request.model.version },
    { name: 'MODEL_MANIFEST_DIGEST', value: sha256Ref(manifest.manifestDigest) },
    // Where the manifest itself is stored, by digest (only manifests passed by reference name it).
    ...('blob' in manifest ? [{ name: 'MODEL_MANIFEST_BLOB', value: sha256Ref(manifest.blob) }] : []),
    // The model server counts predictions per protected group for the bias-drift measurement (serving/).
    ...(request.evaluation ? [{ name: 'GROUP_COLUMNS', value: request.evaluation.protected.join(',') }] : []),
  ];
}

/**
 * The serving image, the model's environment and its mount. Without a registry artifact (a worker with the filesystem
 * store) there is nothing a pod can mount: the pod gets the model's identity only, and the workload says so in its
 * `model-mount: unavailable` annotation.
 */
export function servingPod(input: GitOpsReleaseInput, delivery: EnvironmentDelivery): ServingPod {
  const image = servingImageOf(input, delivery);
  const env = modelEnv(input);
  const artifact = modelArtifact(input);
  if (artifact === undefined) return { image, env };
  env.push({ name: 'MODEL_DIR', value: MODEL_MOUNT_PATH });
  const volumeMounts: VolumeMount[] = [{ name: MODEL_VOLUME, mountPath: MODEL_MOUNT_PATH, readOnly: true }];
  if (delivery.modelMount === 'image-volume') {
    // By digest, so a node that already holds it never needs to ask the registry again.
    return {
      image,
      env,
      volumes: [{ name: MODEL_VOLUME, image: { reference: artifact.reference, pullPolicy: 'IfNotPresent' } }],
      volumeMounts,
    };
  }
  if (delivery.pullerImage === undefined) {
    throw new Error(
      `delivery.pullerImage: required for environment "${input.request.environment}" (modelMount is init-container); name the puller image, pinned by digest, in the policy's delivery section`,
    );
  }
  return {
    image,
    env,
    // The puller is the ORAS CLI (its image's entrypoint is `oras`): it writes each layer of the artifact under its
    // file name, into the volume the serving container then reads.
    initContainers: [
      {
        name: MODEL_PULL_CONTAINER,
        image: delivery.pullerImage,
        args: ['pull', artifact.reference, '--output', MODEL_MOUNT_PATH],
        volumeMounts: [{ name: MODEL_VOLUME, mountPath: MODEL_MOUNT_PATH }],
      },
    ],
    volumes: [{ name: MODEL_VOLUME, emptyDir: {} }],
    volumeMounts,
  };
}

/**
 * The image the release runs: the scanned image the release pushed; what the image gate scanned, pinned by digest; else the request's image when it is
 * pinned by digest; else the environment's serving image. A tag never runs: it can move after the approval.
 */
function servingImageOf(input: GitOpsReleaseInput, delivery: EnvironmentDelivery): string {
  // An image the release pushed by digest comes first: the scanned local image, now in the target registry.
  const candidates = [input.deployImage, deploymentSizing(input.gates).image, input.request.image?.ref];
  return candidates.find((ref) => ref !== undefined && isPinnedByDigest(ref)) ?? delivery.servingImage;
}

/** The model's OCI artifact, when the worker's store is a registry (only manifests passed by reference carry one). */
function modelArtifact(input: GitOpsReleaseInput): ModelArtifact | undefined {
  return 'artifact' in input.manifest ? input.manifest.artifact : undefined;
}

function progressDeadlineSeconds(delivery: EnvironmentDelivery): number {
  return Math.min(Math.ceil(durationMs(delivery.rollout.timeout) / 1000), MAX_PROGRESS_DEADLINE_SECONDS);
}

function sortedResources(resources: NonNullable<Container['resources']>): NonNullable<Container['resources']> {
  return {
    ...(resources.requests ? { requests: sortedRecord(resources.requests) } : {}),
    ...(resources.limits ? { limits: sortedRecord(resources.limits) } : {}),
  };
}

/** A free-form map with its keys in sorted order, so that the order gates or callers gave them never shows. */
function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.keys(record)
      .sort(compare)
      .map((key) => [key, record[key] as string]),
  );
}

/**
 * What the gates sized for the Deployment (the image gate pins the image by digest, the cost gate sets replicas and
 * resources), merged in gate order; a later gate's value for the same field wins.
 */
export function deploymentSizing(gates: GitOpsReleaseInput['gates']): DeploymentSizing {
  const merged: DeploymentSizing = {};
  for (const gate of gates) {
    const d = gate.deployment;
    if (!d) continue;
    if (d.image !== undefined) merged.image = d.image;
    if (d.replicas !== undefined) merged.replicas = d.replicas;
    if (d.resources !== undefined) merged.resources = d.resources;
    if (d.nodeSelector !== undefined) merged.nodeSelector = { ...merged.nodeSelector, ...d.nodeSelector };
    if (d.labels !== undefined) {
      merged.labels = {
        ...merged.labels,
        ...Object.fromEntries(Object.entries(d.labels).map(([k, v]) => [k, labelValue(v)])),
      };
    }
  }
  return merged;
}

function toYaml(value: Deployment | DeploymentPatch | Service | Kustomization | InferenceService): string {
  // Kubernetes reads YAML 1.1, where `on`, `yes` or `1:20` are not strings: emitting as 1.1 quotes them. Shared
  // objects (the labels on Deployment and pod template) are written out twice rather than as anchors and aliases,
  // which reviewers and some tools read poorly.
  return stringify(value, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
}

/** `sha256:<hex>`, whether or not the digest already carries the prefix. */
export function sha256Ref(digest: string): string {
  return digest.startsWith('sha256:') ? digest : `sha256:${digest}`;
}

/** Keeps a file path from breaking the `path=digest,…` list it is written into. */
function escapeListItem(path: string): string {
  return path.replace(/[%,=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Label values are at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends; versions such as `1.0+build.5` or
 * free-form cost centres are not, and the API server would refuse the whole Deployment.
 */
export function labelValue(value: string): string {
  const cleaned = value
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned === '' ? 'unassigned' : cleaned;
}

/** The name part of an annotation key: same character rules as a label value, lower-cased for readability. */
function annotationName(name: string): string {
  // 55 leaves room for the `-verdict` suffix within the 63 characters of a name.
  return labelValue(name.toLowerCase().slice(0, 55));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
