/**
 * Every overlay the renderer writes, built with the real `kustomize build` (as Flux and Argo CD build it) and every
 * built object validated with the real kubeconform against the Kubernetes API's own schemas, strictly (an unknown or
 * misplaced field fails); KServe's InferenceService against the schema of KServe's own CRD. The tools and schemas come
 * from scripts/setup-kube-tools.mjs (npm test's pretest).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { renderEvidenceBundle } from '../../activities/gitops/evidence-bundle';
import { basePath, overlayPath } from '../../activities/gitops/layout';
import type { RenderedFiles } from '../../activities/gitops/render';
import { renderRelease } from '../../activities/gitops/render';
import type { GitOpsReleaseInput, ManifestRef } from '../../contract/types';
import { kubeToolPaths, kubeToolsCurrent } from '../../scripts/setup-kube-tools.mjs';
import { PULLER_IMAGE, deliveredRelease, delivery, releaseInput, test } from './fixtures';

const exec = promisify(execFile);
const tools = kubeToolPaths();

/** Fails the test (never skips it) when the set-up has not provided the tools. */
function requireTools(): void {
  if (!kubeToolsCurrent()) {
    throw new Error(
      'kustomize, kubeconform or the Kubernetes schemas are missing from .tools/: run `node scripts/setup-kube-tools.mjs` ' +
        "(npm test's pretest, scripts/setup-test-deps.mjs, runs it), then this test again",
    );
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any -- built objects are walked by key */
async function kustomizeBuild(dir: string): Promise<{ text: string; objects: any[] }> {
  const { stdout } = await exec(tools.kustomize, ['build', dir], { maxBuffer: 16 * 1024 * 1024 });
  return { text: stdout, objects: parseAllDocuments(stdout).map((d) => d.toJSON()) };
}

interface KubeconformResult {
  resources?: { filename: string; kind: string; name: string; status: string; msg: string }[];
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

async function kubeconform(files: string[]): Promise<KubeconformResult> {
  const args = [
    '-strict',
    '-summary',
    '-output',
    'json',
    '-schema-location',
    tools.schemas,
    '-kubernetes-version',
    tools.kubernetesVersion,
    ...files,
  ];
  // Exit 1 when a resource is invalid: the report says which, so read it either way.
  const { stdout } = await exec(tools.kubeconform, args).catch((err: { stdout?: string }) => {
    if (typeof err.stdout === 'string' && err.stdout.includes('"summary"')) return { stdout: err.stdout };
    throw err;
  });
  return JSON.parse(stdout) as KubeconformResult;
}

async function writeRepo(root: string, files: RenderedFiles): Promise<void> {
  for (const [path, content] of files) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

const digest = (c: string) => c.repeat(64);

/** Releases that between them use every part of the rendered Deployment. */
function releases(): GitOpsReleaseInput[] {
  const plain = releaseInput();
  const staging = releaseInput({ version: '2.0.0-rc.1', environment: 'staging' });
  delete staging.request.team;
  delete staging.request.costCenter;

  const sized = releaseInput({ model: 'credit-risk', version: '1.0+build.5', image: 'reg.local/serve:1' });
  sized.request.costCenter = 'on';
  const gate = sized.gates[0]!;
  sized.gates.push(
    {
      ...gate,
      gate: 'image',
      deployment: { image: `127.0.0.1:5000/ml/server@sha256:${digest('e')}` },
      annotations: { 'image-digest': `sha256:${digest('e')}` },
    },
    { ...gate, gate: 'license', annotations: { license: 'apache-2.0' } },
    {
      ...gate,
      gate: 'cost',
      verdict: 'warn',
      deployment: {
        replicas: 3,
        resources: { requests: { memory: '4Gi', cpu: '2' }, limits: { memory: '4Gi', 'nvidia.com/gpu': '1' } },
        nodeSelector: { 'node.kubernetes.io/instance-type': 'g5.xlarge', 'karpenter.sh/capacity-type': 'spot' },
        labels: { 'modelrelease.io/instance-type': 'g5.xlarge', 'modelrelease.io/capacity-type': 'spot' },
      },
    },
  );

  const byReference = releaseInput({ model: 'fraud', environment: 'production' });
  const ref: ManifestRef = {
    model: 'fraud',
    version: '1.4.0',
    source: 'hf://acme/fraud@main',
    resolvedRevision: digest('3').slice(0, 40),
    manifestDigest: digest('c'),
    blob: digest('b'),
    fileCount: 2,
    totalSize: 4216,
  };
  return [plain, staging, sized, { ...byReference, manifest: ref }];
}

function renderWithEvidence(input: GitOpsReleaseInput): RenderedFiles {
  const report = Buffer.from('{"gate":"scan","findings":[]}\n');
  const sha256 = createHash('sha256').update(report).digest('hex');
  const bundle = renderEvidenceBundle({
    model: input.request.model.name,
    version: input.request.model.version,
    environment: input.request.environment,
    releaseId: input.releaseId,
    entries: [{ name: 'gates/scan.json', sha256, bytes: report }],
    index: {
      policy: input.policy,
      decisions: input.approvals,
      refusedDecisions: [],
      gates: [{ gate: 'scan', verdict: 'pass', summary: 'no findings', evidenceSha256: sha256 }],
    },
  });
  return renderRelease(input, { evidenceBundle: bundle });
}

describe('rendered overlays under kustomize and kubeconform', () => {
  test('every overlay builds, and every object it builds is valid Kubernetes', async ({ tmp }) => {
    requireTools();
    const inputs = releases();
    const built: string[] = [];
    const results: { objects: any[] }[] = [];
    for (const [i, input] of inputs.entries()) {
      const files = i === 0 ? renderWithEvidence(input) : renderRelease(input);
      await writeRepo(tmp, files);
      const { model } = input.request;
      const overlay = overlayPath(model.name, input.request.environment);
      const { text, objects } = await kustomizeBuild(join(tmp, overlay));
      results.push({ objects });
      const file = join(tmp, `built-${i}.yaml`);
      await writeFile(file, text);
      built.push(file);
      // The model is addressed by digest: the worker's store location (in the fixture's manifest) never appears.
      expect(text).not.toContain('/var/lib/modelrelease');

      expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual([
        `Deployment/${input.request.environment}/${model.name}`,
        `Service/${input.request.environment}/${model.name}`,
      ]);
      const deployment = objects.find((o) => o.kind === 'Deployment');
      const [container, ...others] = deployment.spec.template.spec.containers;
      expect(others).toEqual([]);
      // The patch merged into the base's container by name: the base's port and probe, the release's env.
      expect(container.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
      expect(container.readinessProbe.httpGet.port).toBe('http');
      expect(container.env).toContainEqual({ name: 'MODEL_MANIFEST_DIGEST', value: `sha256:${digest('c')}` });
      expect(container.env.map((e: { name: string }) => e.name)).not.toContain('MODEL_STORE');
      expect(deployment.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': model.name });
      expect(deployment.spec.template.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': model.name,
        'modelrelease.io/model': model.name,
      });
      expect(deployment.metadata.annotations['policy.modelrelease.io/release-id']).toBe(input.releaseId);
    }

    const [withEvidence, , sized, byReference] = results;
    const deploymentOf = (b: { objects: any[] } | undefined) => b!.objects.find((o) => o.kind === 'Deployment');
    expect(deploymentOf(withEvidence).metadata.annotations['policy.modelrelease.io/evidence-bundle']).toMatch(
      /^sha256:[0-9a-f]{64}$/,
    );
    const sizedDeployment = deploymentOf(sized);
    expect(sizedDeployment.spec.replicas).toBe(3);
    expect(sizedDeployment.spec.template.spec.containers[0].image).toBe(
      `127.0.0.1:5000/ml/server@sha256:${digest('e')}`,
    );
    expect(sizedDeployment.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe('1');
    expect(sizedDeployment.metadata.labels['modelrelease.io/cost-center']).toBe('on');
    expect(sizedDeployment.metadata.labels['modelrelease.io/version']).toBe('1.0_build.5');
    expect(deploymentOf(byReference).spec.template.spec.containers[0].env).toContainEqual({
      name: 'MODEL_MANIFEST_BLOB',
      value: `sha256:${digest('b')}`,
    });

    // The bases on their own too: they deploy the serving image before any release patches them.
    for (const model of ['sentiment', 'credit-risk', 'fraud']) {
      const file = join(tmp, `base-${model}.yaml`);
      await writeFile(file, (await kustomizeBuild(join(tmp, basePath(model)))).text);
      built.push(file);
    }

    const report = await kubeconform(built);
    expect(report.resources ?? []).toEqual([]);
    expect(report.summary).toEqual({ valid: 2 * built.length, invalid: 0, errors: 0, skipped: 0 });
  });

  test('the validation is strict: a misspelt field, a wrong type or an unknown kind fails', async ({ tmp }) => {
    requireTools();
    const input = releaseInput();
    await writeRepo(tmp, renderRelease(input));
    const { objects } = await kustomizeBuild(join(tmp, overlayPath('sentiment', 'production')));
    const deployment = objects.find((o) => o.kind === 'Deployment');

    const misspelt = structuredClone(deployment);
    misspelt.spec.replicaz = 2;
    const wrongType = structuredClone(deployment);
    wrongType.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    const wrongKind = { ...structuredClone(deployment), apiVersion: 'apps/v1', kind: 'Deploymnet' };
    const files: string[] = [];
    for (const [name, object] of Object.entries({ misspelt, wrongType, wrongKind })) {
      const file = join(tmp, `${name}.json`);
      await writeFile(file, JSON.stringify(object));
      files.push(file);
    }
    const report = await kubeconform(files);
    expect(report.summary).toEqual({ valid: 0, invalid: 2, errors: 1, skipped: 0 });
    const byFile = new Map((report.resources ?? []).map((r) => [r.filename.split('/').pop(), r]));
    expect(byFile.get('misspelt.json')?.msg).toMatch(/replicaz/);
    expect(byFile.get('wrongType.json')?.msg).toMatch(/containerPort/);
    expect(byFile.get('wrongKind.json')?.msg).toMatch(/could not find schema for Deploymnet/);
  });

  test('releases with a delivery build, and every object is valid, the InferenceService against KServe', async ({
    tmp,
  }) => {
    requireTools();
    const imageVolume = deliveredRelease(delivery(), { environment: 'production' });
    const initContainer = deliveredRelease(delivery({ modelMount: 'init-container', pullerImage: PULLER_IMAGE }), {
      model: 'credit-risk',
      environment: 'staging',
    });
    initContainer.gates.push({
      ...initContainer.gates[0]!,
      gate: 'cost',
      deployment: {
        replicas: 2,
        resources: { requests: { memory: '4Gi', cpu: '2' }, limits: { memory: '4Gi' } },
        nodeSelector: { 'node.kubernetes.io/instance-type': 'm7i.large' },
      },
    });
    const kserve = deliveredRelease(delivery({ serving: 'kserve' }), { model: 'fraud', environment: 'production' });
    const withoutArtifact = { ...releaseInput({ model: 'churn', environment: 'dev' }), delivery: delivery() };
    const built: string[] = [];
    const objectsOf: any[][] = [];
    for (const [i, input] of [imageVolume, initContainer, kserve, withoutArtifact].entries()) {
      await writeRepo(tmp, renderRelease(input));
      const { text, objects } = await kustomizeBuild(
        join(tmp, overlayPath(input.request.model.name, input.request.environment)),
      );
      expect(text).not.toContain(':latest');
      const file = join(tmp, `built-${i}.yaml`);
      await writeFile(file, text);
      built.push(file);
      objectsOf.push(objects);
    }
    const [volumeObjects, initObjects, kserveObjects] = objectsOf;
    const deploymentOf = (objects: any[] | undefined) => objects!.find((o) => o.kind === 'Deployment');

    // The patch merged into the base's container by name: the base's port and probe, the release's mount.
    const mounted = deploymentOf(volumeObjects).spec.template.spec;
    expect(mounted.volumes).toEqual([
      { name: 'model', image: { reference: imageVolume.manifest.artifact!.reference, pullPolicy: 'IfNotPresent' } },
    ]);
    expect(mounted.containers[0]).toMatchObject({
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      volumeMounts: [{ name: 'model', mountPath: '/mnt/models', readOnly: true }],
    });
    expect(deploymentOf(volumeObjects).spec.progressDeadlineSeconds).toBe(600);
    const pulled = deploymentOf(initObjects).spec.template.spec;
    expect(pulled.initContainers.map((c: { name: string }) => c.name)).toEqual(['model-pull']);
    expect(pulled.volumes).toEqual([{ name: 'model', emptyDir: {} }]);
    expect(kserveObjects!.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'InferenceService/production/fraud',
    ]);

    const report = await kubeconform(built);
    expect(report.resources ?? []).toEqual([]);
    // Deployment and Service for each but the KServe release, which is one InferenceService.
    expect(report.summary).toEqual({ valid: 7, invalid: 0, errors: 0, skipped: 0 });
  });

  test("KServe's schema is strict too: a misplaced predictor field or a misspelt image volume fails", async ({
    tmp,
  }) => {
    requireTools();
    const files = renderRelease(deliveredRelease(delivery({ serving: 'kserve' })));
    const isvc = parseAllDocuments(
      String(files.get('apps/sentiment/overlays/production/inference-service.yaml')),
    )[0]!.toJSON();
    const misplaced = structuredClone(isvc);
    misplaced.spec.predictor.replicas = 2;
    const misspelt = structuredClone(isvc);
    misspelt.spec.predictor.volumes[0].image.referense = misspelt.spec.predictor.volumes[0].image.reference;
    const wrongVersion = { ...structuredClone(isvc), apiVersion: 'serving.kserve.io/v1alpha9' };
    const written: string[] = [];
    for (const [name, object] of Object.entries({ isvc, misplaced, misspelt, wrongVersion })) {
      const file = join(tmp, `${name}.json`);
      await writeFile(file, JSON.stringify(object));
      written.push(file);
    }
    const report = await kubeconform(written);
    expect(report.summary).toEqual({ valid: 1, invalid: 2, errors: 1, skipped: 0 });
    const byFile = new Map((report.resources ?? []).map((r) => [r.filename.split('/').pop(), r]));
    expect(byFile.get('misplaced.json')?.msg).toMatch(/replicas/);
    expect(byFile.get('misspelt.json')?.msg).toMatch(/referense/);
    expect(byFile.get('wrongVersion.json')?.msg).toMatch(/could not find schema for InferenceService/);
  });
});
