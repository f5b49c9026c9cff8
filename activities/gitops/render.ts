/**
 * Renders one release into the files of the GitOps repository (see layout.ts): a kustomize base per model, an overlay
 * per environment, the release summary and, when given, the evidence bundle. The Kubernetes objects are typed
 * (k8s-types.ts) and serialised with free-form maps (labels, annotations, selectors, resources) sorted by key. Pure and
 * deterministic: the same input gives the same bytes, so a retried activity writes exactly what the first attempt
 * wrote. No host path enters a rendered object: the model is addressed by its manifest digest, and the pod fetches it
 * by digest.
 */
import { stringify } from 'yaml';
import type { DeploymentSizing, GateResult, GitOpsReleaseInput } from '../../contract/types';
import type { RenderedBundle } from './evidence-bundle';
import { readableJson as canonicalJson } from '../common/canonical-json';
import type { Container, Deployment, DeploymentPatch, Kustomization, Service } from './k8s-types';
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

export const DEFAULT_SERVING_IMAGE = 'modelrelease/model-server:latest';
export const SERVING_PORT = 8080;
export const CONTAINER_NAME = 'model-server';

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
  /** Image used when the request names none; also the base's image, so the base deploys on its own. */
  servingImage?: string;
  author?: GitIdentity;
  gateAnnotations?: GateAnnotationHooks;
  /** The release's evidence bundle: its files are committed with the overlay, its digest annotates the Deployment. */
  evidenceBundle?: RenderedBundle;
}

/** Repository path → file content (text, or the bytes of an evidence blob), in a stable order. */
export type RenderedFiles = Map<string, string | Buffer>;

export function renderRelease(input: GitOpsReleaseInput, options: RenderOptions = {}): RenderedFiles {
  const servingImage = options.servingImage ?? DEFAULT_SERVING_IMAGE;
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
  const patch = deploymentPatch(input, servingImage, options.gateAnnotations ?? {}, options.evidenceBundle?.digest);
  const files: RenderedFiles = new Map();
  files.set(`${paths.base}/${LAYOUT_FILES.deployment}`, toYaml(baseDeployment(model, servingImage)));
  files.set(`${paths.base}/${LAYOUT_FILES.service}`, toYaml(baseService(model)));
  files.set(`${paths.base}/${LAYOUT_FILES.kustomization}`, toYaml(base));
  files.set(`${paths.overlay}/${LAYOUT_FILES.kustomization}`, toYaml(overlay));
  files.set(`${paths.overlay}/${LAYOUT_FILES.deploymentPatch}`, toYaml(patch));
  files.set(paths.evidence, renderEvidence(input, options.author ?? DEFAULT_AUTHOR, options.evidenceBundle?.digest));
  for (const file of options.evidenceBundle?.files ?? []) files.set(file.path, file.content);
  return files;
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
): DeploymentPatch {
  const { request, manifest } = input;
  const sizing = deploymentSizing(input.gates);
  const labels = sortedRecord({
    ...sizing.labels,
    [RELEASE_LABELS.model]: labelValue(request.model.name),
    [RELEASE_LABELS.version]: labelValue(request.model.version),
    [RELEASE_LABELS.team]: labelValue(request.team ?? 'unassigned'),
    [RELEASE_LABELS.costCenter]: labelValue(request.costCenter ?? 'unassigned'),
  });
  const container: DeploymentPatch['spec']['template']['spec']['containers'][number] = {
    name: CONTAINER_NAME,
    image: sizing.image ?? request.image?.ref ?? servingImage,
    // The model by digest, never by a worker's path: the pod fetches the manifest and its files from the store.
    env: [
      { name: 'MODEL_NAME', value: request.model.name },
      { name: 'MODEL_VERSION', value: request.model.version },
      { name: 'MODEL_MANIFEST_DIGEST', value: sha256Ref(manifest.manifestDigest) },
      // Where the manifest itself is stored, by digest (only manifests passed by reference name it).
      ...('blob' in manifest ? [{ name: 'MODEL_MANIFEST_BLOB', value: sha256Ref(manifest.blob) }] : []),
    ],
  };
  if (sizing.resources) container.resources = sortedResources(sizing.resources);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: request.model.name, labels, annotations: policyAnnotations(input, hooks, evidenceBundle) },
    spec: {
      replicas: sizing.replicas ?? 1,
      template: {
        // Cost tools (OpenCost, Kubecost) allocate by pod labels, not by the Deployment's.
        metadata: { labels },
        spec: {
          containers: [container],
          ...(sizing.nodeSelector ? { nodeSelector: sortedRecord(sizing.nodeSelector) } : {}),
        },
      },
    },
  };
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

function toYaml(value: Deployment | DeploymentPatch | Service | Kustomization): string {
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
