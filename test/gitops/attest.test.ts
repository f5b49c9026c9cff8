/**
 * The release's signed evidence as the gitops commit writes it: the CycloneDX 1.6 ML-BOM (checked against the official
 * JSON schema, shipped by @cyclonedx/cyclonedx-library) and the DSSE attestation (byte-stable, verifiable with the
 * public key alone).
 */
import { createPublicKey, generateKeyPairSync, verify as verifySignature } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { createGitOpsActivities, type GitOpsPublishInput } from '../../activities/gitops';
import { FilesystemStore } from '../../activities/store';
import { parseSigningKey, renderAttestation, releaseStatement } from '../../activities/gitops/attest';
import { mlBom, renderMlBom } from '../../activities/gitops/ml-bom';
import { renderRelease } from '../../activities/gitops/render';
import { renderEvidenceBundle } from '../../activities/gitops/evidence-bundle';
import { manifestDigest } from '../../activities/store/manifest';
import { pae, parseEnvelope } from '../../activities/trust/dsse';
import type { ArtifactManifest, GateResult } from '../../contract/types';
import { loadSettings, loadSigningKey } from '../../workers/settings';
import { bareRepo, cloneOf, commitRelease, deliveredRelease, releaseInput, test } from './fixtures';

const schemaDir = join(
  dirname(createRequire(import.meta.url).resolve('@cyclonedx/cyclonedx-library/package.json')),
  'res',
  'schema',
);

/** The official CycloneDX 1.6 JSON schema, with the schemas it references, as ajv checks it. */
async function cycloneDx16(): Promise<(doc: unknown) => { ok: boolean; errors: string[] }> {
  const load = async (name: string) => JSON.parse(await readFile(join(schemaDir, name), 'utf8')) as object;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // Formats of JSON Schema 2019 that ajv-formats leaves out: IRIs and internationalised e-mail addresses.
  ajv.addFormat('iri-reference', /^\S*$/);
  ajv.addFormat('idn-email', /^[^\s@]+@[^\s@]+$/);
  ajv.addSchema({
    ...(await load('spdx.SNAPSHOT.schema.json')),
    $id: 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json',
  });
  ajv.addSchema({
    ...(await load('jsf-0.82.SNAPSHOT.schema.json')),
    $id: 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json',
  });
  const validate = ajv.compile(await load('bom-1.6.SNAPSHOT.schema.json'));
  return (doc) => ({
    ok: validate(doc) === true,
    errors: (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`),
  });
}

const gate = (overrides: Partial<GateResult> & Pick<GateResult, 'gate'>): GateResult => ({
  verdict: 'pass',
  summary: '',
  metrics: {},
  findings: [],
  startedAt: '2025-01-01T10:00:00.000Z',
  finishedAt: '2025-01-01T10:01:00.000Z',
  ...overrides,
});

/** A release that went through every gate the ML-BOM reads: license, fairness, robustness. */
function evaluatedRelease() {
  const input = releaseInput();
  const manifest: ArtifactManifest = { ...input.manifest, manifestDigest: manifestDigest(input.manifest.files) };
  return {
    ...input,
    manifest,
    request: {
      ...input.request,
      evaluation: { dataset: 'file:///data/holdout.csv', label: 'approved', protected: ['sex'], favorable: '1' },
    },
    gates: [
      gate({ gate: 'license', metrics: { license: 'Apache-2.0', category: 'permissive' } }),
      gate({
        gate: 'fairness',
        verdict: 'warn',
        metrics: { 'sex.groups': 2, 'sex.demographicParityRatio': 0.78, 'judged.demographicParityRatio': 0.78 },
        findings: [
          {
            gate: 'fairness',
            ruleId: 'fairness.demographicParityRatio',
            severity: 'high',
            location: 'sex',
            message:
              'demographicParityRatio for sex is 0.78; judged on the point estimate, it is below the minimum 0.8',
            waivable: true,
            waivedBy: {
              approver: 'dana',
              justification: 'retraining scheduled',
              expiresAt: '2025-03-01T00:00:00.000Z',
            },
          },
        ],
      }),
      gate({ gate: 'robustness', metrics: { attack: 'fgsm', cleanAccuracy: 0.91, adversarialAccuracy: 0.83 } }),
    ],
  };
}

describe('ML-BOM', () => {
  it('is valid CycloneDX 1.6: the model with every file and hash, its license and model card', async () => {
    const validate = await cycloneDx16();
    const input = evaluatedRelease();
    const bom = mlBom(input, input.manifest) as {
      serialNumber: string;
      components: {
        components: { name: string; hashes: unknown }[];
        licenses: unknown;
        modelCard: {
          quantitativeAnalysis: { performanceMetrics: unknown[] };
          considerations: { fairnessAssessments: unknown[] };
        };
      }[];
    };
    const result = validate(bom);
    expect(result.errors).toEqual([]);
    expect(result.ok).toBe(true);

    const [model] = bom.components;
    expect(model).toMatchObject({ type: 'machine-learning-model', name: 'sentiment', version: '1.4.0' });
    expect(model?.components.map((f) => [f.name, f.hashes])).toEqual([
      ['group1-shard1of1.bin', [{ alg: 'SHA-256', content: 'a'.repeat(64) }]],
      ['model.json', [{ alg: 'SHA-256', content: 'b'.repeat(64) }]],
    ]);
    expect(model?.licenses).toEqual([{ license: { id: 'Apache-2.0', acknowledgement: 'concluded' } }]);
    expect(model?.modelCard.quantitativeAnalysis.performanceMetrics).toEqual(
      expect.arrayContaining([
        { type: 'robustness.cleanAccuracy', value: '0.91' },
        { type: 'fairness.sex.demographicParityRatio', value: '0.78' },
      ]),
    );
    expect(model?.modelCard.considerations.fairnessAssessments).toEqual([
      {
        groupAtRisk: 'groups by sex',
        harms:
          'measured: demographicParityRatio 0.78. demographicParityRatio for sex is 0.78; judged on the point estimate, it is below the minimum 0.8',
        mitigationStrategy: 'fairness.demographicParityRatio waived by dana: retraining scheduled',
      },
    ]);
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The schema really is applied: a misspelt component type is refused.
    expect(validate({ ...bom, components: [{ ...model, type: 'ml-model' }] }).ok).toBe(false);
  });

  it('is byte-stable, and its serial number follows its content', () => {
    const input = evaluatedRelease();
    const first = renderMlBom(input, input.manifest);
    expect(renderMlBom(structuredClone(input), structuredClone(input.manifest))).toEqual(first);
    expect(first.path).toBe('releases/sentiment/1.4.0/production/ml-bom.cdx.json');

    const files = [...input.manifest.files, { path: 'vocab.txt', size: 10, sha256: 'f'.repeat(64) }];
    const other = { ...input.manifest, files, manifestDigest: manifestDigest(files) };
    const changed = JSON.parse(renderMlBom({ ...input, manifest: other }, other).content) as { serialNumber: string };
    expect(changed.serialNumber).not.toBe((JSON.parse(first.content) as { serialNumber: string }).serialNumber);
  });

  it('refuses a manifest that is not the release’s', () => {
    const input = evaluatedRelease();
    expect(() => mlBom(input, { ...input.manifest, manifestDigest: 'e'.repeat(64) })).toThrow(/is not the release's/);
  });
});

describe('attestation', () => {
  const signingKey = () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    return parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'test key');
  };

  function renderedDelivery() {
    const input = deliveredRelease();
    const bundle = renderEvidenceBundle({
      model: 'sentiment',
      version: '1.4.0',
      environment: 'production',
      releaseId: input.releaseId,
      entries: [],
      index: { policy: { name: 'default', digest: 'd'.repeat(64) }, decisions: [], refusedDecisions: [], gates: [] },
    });
    return { input, bundle, files: renderRelease(input, { evidenceBundle: bundle }) };
  }

  it('signs a Statement of the bundle, the model and every image the workload runs, byte-stable', () => {
    const key = signingKey();
    const { input, bundle, files } = renderedDelivery();
    const first = renderAttestation({ input, files }, key);
    expect(renderAttestation({ input, files }, key)).toEqual(first);
    expect(first.path).toBe('releases/sentiment/1.4.0/production/attestation.dsse.json');

    const envelope = parseEnvelope(first.content);
    expect(envelope.signatures).toEqual([{ keyid: key.keyid, sig: expect.any(String) }]);
    const payload = Buffer.from(envelope.payload, 'base64');
    const publicKey = createPublicKey(key.privateKey);
    const signature = Buffer.from(envelope.signatures[0]!.sig, 'base64');
    expect(verifySignature(null, pae('application/vnd.in-toto+json', payload), publicKey, signature)).toBe(true);
    expect(verifySignature(null, pae('application/json', payload), publicKey, signature)).toBe(false);

    const statement = JSON.parse(payload.toString('utf8'));
    expect(statement).toEqual(releaseStatement({ input, files }));
    expect(statement.subject).toEqual([
      { name: 'bundle.json', digest: { sha256: bundle.digest.slice('sha256:'.length) } },
      { name: 'model-manifest', digest: { sha256: input.manifest.manifestDigest } },
      {
        name: `127.0.0.1:5000/modelrelease/model-server@sha256:${'5'.repeat(64)}`,
        digest: { sha256: '5'.repeat(64) },
      },
      { name: `127.0.0.1:5000/models/sentiment@sha256:${'9'.repeat(64)}`, digest: { sha256: '9'.repeat(64) } },
    ]);
    expect(statement.predicate).toMatchObject({
      releaseId: input.releaseId,
      model: 'sentiment',
      environment: 'production',
      approvals: input.approvals,
    });
  });

  it('refuses a signing key that is not an Ed25519 PKCS8 PEM, without quoting it', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => parseSigningKey(pem, 'MREL_SIGNING_KEY')).toThrow(
      /MREL_SIGNING_KEY holds a ec key; .* must be Ed25519/,
    );
    expect(() => parseSigningKey('not a key', 'MREL_SIGNING_KEY')).toThrow(
      /^MREL_SIGNING_KEY is not a PEM private key/,
    );
  });
});

describe('the worker setting', () => {
  test('MREL_SIGNING_KEY_FILE or MREL_SIGNING_KEY gives the key; a bad one stops the worker naming the variable', async ({
    tmp,
  }) => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const file = join(tmp, 'release-signing.pem');
    await writeFile(file, pem);
    const fromFile = await loadSigningKey(loadSettings({ MREL_SIGNING_KEY_FILE: file }));
    const fromEnv = await loadSigningKey(loadSettings({ MREL_SIGNING_KEY: pem }));
    expect(fromFile?.keyid).toMatch(/^[0-9a-f]{64}$/);
    expect(fromEnv?.keyid).toBe(fromFile?.keyid);
    expect(await loadSigningKey(loadSettings({}))).toBeUndefined();
    await expect(loadSigningKey(loadSettings({ MREL_SIGNING_KEY_FILE: join(tmp, 'missing.pem') }))).rejects.toThrow(
      /^environment variable MREL_SIGNING_KEY_FILE: .*missing\.pem cannot be read \(ENOENT\)/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const refused = loadSigningKey(loadSettings({ MREL_SIGNING_KEY: rsa.toString() }));
    await expect(refused).rejects.toThrow(/^environment variable MREL_SIGNING_KEY holds a rsa key/);
    await expect(refused).rejects.not.toThrow(/PRIVATE KEY/);
  });
});

describe('commitRelease without a signing key', () => {
  test('commits the ML-BOM but no attestation', async ({ tmp }) => {
    const store = new FilesystemStore(join(tmp, 'store'));
    const input = evaluatedRelease();
    const bare = await bareRepo(tmp);
    const activities = createGitOpsActivities({ repoUrl: bare, workRoot: join(tmp, 'work'), store });
    const publish: GitOpsPublishInput = {
      ...input,
      evidence: {
        entries: [],
        index: { policy: { name: 'default', digest: 'd'.repeat(64) }, decisions: [], refusedDecisions: [], gates: [] },
      },
    };
    const result = await commitRelease(activities, publish);
    const release = 'releases/sentiment/1.4.0/production';
    expect(result.paths).toContain(`${release}/ml-bom.cdx.json`);
    expect(result.paths).not.toContain(`${release}/attestation.dsse.json`);
    const { dir } = await cloneOf(bare, tmp);
    expect(await readFile(join(dir, release, 'ml-bom.cdx.json'), 'utf8')).toBe(
      renderMlBom(input, input.manifest).content,
    );
  });
});
