/**
 * Renders one release into the files of the GitOps repository: a kustomize base per model, an overlay per
 * environment and the release evidence. Pure and deterministic: the same input gives the same bytes, so a retried
 * activity writes exactly what the first attempt wrote.
 */
import { stringify } from 'yaml';
import type { DeploymentSizing, GateResult, GitOpsReleaseInput } from '../../contract/types';

export const ANNOTATION_PREFIX = 'policy.modelrelease.io/';
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
}

/** Repository path → file content, in a stable order. */
export type RenderedFiles = Map<string, string>;

export interface ReleasePaths {
  base: string;
  overlay: string;
  evidence: string;
}

export function releasePaths(model: string, version: string, environment: string): ReleasePaths {
  return {
    base: `apps/${model}/base`,
    overlay: `apps/${model}/overlays/${environment}`,
    // Per environment, so that a staging release never overwrites the production evidence of the same version.
    evidence: `releases/${model}/${version}/${environment}/evidence.json`,
  };
}

export function renderRelease(input: GitOpsReleaseInput, options: RenderOptions = {}): RenderedFiles {
  const servingImage = options.servingImage ?? DEFAULT_SERVING_IMAGE;
  const { name: model, version } = input.request.model;
  const paths = releasePaths(model, version, input.request.environment);
  const files: RenderedFiles = new Map();
  files.set(`${paths.base}/deployment.yaml`, toYaml(baseDeployment(model, servingImage)));
  files.set(`${paths.base}/service.yaml`, toYaml(baseService(model)));
  files.set(
    `${paths.base}/kustomization.yaml`,
    toYaml({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: ['deployment.yaml', 'service.yaml'],
    }),
  );
  files.set(
    `${paths.overlay}/kustomization.yaml`,
    toYaml({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace: input.request.environment,
      resources: ['../../base'],
      patches: [{ path: 'deployment-patch.yaml' }],
    }),
  );
  files.set(
    `${paths.overlay}/deployment-patch.yaml`,
    toYaml(deploymentPatch(input, servingImage, options.gateAnnotations ?? {})),
  );
  files.set(paths.evidence, renderEvidence(input, options.author ?? DEFAULT_AUTHOR));
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
export function policyAnnotations(input: GitOpsReleaseInput, hooks: GateAnnotationHooks = {}): Record<string, string> {
  const { manifest, policy } = input;
  const annotations: Record<string, string> = {
    'model-registry-ref': registryRef(manifest.source, manifest.resolvedRevision),
    'manifest-digest': sha256Ref(manifest.manifestDigest),
    files: [...manifest.files]
      .sort((a, b) => compare(a.path, b.path))
      .map((f) => `${escapeListItem(f.path)}=${sha256Ref(f.sha256)}`)
      .join(','),
    'release-id': input.releaseId,
    policy: `${policy.name}@${sha256Ref(policy.digest)}`,
  };
  const approvers = approvedBy(input);
  // Omitted rather than empty: an empty value would read as "approved by nobody" to a policy engine checking presence.
  if (approvers.length > 0) annotations['approved-by'] = approvers.map((a) => a.approver).join(',');
  for (const gate of input.gates) {
    annotations[`${annotationName(gate.gate)}-verdict`] = gate.verdict;
    for (const [key, value] of Object.entries(gate.annotations ?? {})) annotations[annotationName(key)] = value;
    const hook = Object.hasOwn(hooks, gate.gate) ? hooks[gate.gate] : undefined;
    for (const [key, value] of Object.entries(hook?.(gate, input) ?? {})) annotations[annotationName(key)] = value;
  }
  return Object.fromEntries(
    Object.keys(annotations)
      .sort(compare)
      .map((key) => [`${ANNOTATION_PREFIX}${key}`, annotations[key] as string]),
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

export function renderEvidence(input: GitOpsReleaseInput, author: GitIdentity = DEFAULT_AUTHOR): string {
  const evidence = {
    releaseId: input.releaseId,
    runId: input.runId,
    request: input.request,
    manifest: input.manifest,
    gates: input.gates,
    approvals: input.approvals,
    policy: { name: input.policy.name, digest: input.policy.digest },
    commit: { author: { name: author.name, email: author.email } },
    decidedAt: decidedAt(input),
  };
  return `${JSON.stringify(evidence, null, 2)}\n`;
}

function baseLabels(model: string): Record<string, string> {
  return { 'app.kubernetes.io/name': model, 'app.kubernetes.io/part-of': 'modelrelease' };
}

function baseDeployment(model: string, servingImage: string): unknown {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: model, labels: baseLabels(model) },
    spec: {
      // Only the name: selectors are immutable, so nothing that changes per release may enter them.
      selector: { matchLabels: { 'app.kubernetes.io/name': model } },
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

function baseService(model: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: model, labels: baseLabels(model) },
    spec: {
      selector: { 'app.kubernetes.io/name': model },
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

function deploymentPatch(input: GitOpsReleaseInput, servingImage: string, hooks: GateAnnotationHooks): unknown {
  const { request, manifest } = input;
  const sizing = deploymentSizing(input.gates);
  const labels = {
    ...sizing.labels,
    'modelrelease.io/model': labelValue(request.model.name),
    'modelrelease.io/version': labelValue(request.model.version),
    'modelrelease.io/team': labelValue(request.team ?? 'unassigned'),
    'modelrelease.io/cost-center': labelValue(request.costCenter ?? 'unassigned'),
  };
  const container: Record<string, unknown> = {
    name: CONTAINER_NAME,
    image: sizing.image ?? request.image?.ref ?? servingImage,
    env: [
      { name: 'MODEL_NAME', value: request.model.name },
      { name: 'MODEL_VERSION', value: request.model.version },
      { name: 'MODEL_MANIFEST_DIGEST', value: sha256Ref(manifest.manifestDigest) },
      { name: 'MODEL_STORE', value: manifest.storeRoot },
    ],
  };
  if (sizing.resources) container.resources = sizing.resources;
  const podSpec: Record<string, unknown> = { containers: [container] };
  if (sizing.nodeSelector) podSpec.nodeSelector = sizing.nodeSelector;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: request.model.name, labels, annotations: policyAnnotations(input, hooks) },
    spec: {
      replicas: sizing.replicas ?? 1,
      template: {
        // Cost tools (OpenCost, Kubecost) allocate by pod labels, not by the Deployment's.
        metadata: { labels },
        spec: podSpec,
      },
    },
  };
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

function toYaml(value: unknown): string {
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
