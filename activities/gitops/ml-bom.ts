/**
 * The release's ML-BOM: a CycloneDX 1.6 BOM of the model, committed as `ml-bom.cdx.json` beside `bundle.json`. One
 * `machine-learning-model` component holds every file of the manifest with its SHA-256, the licenses the license gate
 * concluded, and a model card: the evaluation gates' figures as performance metrics and one fairness assessment per
 * protected attribute.
 *
 * Pure and byte-stable: no clock (the timestamp is the release's decision time) and no random serial number (a UUID
 * v5 of the BOM's own content), so a retried commit writes the same bytes.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ArtifactManifest, Finding, GateResult, GitOpsReleaseInput } from '../../contract/types';
import { canonicalJson, readableJson } from '../common/canonical-json';
import { releasePaths } from './layout';
import { decidedAt, registryRef, sha256Ref } from './render';

export const ML_BOM_FILE = 'ml-bom.cdx.json';

/** Gates whose numeric metrics are the model's measured performance (activities/evaluate). */
const EVALUATION_GATES = ['fairness', 'robustness', 'explain', 'evaluate', 'evaluation'];
const FAIRNESS_GATE = 'fairness';
const LICENSE_GATE = 'license';
/** License values that say nothing was concluded: no license is claimed for them. */
const NO_LICENSE = new Set(['', 'unknown', 'none', 'noassertion', 'other']);
/** A fairness assessment's text stays a paragraph, whatever the number of findings. */
const MAX_TEXT = 2000;
/** UUID v5 namespace of modelrelease ML-BOM serial numbers (a v5 UUID of "modelrelease.io/ml-bom" in the URL namespace). */
const SERIAL_NAMESPACE = Buffer.from(
  uuidV5(Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex'), 'modelrelease.io/ml-bom').replace(/-/g, ''),
  'hex',
);

const SPDX_IDS = new Set<string>(createRequire(import.meta.url)('spdx-license-ids') as string[]);

/** The ML-BOM's repository path and bytes, for a release and its full manifest. */
export function renderMlBom(input: GitOpsReleaseInput, manifest: ArtifactManifest): { path: string; content: string } {
  const { name, version } = input.request.model;
  const { release } = releasePaths(name, version, input.request.environment);
  return { path: `${release}/${ML_BOM_FILE}`, content: readableJson(mlBom(input, manifest)) };
}

/** The CycloneDX 1.6 document. */
export function mlBom(input: GitOpsReleaseInput, manifest: ArtifactManifest): Record<string, unknown> {
  if (manifest.manifestDigest !== input.manifest.manifestDigest) {
    throw new Error(
      `the manifest's digest ${manifest.manifestDigest.slice(0, 12)}… is not the release's ${input.manifest.manifestDigest.slice(0, 12)}…: load the manifest the release names`,
    );
  }
  const { name, version } = input.request.model;
  const modelRef = `model:${name}@${version}`;
  const licenses = licensesOf(input.gates);
  const purl = huggingFacePurl(input.manifest.source, input.manifest.resolvedRevision);
  const model = {
    type: 'machine-learning-model',
    'bom-ref': modelRef,
    name,
    version,
    ...(purl === undefined ? {} : { purl }),
    ...(licenses === undefined ? {} : { licenses }),
    properties: [
      { name: 'modelrelease:manifest-digest', value: sha256Ref(input.manifest.manifestDigest) },
      { name: 'modelrelease:source', value: registryRef(input.manifest.source, input.manifest.resolvedRevision) },
      { name: 'modelrelease:total-size', value: String(manifest.totalSize) },
    ],
    modelCard: modelCard(input),
    components: [...manifest.files]
      .sort((a, b) => compare(a.path, b.path))
      .map((file) => ({
        type: 'file',
        'bom-ref': `${modelRef}#${file.path}`,
        name: file.path,
        hashes: [{ alg: 'SHA-256', content: file.sha256.replace(/^sha256:/, '') }],
        properties: [{ name: 'modelrelease:size', value: String(file.size) }],
      })),
  };
  const timestamp = decidedAt(input);
  const bom = {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    version: 1,
    metadata: {
      ...(timestamp === undefined ? {} : { timestamp }),
      tools: { components: [{ type: 'application', name: 'modelrelease' }] },
      properties: [
        { name: 'modelrelease:release-id', value: input.releaseId },
        { name: 'modelrelease:environment', value: input.request.environment },
        { name: 'modelrelease:policy', value: `${input.policy.name}@${sha256Ref(input.policy.digest)}` },
      ],
    },
    components: [model],
  };
  return { ...bom, serialNumber: `urn:uuid:${uuidV5(SERIAL_NAMESPACE, canonicalJson(bom))}` };
}

function modelCard(input: GitOpsReleaseInput): Record<string, unknown> {
  const evaluation = input.request.evaluation;
  const performanceMetrics = input.gates
    .filter((g) => EVALUATION_GATES.includes(g.gate))
    .flatMap((g) =>
      Object.entries(g.metrics)
        .filter((entry): entry is [string, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]))
        .sort(([a], [b]) => compare(a, b))
        .map(([metric, value]) => ({ type: `${g.gate}.${metric}`, value: String(value) })),
    );
  const fairness = input.gates.find((g) => g.gate === FAIRNESS_GATE);
  const fairnessAssessments = fairness === undefined ? [] : assessments(fairness, evaluation?.protected ?? []);
  return {
    modelParameters: {
      // The fairness and robustness gates judge a classifier's predicted label against the favourable outcome.
      ...(evaluation === undefined
        ? {}
        : { task: 'classification', outputs: [{ format: `label ${evaluation.label}` }] }),
    },
    ...(performanceMetrics.length === 0 ? {} : { quantitativeAnalysis: { performanceMetrics } }),
    ...(fairnessAssessments.length === 0 ? {} : { considerations: { fairnessAssessments } }),
  };
}

/** One assessment per protected attribute: the figures measured for it, and what the gate found. */
function assessments(gate: GateResult, declared: readonly string[]): Record<string, string>[] {
  const attributes = new Set(declared);
  for (const key of Object.keys(gate.metrics)) {
    const attribute = /^(.+)\.groups$/.exec(key)?.[1];
    if (attribute !== undefined) attributes.add(attribute);
  }
  return [...attributes].sort(compare).map((attribute) => {
    const figures = Object.entries(gate.metrics)
      .filter(([key]) => key.startsWith(`${attribute}.`) && key !== `${attribute}.groups`)
      .sort(([a], [b]) => compare(a, b))
      .map(([key, value]) => `${key.slice(attribute.length + 1)} ${String(value)}`);
    const findings = gate.findings.filter((f) => f.location === attribute || f.location.startsWith(`${attribute}=`));
    // A waived finding is still a harm: the waiver is its mitigation.
    const harms = findings.map((f) => f.message);
    const waived = findings.filter((f): f is Finding & { waivedBy: NonNullable<Finding['waivedBy']> } => !!f.waivedBy);
    return {
      groupAtRisk: `groups by ${attribute}`,
      harms: clip(
        [
          figures.length > 0 ? `measured: ${figures.join(', ')}` : 'no figure was measured',
          harms.length > 0 ? harms.join('; ') : `no fairness bound exceeded (verdict ${gate.verdict})`,
        ].join('. '),
      ),
      ...(waived.length > 0
        ? {
            mitigationStrategy: clip(
              waived.map((f) => `${f.ruleId} waived by ${f.waivedBy.approver}: ${f.waivedBy.justification}`).join('; '),
            ),
          }
        : {}),
    };
  });
}

/** The license gate's conclusion as CycloneDX licenses: an SPDX id, an SPDX expression, or a named license. */
function licensesOf(gates: readonly GateResult[]): unknown[] | undefined {
  const gate = gates.find((g) => g.gate === LICENSE_GATE);
  const value = gate?.metrics.license ?? gate?.annotations?.license;
  if (typeof value !== 'string' || NO_LICENSE.has(value.trim().toLowerCase())) return undefined;
  const license = value.trim();
  if (/\s(?:AND|OR|WITH)\s/.test(license)) return [{ expression: license, acknowledgement: 'concluded' }];
  return [
    {
      license: { ...(SPDX_IDS.has(license) ? { id: license } : { name: license }), acknowledgement: 'concluded' },
    },
  ];
}

/** `pkg:huggingface/<org>/<repo>@<commit>` for Hugging Face sources (the purl type for its models). */
function huggingFacePurl(source: string, revision: string): string | undefined {
  const match = /^hf:\/\/([^/@]+)\/([^/@]+)/.exec(source);
  if (!match || !/^[0-9a-f]{7,64}$/.test(revision)) return undefined;
  const [, org, repo] = match as unknown as [string, string, string];
  return `pkg:huggingface/${encodeURIComponent(org)}/${encodeURIComponent(repo)}@${revision}`;
}

/** RFC 9562 UUID version 5 (SHA-1, name-based) of `name` in `namespace` (16 bytes). */
function uuidV5(namespace: Buffer, name: string): string {
  const hash = createHash('sha1').update(namespace).update(name, 'utf8').digest();
  const bytes = Buffer.from(hash.subarray(0, 16));
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
