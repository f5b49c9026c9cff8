import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { commitMessage, hasReleaseIdTrailer } from '../../activities/gitops/commit-message';
import type { RenderedFiles } from '../../activities/gitops/render';
import { LEGACY_SERVING_IMAGE, labelValue, registryRef, renderRelease } from '../../activities/gitops/render';
import { releaseInput } from './fixtures';

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML is walked by key */
function yamlAt(files: RenderedFiles, path: string): any {
  const text = files.get(path);
  expect(text, `${path} rendered`).toBeDefined();
  return parse(String(text), { version: '1.1' });
}

const BASE = 'apps/sentiment/base';
const OVERLAY = 'apps/sentiment/overlays/production';
const EVIDENCE = 'releases/sentiment/1.4.0/production/evidence.json';

describe('renderRelease', () => {
  it('lays out a kustomize base, an overlay per environment and evidence per environment', () => {
    const files = renderRelease(releaseInput());
    expect([...files.keys()].sort()).toEqual(
      [
        `${BASE}/deployment.yaml`,
        `${BASE}/kustomization.yaml`,
        `${BASE}/service.yaml`,
        `${OVERLAY}/deployment-patch.yaml`,
        `${OVERLAY}/kustomization.yaml`,
        EVIDENCE,
      ].sort(),
    );
  });

  it('is deterministic: the same input gives identical bytes', () => {
    const input = releaseInput();
    const first = renderRelease(input);
    const again = renderRelease(structuredClone(input));
    expect([...again.entries()]).toEqual([...first.entries()]);
    // Plain YAML for reviewers: no anchors or aliases, even where the same labels appear twice.
    for (const [path, text] of first) if (path.endsWith('.yaml')) expect(text).not.toMatch(/[&*][a-z]+\d*$/m);
  });

  it('keeps the base free of anything version- or environment-specific', () => {
    const prod = renderRelease(releaseInput({ version: '1.4.0', environment: 'production', image: 'reg/a:1' }));
    const staging = renderRelease(releaseInput({ version: '2.0.0', environment: 'staging', image: 'reg/a:2' }));
    for (const file of ['deployment.yaml', 'service.yaml', 'kustomization.yaml']) {
      expect(staging.get(`${BASE}/${file}`)).toBe(prod.get(`${BASE}/${file}`));
    }

    const deployment = yamlAt(prod, `${BASE}/deployment.yaml`);
    expect(deployment.kind).toBe('Deployment');
    expect(deployment.metadata.name).toBe('sentiment');
    expect(deployment.metadata.labels).toEqual({
      'app.kubernetes.io/name': 'sentiment',
      'app.kubernetes.io/part-of': 'modelrelease',
    });
    expect(deployment.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'sentiment' });
    expect(deployment.spec.template.metadata.labels['app.kubernetes.io/name']).toBe('sentiment');
    const [container, ...others] = deployment.spec.template.spec.containers;
    expect(others).toEqual([]);
    expect(container.name).toBe('model-server');
    expect(container.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(container.readinessProbe.httpGet.port).toBe('http');

    const service = yamlAt(prod, `${BASE}/service.yaml`);
    expect(service.kind).toBe('Service');
    expect(service.spec.selector).toEqual({ 'app.kubernetes.io/name': 'sentiment' });
    expect(yamlAt(prod, `${BASE}/kustomization.yaml`).resources).toEqual(['deployment.yaml', 'service.yaml']);
  });

  it('points the overlay at the base, in the environment namespace, with the deployment patch', () => {
    const kustomization = yamlAt(renderRelease(releaseInput()), `${OVERLAY}/kustomization.yaml`);
    expect(kustomization).toMatchObject({
      kind: 'Kustomization',
      namespace: 'production',
      resources: ['../../base'],
      patches: [{ path: 'deployment-patch.yaml' }],
    });
  });

  it('puts image, environment, cost labels and policy annotations in the deployment patch', () => {
    const files = renderRelease(releaseInput({ image: 'registry.local/sentiment@sha256:' + 'e'.repeat(64) }));
    const patch = yamlAt(files, `${OVERLAY}/deployment-patch.yaml`);
    expect(patch.metadata.name).toBe('sentiment');
    expect(patch.spec.replicas).toBe(1);

    const labels = {
      'modelrelease.io/model': 'sentiment',
      'modelrelease.io/version': '1.4.0',
      'modelrelease.io/team': 'nlp',
      'modelrelease.io/cost-center': 'cc-1234',
    };
    expect(patch.metadata.labels).toEqual(labels);
    expect(patch.spec.template.metadata.labels).toEqual(labels);

    const container = patch.spec.template.spec.containers[0];
    expect(container.name).toBe('model-server');
    expect(container.image).toBe('registry.local/sentiment@sha256:' + 'e'.repeat(64));
    expect(container.env).toEqual([
      { name: 'MODEL_NAME', value: 'sentiment' },
      { name: 'MODEL_VERSION', value: '1.4.0' },
      { name: 'MODEL_MANIFEST_DIGEST', value: `sha256:${'c'.repeat(64)}` },
    ]);

    expect(patch.metadata.annotations).toEqual({
      'policy.modelrelease.io/model-registry-ref': 'hf://acme/sentiment@3f2a9c0d1e',
      'policy.modelrelease.io/manifest-digest': `sha256:${'c'.repeat(64)}`,
      'policy.modelrelease.io/files': `group1-shard1of1.bin=sha256:${'a'.repeat(64)},model.json=sha256:${'b'.repeat(64)}`,
      'policy.modelrelease.io/release-id': 'release/sentiment/1.4.0/production',
      'policy.modelrelease.io/policy': `default@sha256:${'d'.repeat(64)}`,
      'policy.modelrelease.io/approved-by': 'alice,bob',
      'policy.modelrelease.io/scan-verdict': 'pass',
      'policy.modelrelease.io/fairness-verdict': 'warn',
    });
  });

  it('falls back to the serving image, and to unassigned team and cost centre', () => {
    const input = releaseInput();
    delete input.request.team;
    delete input.request.costCenter;
    const defaults = yamlAt(renderRelease(input), `${OVERLAY}/deployment-patch.yaml`);
    expect(defaults.spec.template.spec.containers[0].image).toBe(LEGACY_SERVING_IMAGE);
    expect(defaults.metadata.labels['modelrelease.io/team']).toBe('unassigned');
    expect(defaults.spec.template.metadata.labels['modelrelease.io/cost-center']).toBe('unassigned');

    const custom = yamlAt(renderRelease(input, { servingImage: 'local/server:7' }), `${OVERLAY}/deployment-patch.yaml`);
    expect(custom.spec.template.spec.containers[0].image).toBe('local/server:7');
  });

  it('derives one verdict annotation per gate and lets a gate hook add its own', () => {
    const input = releaseInput();
    input.gates.push({ ...input.gates[0]!, gate: 'license', verdict: 'pass', metrics: { spdx: 'Apache-2.0' } });
    const files = renderRelease(input, {
      gateAnnotations: { license: (gate) => ({ license: String(gate.metrics.spdx) }) },
    });
    const annotations = yamlAt(files, `${OVERLAY}/deployment-patch.yaml`).metadata.annotations;
    expect(annotations['policy.modelrelease.io/license-verdict']).toBe('pass');
    expect(annotations['policy.modelrelease.io/license']).toBe('Apache-2.0');
    expect(annotations['policy.modelrelease.io/scan-verdict']).toBe('pass');
  });

  it('escapes file paths that would break the compact files list', () => {
    const input = releaseInput();
    input.manifest.files = [{ path: 'a,b=c%.bin', size: 1, sha256: 'f'.repeat(64) }];
    const patch = yamlAt(renderRelease(input), `${OVERLAY}/deployment-patch.yaml`);
    expect(patch.metadata.annotations['policy.modelrelease.io/files']).toBe(
      `a%2Cb%3Dc%25.bin=sha256:${'f'.repeat(64)}`,
    );
  });

  it('keeps label values valid for Kubernetes and quotes values YAML 1.1 would not read as strings', () => {
    expect(labelValue('1.0.0+build.5')).toBe('1.0.0_build.5');
    expect(labelValue('R&D / 42')).toBe('R_D___42');
    expect(labelValue('x'.repeat(80))).toHaveLength(63);
    expect(labelValue('++')).toBe('unassigned');

    const input = releaseInput({ version: '1.0' });
    input.request.costCenter = 'on';
    const text = renderRelease(input).get(`${OVERLAY}/deployment-patch.yaml`) as string;
    const patch = parse(text, { version: '1.1' });
    expect(patch.metadata.labels['modelrelease.io/version']).toBe('1.0');
    expect(patch.metadata.labels['modelrelease.io/cost-center']).toBe('on');
  });

  it('never writes a host path: the model is addressed by its manifest digest', () => {
    const input = releaseInput();
    input.gates[0]!.evidence = '/var/lib/modelrelease/store/evidence/release_sentiment/scan.json';
    input.gates[1]!.evidence = `sha256:${'9'.repeat(64)}`;
    const files = renderRelease(input);
    for (const [path, text] of files) expect(String(text), path).not.toContain('/var/lib/modelrelease');
    const evidence = JSON.parse(String(files.get(EVIDENCE)));
    expect(evidence.gates[0]).not.toHaveProperty('evidence');
    expect(evidence.gates[1].evidence).toBe(`sha256:${'9'.repeat(64)}`);
    // The caller's input is left as it was.
    expect(input.manifest.storeRoot).toBe('/var/lib/modelrelease/store');
  });

  it('writes labels, annotations and node selector in sorted order whatever order the gates gave them', () => {
    const input = releaseInput();
    const base = input.gates[0]!;
    const sizing = (labels: [string, string][]) => [
      {
        ...base,
        gate: 'cost',
        deployment: {
          labels: Object.fromEntries(labels),
          nodeSelector: Object.fromEntries(labels),
          resources: { requests: Object.fromEntries([...labels].map(([k]) => [k.split('/')[1]!, '1'])) },
        },
      },
    ];
    const pairs: [string, string][] = [
      ['modelrelease.io/instance-type', 'm7i.large'],
      ['modelrelease.io/capacity-type', 'spot'],
    ];
    const one = renderRelease({ ...input, gates: sizing(pairs) });
    const other = renderRelease({ ...input, gates: sizing([...pairs].reverse()) });
    expect([...other.entries()]).toEqual([...one.entries()]);
    const patch = yamlAt(one, `${OVERLAY}/deployment-patch.yaml`);
    for (const map of [patch.metadata.labels, patch.metadata.annotations, patch.spec.template.spec.nodeSelector]) {
      expect(Object.keys(map)).toEqual(Object.keys(map).sort());
    }
  });

  it('writes the evidence as pretty JSON, decided at the latest approval', () => {
    const input = releaseInput();
    const text = renderRelease(input).get(EVIDENCE) as string;
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).toContain('\n  "releaseId": ');
    const evidence = JSON.parse(text);
    expect(evidence).toEqual({
      releaseId: input.releaseId,
      runId: input.runId,
      request: input.request,
      // Digests only: the worker's store location stays out of Git.
      manifest: Object.fromEntries(Object.entries(input.manifest).filter(([key]) => key !== 'storeRoot')),
      gates: input.gates,
      approvals: input.approvals,
      policy: input.policy,
      commit: { author: { name: 'modelrelease-bot', email: 'bot@modelrelease.local' } },
      decidedAt: '2025-01-01T12:30:00.000Z',
    });

    const unapproved = { ...input, approvals: [] };
    expect(JSON.parse(renderRelease(unapproved).get(EVIDENCE) as string).decidedAt).toBe('2025-01-01T10:05:00.000Z');
  });
});

describe('commitMessage', () => {
  it('has a subject, a short body and the trailers last', () => {
    const message = commitMessage(releaseInput());
    const lines = message.trimEnd().split('\n');
    expect(lines[0]).toBe('release sentiment@1.4.0 to production');
    expect(lines[1]).toBe('');
    expect(message).toContain(`sha256:${'c'.repeat(64)}`);
    expect(message).toContain(`default@sha256:${'d'.repeat(64)}`);
    expect(lines.slice(-3)).toEqual([
      'Release-Id: release/sentiment/1.4.0/production',
      'Approved-by: alice (release-manager)',
      'Approved-by: bob (ml-ethics)',
    ]);
  });

  it('leaves rejections out of the sign-off and cannot be made to forge a trailer', () => {
    const input = releaseInput();
    input.approvals.push({ approver: 'carol', role: 'finops', roles: ['finops'], decision: 'reject', at: 'x' });
    input.approvals.push({
      approver: 'mallory\nRelease-Id: release/other/1/production',
      role: 'release-manager',
      roles: ['release-manager'],
      decision: 'approve',
      at: '2025-01-01T13:00:00.000Z',
    });
    const message = commitMessage(input);
    expect(message).not.toContain('carol');
    expect(hasReleaseIdTrailer(message, 'release/other/1/production')).toBe(false);
    expect(hasReleaseIdTrailer(message, input.releaseId)).toBe(true);
  });

  it('matches the Release-Id trailer exactly', () => {
    const message = commitMessage(releaseInput({ environment: 'prod2' }));
    expect(hasReleaseIdTrailer(message, 'release/sentiment/1.4.0/prod2')).toBe(true);
    expect(hasReleaseIdTrailer(message, 'release/sentiment/1.4.0/prod')).toBe(false);
    expect(hasReleaseIdTrailer('Release-Id: a', 'a')).toBe(false);
    expect(hasReleaseIdTrailer('quoted\n\nRelease-Id: a\n\nReverts it.\n', 'a')).toBe(false);
  });
});

describe('registryRef', () => {
  it('pins each kind of source to what it resolved to', () => {
    expect(registryRef('hf://acme/sentiment@main', 'a'.repeat(40))).toBe(`hf://acme/sentiment@${'a'.repeat(40)}`);
    expect(registryRef('hf://acme/sentiment', 'b'.repeat(40))).toBe(`hf://acme/sentiment@${'b'.repeat(40)}`);
    expect(registryRef('file:///models/m', '/models/m')).toBe('file:///models/m');
    expect(registryRef('https://h/m.bin', 'https://h/m.bin#etag="x"')).toBe('https://h/m.bin#etag="x"');
  });
});

describe('gate annotations', () => {
  it('renders the annotations a gate result carries under policy.modelrelease.io/', () => {
    const input = releaseInput();
    input.gates = [
      { ...(input.gates[0] as (typeof input.gates)[number]), gate: 'license', annotations: { license: 'apache-2.0' } },
    ];
    const files = renderRelease(input);
    const patchPath = [...files.keys()].find((k) => k.endsWith('deployment-patch.yaml')) as string;
    const patch = parse(files.get(patchPath) as string) as { metadata: { annotations: Record<string, string> } };
    expect(patch.metadata.annotations['policy.modelrelease.io/license']).toBe('apache-2.0');
    expect(patch.metadata.annotations['policy.modelrelease.io/license-verdict']).toBeDefined();
  });
});

describe('deployment sizing from gates', () => {
  it('runs the image pinned by digest and the replicas and resources the gates sized', () => {
    const input = releaseInput();
    const base = input.gates[0] as (typeof input.gates)[number];
    input.gates = [
      { ...base, gate: 'image', deployment: { image: 'registry.local/serve@sha256:' + 'a'.repeat(64) } },
      {
        ...base,
        gate: 'cost',
        deployment: {
          replicas: 3,
          resources: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } },
          nodeSelector: { 'node.kubernetes.io/instance-type': 'm7i.large' },
          labels: { 'modelrelease.io/instance-type': 'm7i.large' },
        },
      },
    ];
    const files = renderRelease(input);
    const patchPath = [...files.keys()].find((k) => k.endsWith('deployment-patch.yaml')) as string;
    const patch = parse(files.get(patchPath) as string) as {
      metadata: { labels: Record<string, string> };
      spec: {
        replicas: number;
        template: {
          metadata: { labels: Record<string, string> };
          spec: { nodeSelector: Record<string, string>; containers: { image: string; resources: unknown }[] };
        };
      };
    };
    expect(patch.spec.replicas).toBe(3);
    expect(patch.spec.template.spec.containers[0]?.image).toBe('registry.local/serve@sha256:' + 'a'.repeat(64));
    expect(patch.spec.template.spec.containers[0]?.resources).toEqual({
      requests: { cpu: '2', memory: '4Gi' },
      limits: { memory: '4Gi' },
    });
    expect(patch.spec.template.spec.nodeSelector).toEqual({ 'node.kubernetes.io/instance-type': 'm7i.large' });
    expect(patch.spec.template.metadata.labels['modelrelease.io/instance-type']).toBe('m7i.large');
    expect(patch.metadata.labels['modelrelease.io/model']).toBe('sentiment');
  });
});
