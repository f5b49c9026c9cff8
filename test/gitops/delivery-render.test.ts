/**
 * What a release with a delivery commits: the serving image pinned by digest, the model's OCI artifact mounted by
 * digest (image volume or init container), or a KServe InferenceService, and never a tag or a worker's path.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RenderedFiles } from '../../activities/gitops/render';
import { LEGACY_SERVING_IMAGE, renderRelease, workloadOf } from '../../activities/gitops/render';
import { PULLER_IMAGE, SERVING_IMAGE, deliveredRelease, delivery, releaseInput } from './fixtures';

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML is walked by key */
function yamlAt(files: RenderedFiles, path: string): any {
  const text = files.get(path);
  expect(text, `${path} rendered`).toBeDefined();
  return parse(String(text), { version: '1.1' });
}

const BASE = 'apps/sentiment/base';
const OVERLAY = 'apps/sentiment/overlays/production';
const EVIDENCE = 'releases/sentiment/1.4.0/production/evidence.json';
const ARTIFACT = `127.0.0.1:5000/models/sentiment@sha256:${'9'.repeat(64)}`;
const SCANNED = `127.0.0.1:5000/ml/server@sha256:${'e'.repeat(64)}`;

function allText(files: RenderedFiles): string {
  return [...files.values()].map(String).join('\n');
}

describe('a release with a delivery, served by a Deployment', () => {
  it('mounts the model artifact as a read-only image volume and runs the serving image by digest', () => {
    const files = renderRelease(deliveredRelease());
    const patch = yamlAt(files, `${OVERLAY}/deployment-patch.yaml`);
    const pod = patch.spec.template.spec;
    expect(pod.volumes).toEqual([{ name: 'model', image: { reference: ARTIFACT, pullPolicy: 'IfNotPresent' } }]);
    expect(pod.initContainers).toBeUndefined();
    const [container] = pod.containers;
    expect(container.image).toBe(SERVING_IMAGE);
    expect(container.volumeMounts).toEqual([{ name: 'model', mountPath: '/mnt/models', readOnly: true }]);
    expect(container.env).toEqual([
      { name: 'MODEL_NAME', value: 'sentiment' },
      { name: 'MODEL_VERSION', value: '1.4.0' },
      { name: 'MODEL_MANIFEST_DIGEST', value: `sha256:${'c'.repeat(64)}` },
      { name: 'MODEL_MANIFEST_BLOB', value: `sha256:${'b'.repeat(64)}` },
      { name: 'MODEL_DIR', value: '/mnt/models' },
    ]);
    // Kubernetes' own deadline is the policy's rollout timeout (10m).
    expect(patch.spec.progressDeadlineSeconds).toBe(600);
    expect(patch.metadata.annotations['policy.modelrelease.io/model-artifact']).toBe(ARTIFACT);
    expect(patch.metadata.annotations['policy.modelrelease.io/model-mount']).toBe('image-volume');
    // The base runs the serving image too, so that it deploys on its own.
    expect(yamlAt(files, `${BASE}/deployment.yaml`).spec.template.spec.containers[0].image).toBe(SERVING_IMAGE);
    expect(workloadOf(deliveredRelease())).toEqual({ kind: 'Deployment', namespace: 'production', name: 'sentiment' });
  });

  it('pulls the artifact into a shared emptyDir with the puller image where the environment mounts by init container', () => {
    const d = delivery({ modelMount: 'init-container', pullerImage: PULLER_IMAGE, rollout: delivery().rollout });
    d.rollout.timeout = '90s';
    const patch = yamlAt(renderRelease(deliveredRelease(d)), `${OVERLAY}/deployment-patch.yaml`);
    const pod = patch.spec.template.spec;
    expect(pod.volumes).toEqual([{ name: 'model', emptyDir: {} }]);
    expect(pod.initContainers).toEqual([
      {
        name: 'model-pull',
        image: PULLER_IMAGE,
        args: ['pull', ARTIFACT, '--output', '/mnt/models'],
        volumeMounts: [{ name: 'model', mountPath: '/mnt/models' }],
      },
    ]);
    expect(pod.containers[0].volumeMounts).toEqual([{ name: 'model', mountPath: '/mnt/models', readOnly: true }]);
    expect(patch.spec.progressDeadlineSeconds).toBe(90);
    expect(patch.metadata.annotations['policy.modelrelease.io/model-mount']).toBe('init-container');
  });

  it('runs the image the image gate scanned, and never a tag', () => {
    const scanned = deliveredRelease();
    scanned.request.image = { ref: 'ml/server:1.2' };
    scanned.gates.push({ ...scanned.gates[0]!, gate: 'image', deployment: { image: SCANNED } });
    const container = (files: RenderedFiles) =>
      yamlAt(files, `${OVERLAY}/deployment-patch.yaml`).spec.template.spec.containers[0];
    expect(container(renderRelease(scanned)).image).toBe(SCANNED);

    // A request's image that nothing pinned does not run: it could be moved after the approval.
    const unpinned = deliveredRelease();
    unpinned.request.image = { ref: 'ml/server:latest' };
    expect(container(renderRelease(unpinned)).image).toBe(SERVING_IMAGE);
    for (const input of [scanned, unpinned]) expect(allText(renderRelease(input))).not.toMatch(/image: \S+:latest/);
  });

  it('says that the model cannot be mounted when the worker stored it in no registry', () => {
    const input = { ...releaseInput(), delivery: delivery() };
    const files = renderRelease(input);
    const patch = yamlAt(files, `${OVERLAY}/deployment-patch.yaml`);
    const pod = patch.spec.template.spec;
    expect(pod.volumes).toBeUndefined();
    expect(pod.containers[0].volumeMounts).toBeUndefined();
    expect(pod.containers[0].env.map((e: { name: string }) => e.name)).not.toContain('MODEL_DIR');
    expect(pod.containers[0].image).toBe(SERVING_IMAGE);
    expect(patch.metadata.annotations['policy.modelrelease.io/model-mount']).toBe('unavailable');
    expect(patch.metadata.annotations).not.toHaveProperty('policy.modelrelease.io/model-artifact');
    // The fixture's manifest still names the worker's store folder; it stays out of every file.
    expect(allText(files)).not.toContain('/var/lib/modelrelease');
  });

  it('records the delivery in the release summary', () => {
    const input = deliveredRelease();
    const evidence = JSON.parse(String(renderRelease(input).get(EVIDENCE)));
    expect(evidence.delivery).toEqual(input.delivery);
    expect(evidence.manifest.artifact.reference).toBe(ARTIFACT);
  });
});

describe('a release with a delivery, served by KServe', () => {
  const kserve = () => deliveredRelease(delivery({ serving: 'kserve' }));

  it('renders an InferenceService in the overlay instead of patching the shared base', () => {
    const files = renderRelease(kserve());
    expect([...files.keys()].sort()).toEqual(
      [`${OVERLAY}/inference-service.yaml`, `${OVERLAY}/kustomization.yaml`, EVIDENCE].sort(),
    );
    expect(yamlAt(files, `${OVERLAY}/kustomization.yaml`)).toEqual({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace: 'production',
      resources: ['inference-service.yaml'],
    });
    expect(workloadOf(kserve())).toEqual({ kind: 'InferenceService', namespace: 'production', name: 'sentiment' });
  });

  it('runs the serving image as the predictor container with the model mounted by digest, labelled and annotated', () => {
    const input = kserve();
    input.gates.push({
      ...input.gates[0]!,
      gate: 'cost',
      deployment: {
        replicas: 2,
        resources: { requests: { memory: '2Gi', cpu: '1' } },
        nodeSelector: { 'node.kubernetes.io/instance-type': 'm7i.large' },
        labels: { 'modelrelease.io/instance-type': 'm7i.large' },
      },
    });
    const isvc = yamlAt(renderRelease(input), `${OVERLAY}/inference-service.yaml`);
    expect(isvc.apiVersion).toBe('serving.kserve.io/v1beta1');
    expect(isvc.kind).toBe('InferenceService');
    expect(isvc.metadata.name).toBe('sentiment');
    expect(isvc.metadata.labels).toMatchObject({
      'app.kubernetes.io/name': 'sentiment',
      'app.kubernetes.io/part-of': 'modelrelease',
      'modelrelease.io/model': 'sentiment',
      'modelrelease.io/cost-center': 'cc-1234',
    });
    expect(isvc.metadata.annotations).toMatchObject({
      'policy.modelrelease.io/release-id': 'release/sentiment/1.4.0/production',
      'policy.modelrelease.io/manifest-digest': `sha256:${'c'.repeat(64)}`,
      'policy.modelrelease.io/model-artifact': ARTIFACT,
      'policy.modelrelease.io/model-mount': 'image-volume',
      'policy.modelrelease.io/approved-by': 'alice,bob',
    });
    const predictor = isvc.spec.predictor;
    expect(predictor).toMatchObject({ minReplicas: 2, maxReplicas: 2 });
    expect(predictor.labels['modelrelease.io/instance-type']).toBe('m7i.large');
    expect(predictor.nodeSelector).toEqual({ 'node.kubernetes.io/instance-type': 'm7i.large' });
    expect(predictor.volumes).toEqual([{ name: 'model', image: { reference: ARTIFACT, pullPolicy: 'IfNotPresent' } }]);
    const [container, ...others] = predictor.containers;
    expect(others).toEqual([]);
    expect(container).toMatchObject({
      name: 'kserve-container',
      image: SERVING_IMAGE,
      resources: { requests: { cpu: '1', memory: '2Gi' } },
      volumeMounts: [{ name: 'model', mountPath: '/mnt/models', readOnly: true }],
    });
    expect(container.env).toContainEqual({ name: 'MODEL_DIR', value: '/mnt/models' });
    // No storageUri: KServe would run the artifact as a modelcar container, which a ModelPack artifact cannot be.
    expect(JSON.stringify(isvc)).not.toContain('storageUri');
  });
});

describe('rendering with a delivery', () => {
  const variants = {
    'image volume': () => deliveredRelease(),
    'init container': () => deliveredRelease(delivery({ modelMount: 'init-container', pullerImage: PULLER_IMAGE })),
    kserve: () => deliveredRelease(delivery({ serving: 'kserve' })),
    'no artifact': () => ({ ...releaseInput(), delivery: delivery() }),
  };

  it.each(Object.entries(variants))('is byte-stable (%s): the same input renders the same bytes', (_name, make) => {
    const first = renderRelease(make());
    const again = renderRelease(structuredClone(make()));
    expect([...again.entries()]).toEqual([...first.entries()]);
  });

  it.each(Object.entries(variants))('writes no tag and no host path (%s)', (_name, make) => {
    const text = allText(renderRelease(make()));
    expect(text).not.toContain(':latest');
    expect(text).not.toContain('/var/lib/modelrelease');
    expect(text).not.toContain('MODEL_STORE');
    const images = [...text.matchAll(/(?:image|reference): (\S+)/g)].map((m) => m[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) {
      expect(image, 'every image and artifact is pinned by digest').toMatch(/@sha256:[0-9a-f]{64}$/);
    }
  });
});

describe('a release started before delivery policies', () => {
  it('renders exactly what it rendered then, so that a retried commit writes the same bytes', () => {
    const files = renderRelease(releaseInput());
    expect(files.get(`${OVERLAY}/deployment-patch.yaml`)).toBe(
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: sentiment',
        '  labels:',
        '    modelrelease.io/cost-center: cc-1234',
        '    modelrelease.io/model: sentiment',
        '    modelrelease.io/team: nlp',
        '    modelrelease.io/version: 1.4.0',
        '  annotations:',
        `    policy.modelrelease.io/approved-by: alice,bob`,
        `    policy.modelrelease.io/fairness-verdict: warn`,
        `    policy.modelrelease.io/files: group1-shard1of1.bin=sha256:${'a'.repeat(64)},model.json=sha256:${'b'.repeat(64)}`,
        `    policy.modelrelease.io/manifest-digest: sha256:${'c'.repeat(64)}`,
        '    policy.modelrelease.io/model-registry-ref: hf://acme/sentiment@3f2a9c0d1e',
        `    policy.modelrelease.io/policy: default@sha256:${'d'.repeat(64)}`,
        '    policy.modelrelease.io/release-id: release/sentiment/1.4.0/production',
        '    policy.modelrelease.io/scan-verdict: pass',
        'spec:',
        '  replicas: 1',
        '  template:',
        '    metadata:',
        '      labels:',
        '        modelrelease.io/cost-center: cc-1234',
        '        modelrelease.io/model: sentiment',
        '        modelrelease.io/team: nlp',
        '        modelrelease.io/version: 1.4.0',
        '    spec:',
        '      containers:',
        '        - name: model-server',
        `          image: ${LEGACY_SERVING_IMAGE}`,
        '          env:',
        '            - name: MODEL_NAME',
        '              value: sentiment',
        '            - name: MODEL_VERSION',
        '              value: 1.4.0',
        '            - name: MODEL_MANIFEST_DIGEST',
        `              value: sha256:${'c'.repeat(64)}`,
        '',
      ].join('\n'),
    );
    expect(JSON.parse(String(files.get(EVIDENCE)))).not.toHaveProperty('delivery');
  });
});
