/**
 * Admission on the real API server of the delivery tests (scripts/cluster-harness.ts): the shipped
 * ValidatingAdmissionPolicy and the `mrel admission-webhook` behind the shipped ValidatingWebhookConfiguration, both
 * judging Deployments rendered by the real GitOps commit (kustomize-built from a real bare repository), with evidence
 * signed by the real attestation code. The webhook runs as the CLI does, in its own process, over TLS with
 * certificates openssl makes here. No Temporal: a unit-project file. Waits are bounded; nothing asserts durations.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { createGitOpsActivities, type GitOpsPublishInput } from '../../activities/gitops';
import { parseSigningKey } from '../../activities/gitops/attest';
import { annotationKey, overlayPath, releaseDir } from '../../activities/gitops/layout';
import { CONTAINER_NAME } from '../../activities/gitops/render';
import { FilesystemStore } from '../../activities/store';
import { manifestDigest, storeManifest } from '../../activities/store/manifest';
import { MODELPACK } from '../../contract/delivery';
import { ATTESTATION_FILE, keyIdOf, parseEnvelope } from '../../activities/trust/dsse';
import { freePorts, startCluster, waitUntil, type ApiResponse, type Cluster } from '../../scripts/cluster-harness';
import { SERVING_IMAGE, bareRepo, cloneOf, commitRelease, delivery, gitIn, releaseInput } from '../gitops/fixtures';

const exec = promisify(execFile);
const GOVERNED = 'production';
const UNGOVERNED = 'sandbox';
const ROOT = new URL('../../', import.meta.url).pathname;
const POLICY_FILE = join(ROOT, 'deploy/admission/validating-admission-policy.yaml');
const WEBHOOK_FILE = join(ROOT, 'deploy/admission/validating-webhook-configuration.yaml');

interface Deployment {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; [key: string]: unknown };
  spec: {
    template: {
      spec: {
        containers: { name: string; image: string }[];
        initContainers?: { name: string; image: string }[];
        volumes?: { name: string; image?: { reference: string } }[];
      };
    };
    [key: string]: unknown;
  };
}

let tmp: string;
let cluster: Cluster;
let bare: string;
let configDir: string;
/** The Deployment each model's release rendered, as kustomize builds its overlay. */
const rendered: Record<string, Deployment> = {};

const MODELS = { signed: 'sentiment', unsigned: 'unsigned', untrusted: 'untrusted', altered: 'altered' } as const;

function pem(key: KeyObject, type: 'pkcs8' | 'spki'): string {
  return key.export({ type, format: 'pem' }).toString();
}

/**
 * A release of `model` delivered as the policy's defaults say (the serving image by digest, the model's OCI artifact
 * in an image volume), with its manifest and the evidence bundle's blobs in `store`, as the workflow hands it to the
 * commit.
 */
async function withEvidence(store: FilesystemStore, model: string): Promise<GitOpsPublishInput> {
  const base = releaseInput({ model, environment: GOVERNED });
  const manifest = await storeManifest(store, {
    ...base.manifest,
    manifestDigest: manifestDigest(base.manifest.files),
  });
  const artifact = {
    reference: `127.0.0.1:5000/models/${model}@sha256:${'9'.repeat(64)}`,
    digest: `sha256:${'9'.repeat(64)}`,
    artifactType: MODELPACK.artifactType,
  };
  const input = { ...base, manifest: { ...manifest, artifact }, delivery: delivery() };
  const scan = await store.putBytes(`{"gate":"scan","model":"${model}","findings":[]}\n`, { path: 'scan.json' });
  return {
    ...input,
    evidence: {
      entries: [{ name: 'gates/scan.json', sha256: scan.sha256 }],
      index: {
        policy: { name: 'default', digest: input.policy.digest },
        decisions: input.approvals,
        refusedDecisions: [],
        gates: input.gates.map((g) => ({
          gate: g.gate,
          verdict: g.verdict,
          summary: g.summary,
          ...(g.gate === 'scan' ? { evidenceSha256: scan.sha256 } : {}),
        })),
      },
    },
  };
}

async function kustomizeDeployment(dir: string, model: string): Promise<Deployment> {
  const { stdout } = await exec('kubectl', ['kustomize', join(dir, overlayPath(model, GOVERNED))]);
  const objects = parseAllDocuments(stdout).map((d) => d.toJS() as Deployment);
  const deployment = objects.find((o) => o.kind === 'Deployment');
  if (deployment === undefined) throw new Error(`the overlay of ${model} renders no Deployment`);
  return deployment;
}

/** A copy of a rendered Deployment under another name, changed by `edit`. */
function variant(model: keyof typeof MODELS, name: string, edit: (d: Deployment) => void = () => {}): Deployment {
  const copy = structuredClone(rendered[MODELS[model]] as Deployment);
  copy.metadata.name = name;
  edit(copy);
  return copy;
}

async function create(object: Deployment, namespace = GOVERNED, dryRun = false): Promise<ApiResponse> {
  const group = object.apiVersion.includes('/') ? `apis/${object.apiVersion}` : `api/${object.apiVersion}`;
  const plural = `${object.kind.toLowerCase()}s`;
  const body = { ...object, metadata: { ...object.metadata, namespace } };
  return cluster.api('POST', `/${group}/namespaces/${namespace}/${plural}${dryRun ? '?dryRun=All' : ''}`, body);
}

function messageOf(res: ApiResponse): string {
  return typeof res.body === 'object' ? String(res.body.message ?? '') : String(res.body);
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelrelease-admission-'));
  cluster = await startCluster({ dir: join(tmp, 'cluster') });
  await cluster.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: GOVERNED, labels: { 'modelrelease.io/governed': 'true' } },
  });
  await cluster.ensureNamespace(UNGOVERNED);

  // The release signing key, trusted through config/signing-keys/<keyid>.pub; and a key nobody trusts.
  const trusted = generateKeyPairSync('ed25519');
  const stranger = generateKeyPairSync('ed25519');
  configDir = join(tmp, 'config');
  await mkdir(join(configDir, 'signing-keys'), { recursive: true });
  await writeFile(join(configDir, 'signing-keys', `${keyIdOf(trusted.publicKey)}.pub`), pem(trusted.publicKey, 'spki'));

  bare = await bareRepo(tmp);
  const store = new FilesystemStore(join(tmp, 'store'));
  const publish = async (model: string, key?: KeyObject): Promise<void> => {
    const activities = createGitOpsActivities({
      repoUrl: bare,
      workRoot: join(tmp, 'work'),
      store,
      ...(key === undefined ? {} : { signingKey: parseSigningKey(pem(key, 'pkcs8'), 'test key') }),
    });
    await commitRelease(activities, await withEvidence(store, model));
  };
  await publish(MODELS.signed, trusted.privateKey);
  await publish(MODELS.unsigned);
  await publish(MODELS.untrusted, stranger.privateKey);
  await publish(MODELS.altered, trusted.privateKey);

  // After the fact, someone edits the signed Statement of `altered` (its bundle digest) and keeps the signature.
  const { dir } = await cloneOf(bare, tmp);
  const file = join(dir, releaseDir(MODELS.altered, '1.4.0', GOVERNED), ATTESTATION_FILE);
  const envelope = parseEnvelope(await readFile(file));
  const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as {
    subject: { name: string; digest: { sha256: string } }[];
  };
  for (const s of statement.subject) if (s.name === 'bundle.json') s.digest.sha256 = 'f'.repeat(64);
  envelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
  await writeFile(file, JSON.stringify(envelope, null, 2));
  const git = gitIn(dir);
  await git.raw(['commit', '-q', '-am', 'Edit the evidence of altered']);
  await git.raw(['push', '-q', 'origin', 'HEAD:refs/heads/main']);

  for (const model of Object.values(MODELS)) rendered[model] = await kustomizeDeployment(dir, model);
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 120_000);

describe('the ValidatingAdmissionPolicy (CEL, in the API server)', () => {
  beforeAll(async () => {
    await cluster.kubectlOk(['apply', '-f', POLICY_FILE]);
    // The API server picks a new policy up within a moment: until then the probe is admitted (as a dry run).
    await waitUntil('the policy in force', async () =>
      (
        await create(
          variant('signed', 'probe', (d) => (d.metadata.annotations = {})),
          GOVERNED,
          true,
        )
      ).status === 403
        ? true
        : undefined,
    );
  });

  it('type-checks cleanly against Deployments', async () => {
    const policy = JSON.parse(
      await cluster.kubectlOk(['get', 'validatingadmissionpolicy', 'modelrelease-governed-workloads', '-o', 'json']),
    ) as { status?: { typeChecking?: { expressionWarnings?: unknown[] } } };
    expect(policy.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it('admits the Deployment a release rendered, with its annotations and images by digest', async () => {
    const deployment = variant('signed', 'sentiment');
    // What the policy reads is what the renderer wrote.
    expect(deployment.metadata.annotations?.[annotationKey('release-id')]).toBe(
      `release/${MODELS.signed}/1.4.0/${GOVERNED}`,
    );
    expect(deployment.metadata.annotations?.[annotationKey('scan-verdict')]).toBe('pass');
    expect(deployment.metadata.annotations?.[annotationKey('fairness-verdict')]).toBe('warn');
    const res = await create(deployment);
    expect(res.status, messageOf(res)).toBe(201);
  });

  it('refuses a Deployment without the release id, naming the annotation', async () => {
    const res = await create(
      variant('signed', 'no-release-id', (d) => delete d.metadata.annotations?.[annotationKey('release-id')]),
    );
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(
      `Deployment no-release-id lacks ${annotationKey('release-id')}: governed namespaces run only what a modelrelease release commits`,
    );
  });

  it('refuses a Deployment with a failing verdict, naming the gate', async () => {
    const res = await create(
      variant('signed', 'failed-scan', (d) => {
        (d.metadata.annotations as Record<string, string>)[annotationKey('scan-verdict')] = 'fail';
      }),
    );
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(`has gates that did not pass: ${annotationKey('scan-verdict')}=fail`);
  });

  it('refuses a Deployment whose container or init container runs an image by tag', async () => {
    const byTag = await create(
      variant('signed', 'by-tag', (d) => {
        const container = d.spec.template.spec.containers[0] as { name: string; image: string };
        container.image = '127.0.0.1:5000/modelrelease/model-server:1.0';
      }),
    );
    expect(byTag.status).toBe(403);
    expect(messageOf(byTag)).toContain(
      `runs images not pinned by digest: ${CONTAINER_NAME}=127.0.0.1:5000/modelrelease/model-server:1.0`,
    );
    const initByTag = await create(
      variant('signed', 'init-by-tag', (d) => {
        d.spec.template.spec.initContainers = [{ name: 'fetch', image: 'busybox' }];
      }),
    );
    expect(initByTag.status).toBe(403);
    expect(messageOf(initByTag)).toContain('runs images not pinned by digest: fetch=busybox');
  });

  it('refuses a Deployment that mounts the model artifact by tag', async () => {
    const deployment = variant('signed', 'model-by-tag', (d) => {
      const volume = d.spec.template.spec.volumes?.find((v) => v.image !== undefined);
      if (volume?.image === undefined) throw new Error('the rendered Deployment mounts no image volume');
      volume.image.reference = '127.0.0.1:5000/models/sentiment:latest';
    });
    const res = await create(deployment);
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(
      'mounts image volumes not pinned by digest: model=127.0.0.1:5000/models/sentiment:latest',
    );
  });

  it('leaves namespaces without the governed label alone', async () => {
    const res = await create(
      variant('signed', 'anything-goes', (d) => {
        d.metadata.annotations = {};
        (d.spec.template.spec.containers[0] as { image: string }).image = 'example/app:1';
      }),
      UNGOVERNED,
    );
    expect(res.status, messageOf(res)).toBe(201);
  });

  it('judges a KServe InferenceService alike', async () => {
    await cluster.apply({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'inferenceservices.serving.kserve.io' },
      spec: {
        group: 'serving.kserve.io',
        scope: 'Namespaced',
        names: { kind: 'InferenceService', plural: 'inferenceservices', singular: 'inferenceservice' },
        versions: [
          {
            name: 'v1beta1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    });
    const signed = rendered[MODELS.signed] as Deployment;
    const isvc = (name: string, image: string): Deployment =>
      ({
        apiVersion: 'serving.kserve.io/v1beta1',
        kind: 'InferenceService',
        metadata: { name, annotations: signed.metadata.annotations },
        spec: { predictor: { containers: [{ name: 'kserve-container', image }] } },
      }) as unknown as Deployment;
    // The CRD is served within a moment of its creation.
    const admitted = await waitUntil('the InferenceService resource served', async () => {
      const res = await create(isvc('pinned', SERVING_IMAGE), GOVERNED, true);
      return res.status === 404 ? undefined : res;
    });
    expect(admitted.status, messageOf(admitted)).toBe(201);
    const byTag = await create(isvc('by-tag', 'kserve/sklearnserver:latest'), GOVERNED, true);
    expect(byTag.status).toBe(403);
    expect(messageOf(byTag)).toContain(
      'InferenceService by-tag runs images not pinned by digest: kserve-container=kserve/sklearnserver:latest',
    );
  });
});

describe('mrel admission-webhook (signed evidence, over TLS)', () => {
  let webhook: ChildProcess;
  let output = '';
  let caCert: string;
  let url: string;

  beforeAll(async () => {
    const certs = join(tmp, 'certs');
    await mkdir(certs);
    const openssl = (...args: string[]) => exec('openssl', args, { cwd: certs });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca');
    await openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    await writeFile(join(certs, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    await openssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
    caCert = await readFile(join(certs, 'ca.crt'), 'utf8');

    const [port] = (await freePorts(1)) as [number];
    url = `https://127.0.0.1:${port}/validate`;
    webhook = spawn(
      join(ROOT, 'node_modules/.bin/tsx'),
      [
        join(ROOT, 'client/mrel.ts'),
        'admission-webhook',
        '--listen',
        `127.0.0.1:${port}`,
        '--tls-cert',
        join(certs, 'server.crt'),
        '--tls-key',
        join(certs, 'server.key'),
        '--gitops',
        bare,
        '--config',
        configDir,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    webhook.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    webhook.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    await waitUntil(
      'the webhook listening',
      async () => {
        if (webhook.exitCode !== null) throw new Error(`the webhook exited ${webhook.exitCode}: ${output}`);
        return output.includes('admission webhook listening on') ? true : undefined;
      },
      { timeoutMs: 90_000 },
    );

    const configuration = parse(await readFile(WEBHOOK_FILE, 'utf8')) as {
      webhooks: { clientConfig: Record<string, string> }[];
    };
    for (const w of configuration.webhooks) w.clientConfig = { url, caBundle: Buffer.from(caCert).toString('base64') };
    await cluster.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(configuration) });
    await waitUntil('the webhook in force', async () => {
      const res = await create(variant('unsigned', 'probe'), GOVERNED, true);
      return res.status === 403 && messageOf(res).includes('signed-evidence.modelrelease.io') ? true : undefined;
    });
  }, 180_000);

  afterAll(async () => {
    if (webhook?.exitCode === null) {
      webhook.kill('SIGTERM');
      await new Promise((ok) => webhook.once('exit', ok));
    }
  });

  it('admits a Deployment whose release evidence is signed by a trusted key', async () => {
    const res = await create(variant('signed', 'signed'));
    expect(res.status, messageOf(res)).toBe(201);
    expect(output).toMatch(
      new RegExp(
        `allowed CREATE Deployment ${GOVERNED}/signed: release release/${MODELS.signed}/1\\.4\\.0/${GOVERNED} verified`,
      ),
    );
  });

  it('refuses a release without an attestation', async () => {
    const res = await create(variant('unsigned', 'unsigned'));
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(
      `no attestation.dsse.json in ${releaseDir(MODELS.unsigned, '1.4.0', GOVERNED)} at`,
    );
    expect(messageOf(res)).toContain("the release's evidence is not signed");
  });

  it('refuses an attestation altered after signing', async () => {
    const res = await create(variant('altered', 'altered'));
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain('attestation.dsse.json');
    expect(messageOf(res)).toContain('does not verify: the payload or signature was altered');
  });

  it('refuses evidence signed by a key that is not trusted', async () => {
    const res = await create(variant('untrusted', 'untrusted'));
    expect(res.status).toBe(403);
    expect(messageOf(res)).toMatch(/does not verify: signatures\[0\]: key [0-9a-f]{16}… is not a trusted signing key/);
  });

  it('refuses an update that swaps the image for one the release did not attest', async () => {
    const swapped = `127.0.0.1:5000/modelrelease/model-server@sha256:${'e'.repeat(64)}`;
    const res = await cluster.api(
      'PATCH',
      `/apis/apps/v1/namespaces/${GOVERNED}/deployments/signed`,
      { spec: { template: { spec: { containers: [{ name: CONTAINER_NAME, image: swapped }] } } } },
      'application/strategic-merge-patch+json',
    );
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(`container ${CONTAINER_NAME} image ${swapped} is not among the attested images`);
  });

  it('refuses a model artifact other than the one the release attested', async () => {
    const other = `127.0.0.1:5000/models/${MODELS.signed}@sha256:${'8'.repeat(64)}`;
    const res = await create(
      variant('signed', 'other-model', (d) => {
        for (const v of d.spec.template.spec.volumes ?? []) if (v.image !== undefined) v.image.reference = other;
      }),
      GOVERNED,
      true,
    );
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(`volume model image ${other} is not among the attested images`);
  });

  it('refuses a signed release applied to another environment', async () => {
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'staging', labels: { 'modelrelease.io/governed': 'true' } },
    });
    const res = await create(variant('signed', 'elsewhere'), 'staging', true);
    expect(res.status).toBe(403);
    expect(messageOf(res)).toContain(`the release is for environment ${GOVERNED}, not namespace staging`);
  });

  it('answers only AdmissionReviews, and refuses what it cannot read', async () => {
    const post = (body: string) =>
      new Promise<{ status: number; body: string }>((ok, fail) => {
        const req = httpsRequest(url, { method: 'POST', ca: caCert, headers: { 'content-type': 'application/json' } });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => ok({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', fail);
        req.end(body);
      });
    expect((await post('not json')).status).toBe(400);
    expect(
      (await post(JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }))).status,
    ).toBe(400);
    const review = (object: unknown) =>
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u-1', operation: 'CREATE', namespace: GOVERNED, object },
      });
    const notAWorkload = JSON.parse((await post(review({ kind: 'ConfigMap', metadata: { name: 'x' } }))).body) as {
      response: { uid: string; allowed: boolean; status?: { message: string } };
    };
    expect(notAWorkload.response).toMatchObject({ uid: 'u-1', allowed: false });
    expect(notAWorkload.response.status?.message).toContain('only Deployments and InferenceServices');
  });

  it('refuses everything while the webhook is down (failurePolicy Fail)', async () => {
    webhook.kill('SIGTERM');
    await new Promise((ok) => webhook.once('exit', ok));
    expect(output).toContain('admission webhook stopped (SIGTERM)');
    const res = await create(variant('signed', 'while-down'), GOVERNED, true);
    expect(res.status).toBe(500);
    expect(messageOf(res)).toContain('failed calling webhook "signed-evidence.modelrelease.io"');
  });
});
