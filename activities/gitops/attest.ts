/**
 * The release's signed evidence: an in-toto Statement v1 over the evidence bundle (`bundle.json`), the model manifest
 * and every image the workload runs, in a DSSE envelope signed with the release signing key (Ed25519), committed as
 * `attestation.dsse.json` beside `bundle.json`. The envelope format, PAE and key ids are activities/trust/dsse.ts's.
 *
 * The Statement is made from the rendered files themselves (the bundle's bytes, the workload's YAML), so it attests
 * what is committed, and `mrel verify` reads the same files back with the same helpers. Pure and byte-stable (only
 * configSnapshots reads files): the payload is canonical JSON (RFC 8785) and Ed25519 is deterministic, so a retried
 * commit writes the same bytes.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { GitOpsReleaseInput } from '../../contract/types';
import { ProductError } from '../../contract/errors';
import { canonicalJson, readableJson, sha256Hex } from '../common/canonical-json';
import {
  ATTESTATION_FILE,
  BUNDLE_SUBJECT,
  IN_TOTO_PAYLOAD_TYPE,
  MANIFEST_SUBJECT,
  RELEASE_PREDICATE_TYPE,
  STATEMENT_TYPE,
  keyIdOf,
  signEnvelope,
  type ReleaseStatement,
  type StatementSubject,
} from '../trust/dsse';
import type { EvidenceEntry, EvidenceIndex } from './evidence-bundle';
import { LAYOUT_FILES, releasePaths } from './layout';

export { ATTESTATION_FILE } from '../trust/dsse';

/** The release signing key: its private half and the key id trusted keys are filed under. */
export interface ReleaseSigningKey {
  privateKey: KeyObject;
  keyid: string;
}

/** A signing key that cannot be used (not PEM, not PKCS8, not Ed25519). Names the source, never the key. */
export class SigningKeyError extends ProductError {
  readonly code = 'InvalidSigningKey';
  readonly permanent = true;
}

/**
 * The release signing key from PKCS8 PEM text. `source` names where it came from (MREL_SIGNING_KEY_FILE's path, or the
 * variable MREL_SIGNING_KEY) in errors, which never quote the key.
 */
export function parseSigningKey(pem: string, source: string): ReleaseSigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new SigningKeyError(
      `${source} is not a PEM private key; make one with \`openssl genpkey -algorithm ed25519 -out release-signing.pem\``,
      { cause: err },
    );
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(
      `${source} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; the release signing key must be Ed25519`,
    );
  }
  return { privateKey, keyid: keyIdOf(privateKey) };
}

/** The overlay files that hold the release's workload (a Deployment patch, or an InferenceService). */
export function workloadPaths(model: string, version: string, environment: string): string[] {
  const { overlay } = releasePaths(model, version, environment);
  return [`${overlay}/${LAYOUT_FILES.deploymentPatch}`, `${overlay}/${LAYOUT_FILES.inferenceService}`];
}

/**
 * Every image a workload's YAML names: containers' and init containers' `image`, and image volumes'
 * `image.reference` (the model's OCI artifact). Sorted, each once.
 */
export function workloadImages(yamlText: string): string[] {
  const images = new Set<string>();
  const walk = (value: unknown, depth: number): void => {
    if (depth > 32 || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) walk(item, depth + 1);
      return;
    }
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (key === 'image' && typeof item === 'string') images.add(item);
      else if (key === 'image' && isRecord(item) && typeof item.reference === 'string') images.add(item.reference);
      else walk(item, depth + 1);
    }
  };
  walk(parse(yamlText), 0);
  return [...images].sort(compare);
}

/** The hex sha256 an image reference is pinned to (`…@sha256:<hex>`), or undefined for a tag. */
export function imageDigest(reference: string): string | undefined {
  return /@sha256:([0-9a-f]{64})$/.exec(reference)?.[1];
}

export interface AttestationInput {
  input: GitOpsReleaseInput;
  /** The rendered files of the release (repository path → content), bundle and workload included. */
  files: ReadonlyMap<string, string | Buffer>;
  /** The ML-BOM's path among `files`, pinned in the predicate when present. */
  mlBomPath?: string;
}

/**
 * The release Statement: subjects `bundle.json` (sha256 of the committed index), `model-manifest` (the manifest
 * digest) and each image the workload runs pinned by digest, named by its reference as the workload writes it; the
 * predicate says which release, policy and approvals it is. Throws when the files hold no bundle.
 */
export function releaseStatement({ input, files, mlBomPath }: AttestationInput): ReleaseStatement {
  const { name: model, version } = input.request.model;
  const { environment } = input.request;
  const paths = releasePaths(model, version, environment);
  const bundle = files.get(paths.bundle);
  if (bundle === undefined) {
    throw new Error(`the release's files hold no ${paths.bundle}: only a release with an evidence bundle is attested`);
  }
  const images = workloadPaths(model, version, environment)
    .flatMap((path) => {
      const text = files.get(path);
      return text === undefined ? [] : workloadImages(text.toString());
    })
    .filter((ref, i, all) => all.indexOf(ref) === i)
    .sort(compare);
  const imageSubjects: StatementSubject[] = images.flatMap((name) => {
    const sha256 = imageDigest(name);
    return sha256 === undefined ? [] : [{ name, digest: { sha256 } }];
  });
  const mlBom = mlBomPath === undefined ? undefined : files.get(mlBomPath);
  const summary = files.get(paths.evidence);
  return {
    _type: STATEMENT_TYPE,
    subject: [
      { name: BUNDLE_SUBJECT, digest: { sha256: sha256Hex(bundle) } },
      { name: MANIFEST_SUBJECT, digest: { sha256: bareHex(input.manifest.manifestDigest) } },
      ...imageSubjects,
    ],
    predicateType: RELEASE_PREDICATE_TYPE,
    predicate: {
      releaseId: input.releaseId,
      runId: input.runId,
      model,
      version,
      environment,
      policy: { name: input.policy.name, digest: `sha256:${bareHex(input.policy.digest)}` },
      approvals: input.approvals,
      gates: input.gates.map((g) => ({ gate: g.gate, verdict: g.verdict })),
      // Images the workload runs by tag cannot be subjects: listed so that a reader sees they are unattested.
      ...(images.length > imageSubjects.length ? { unpinnedImages: images.filter((i) => !imageDigest(i)) } : {}),
      ...(summary === undefined ? {} : { summary: { file: LAYOUT_FILES.evidence, sha256: sha256Hex(summary) } }),
      ...(mlBom === undefined || mlBomPath === undefined
        ? {}
        : { mlBom: { file: mlBomPath.slice(paths.release.length + 1), sha256: sha256Hex(mlBom) } }),
    },
  };
}

/**
 * `attestation.dsse.json` for the release: the Statement as canonical JSON, signed with `key`, the envelope written as
 * readable JSON. Returns its repository path and bytes.
 */
export function renderAttestation(
  attestation: AttestationInput,
  key: ReleaseSigningKey,
): { path: string; content: string } {
  const statement = releaseStatement(attestation);
  const payload = Buffer.from(canonicalJson(statement), 'utf8');
  const envelope = signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, key.privateKey);
  const { name, version } = attestation.input.request.model;
  const { release } = releasePaths(name, version, attestation.input.request.environment);
  return { path: `${release}/${ATTESTATION_FILE}`, content: readableJson(envelope) };
}

/** Bundle entry names of the config copies: the approvers file and the release's policy, as they were. */
export const APPROVERS_ENTRY = 'config/approvers.yaml';
export function policyEntry(policyName: string): string {
  return `config/policies/${policyName}.yaml`;
}

/**
 * Copies of the config files a release was judged by, as bundle entries: `config/approvers.yaml` and
 * `config/policies/<name>.yaml` from `configDir`, each only when its sha256 is the digest the evidence records (a file
 * changed since the release loaded it is not what the release used). The bundle digest then pins them, so approvals
 * can be checked against approvers.yaml as of the release's commit.
 */
export async function configSnapshots(
  configDir: string,
  index: Pick<EvidenceIndex, 'approvers' | 'policy'>,
): Promise<EvidenceEntry[]> {
  const wanted = [
    ...(index.approvers === undefined
      ? []
      : [{ name: APPROVERS_ENTRY, file: join(configDir, 'approvers.yaml'), digest: index.approvers.digest }]),
    ...(/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(index.policy.name)
      ? [
          {
            name: policyEntry(index.policy.name),
            file: join(configDir, 'policies', `${index.policy.name}.yaml`),
            digest: index.policy.digest,
          },
        ]
      : []),
  ];
  const entries: EvidenceEntry[] = [];
  for (const w of wanted) {
    let bytes: Buffer;
    try {
      bytes = await readFile(w.file);
    } catch {
      continue;
    }
    const sha256 = sha256Hex(bytes);
    if (sha256 === bareHex(w.digest)) entries.push({ name: w.name, sha256, bytes });
  }
  return entries;
}

function bareHex(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
