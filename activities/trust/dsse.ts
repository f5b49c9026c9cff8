/**
 * DSSE envelopes and in-toto Statements: the one reader (and signer) of a release's `attestation.dsse.json`, shared by
 * the GitOps commit that writes it, `mrel verify` and the admission webhook that check it.
 *
 *   envelope  {payloadType, payload: base64(Statement), signatures: [{keyid, sig: base64(Ed25519(PAE))}]}
 *   PAE       "DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload   (lengths in bytes, decimal)
 *   keyid     hex sha256 of the public key's SPKI DER; trusted keys are `config/signing-keys/<keyid>.pub` (SPKI PEM)
 *
 * Pure apart from loadTrustedKeys (which reads one folder): nothing here reads a clock, and Ed25519 signatures are
 * deterministic, so the same Statement signed by the same key gives the same bytes. Messages name the field that is
 * wrong and never quote the envelope's content.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProductError } from '../../contract/errors';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const RELEASE_PREDICATE_TYPE = 'https://modelrelease.io/release/v1';
/** The file name of the envelope beside `bundle.json` in a release folder. */
export const ATTESTATION_FILE = 'attestation.dsse.json';
/** Subject names the Statement gives the bundle index and the model manifest; every other subject is an image. */
export const BUNDLE_SUBJECT = 'bundle.json';
export const MANIFEST_SUBJECT = 'model-manifest';
/** Suffix of a trusted public key's file in the signing-keys folder. */
export const TRUSTED_KEY_SUFFIX = '.pub';

/** Envelopes are small (a Statement of digests): anything larger is refused before it is decoded. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;
const MAX_SIGNATURES = 16;

export interface DsseSignature {
  /** Hex sha256 of the signer's SPKI DER. */
  keyid: string;
  /** Base64 Ed25519 signature over PAE(payloadType, payload bytes). */
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  /** Base64 of the payload bytes. */
  payload: string;
  signatures: DsseSignature[];
}

export interface StatementSubject {
  name: string;
  /** Algorithm → lower-case hex digest (`{sha256: "…"}`). */
  digest: Record<string, string>;
}

export interface InTotoStatement<P = Record<string, unknown>> {
  _type: typeof STATEMENT_TYPE;
  subject: StatementSubject[];
  predicateType: string;
  predicate: P;
}

/** The predicate of a release Statement; `policy` and `approvals` are the release's, as the evidence records them. */
export interface ReleasePredicate {
  releaseId: string;
  model: string;
  version: string;
  environment: string;
  policy: unknown;
  approvals: unknown[];
  [key: string]: unknown;
}

export type ReleaseStatement = InTotoStatement<ReleasePredicate>;

/** A public key the verifier trusts, with where it came from (a file name, for messages). */
export interface TrustedKey {
  keyid: string;
  key: KeyObject;
  source: string;
}

/** An envelope or Statement that cannot be read, or a trusted key file that cannot be used. */
export class AttestationError extends ProductError {
  readonly code = 'InvalidAttestation';
  readonly permanent = true;
}

/** Pre-authentication encoding (DSSE v1): what is signed, so that the type cannot be swapped under a signature. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** Hex sha256 of the key's SPKI DER (for a private key, of its public half). */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Signs `payload` with an Ed25519 private key: a one-signature envelope. */
export function signEnvelope(payloadType: string, payload: Uint8Array, privateKey: KeyObject): DsseEnvelope {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new AttestationError('the release signing key must be an Ed25519 private key (PKCS8 PEM)');
  }
  const sig = sign(null, pae(payloadType, payload), privateKey).toString('base64');
  return {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: [{ keyid: keyIdOf(privateKey), sig }],
  };
}

/**
 * Reads an envelope from its file's bytes, checking its shape only (not its signatures). `source` names the file in
 * messages. Throws AttestationError.
 */
export function parseEnvelope(bytes: Uint8Array | string, source: string = ATTESTATION_FILE): DsseEnvelope {
  const length = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (length > MAX_ENVELOPE_BYTES) {
    throw new AttestationError(`${source}: ${length} bytes, more than the ${MAX_ENVELOPE_BYTES} an envelope may have`);
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new AttestationError(`${source} is not JSON: expected a DSSE envelope`);
  }
  if (!isRecord(value)) throw new AttestationError(`${source} is not a JSON object: expected a DSSE envelope`);
  const { payloadType, payload, signatures } = value;
  if (typeof payloadType !== 'string' || payloadType === '') {
    throw new AttestationError(`${source}: payloadType must be a non-empty string`);
  }
  if (typeof payload !== 'string' || !isBase64(payload)) {
    throw new AttestationError(`${source}: payload must be a base64 string`);
  }
  if (!Array.isArray(signatures) || signatures.length === 0 || signatures.length > MAX_SIGNATURES) {
    throw new AttestationError(`${source}: signatures must be a list of 1 to ${MAX_SIGNATURES} signatures`);
  }
  const parsed = signatures.map((s: unknown, i): DsseSignature => {
    if (!isRecord(s)) throw new AttestationError(`${source}: signatures[${i}] must be an object {keyid, sig}`);
    if (s.keyid !== undefined && typeof s.keyid !== 'string') {
      throw new AttestationError(`${source}: signatures[${i}].keyid must be a string`);
    }
    if (typeof s.sig !== 'string' || s.sig === '' || !isBase64(s.sig)) {
      throw new AttestationError(`${source}: signatures[${i}].sig must be a non-empty base64 string`);
    }
    return { keyid: s.keyid ?? '', sig: s.sig };
  });
  return { payloadType, payload, signatures: parsed };
}

/** The payload bytes of an envelope (base64-decoded). */
export function envelopePayload(envelope: DsseEnvelope): Buffer {
  return Buffer.from(envelope.payload, 'base64');
}

export interface EnvelopeVerification {
  ok: boolean;
  /** The key id of the first trusted key whose signature verifies. */
  keyid?: string;
  /** Where that key came from (its file). */
  keySource?: string;
  /** The payload bytes; present whether or not a signature verified, so that callers can say more. */
  payload: Buffer;
  /** Why no signature verified, one line per signature; empty when ok. */
  problems: string[];
}

/**
 * Verifies the envelope's signatures against the trusted keys: ok when at least one signature is a valid Ed25519
 * signature over PAE(payloadType, payload) by a trusted key. A signature names its key by keyid; one without a keyid
 * is tried against every trusted key. `expectedPayloadType` (default in-toto) must match.
 */
export function verifyEnvelope(
  envelope: DsseEnvelope,
  trusted: readonly TrustedKey[],
  expectedPayloadType: string = IN_TOTO_PAYLOAD_TYPE,
): EnvelopeVerification {
  const payload = envelopePayload(envelope);
  if (envelope.payloadType !== expectedPayloadType) {
    return { ok: false, payload, problems: [`payloadType is not ${expectedPayloadType}`] };
  }
  if (trusted.length === 0) {
    return { ok: false, payload, problems: ['no trusted signing keys are configured (config/signing-keys/*.pub)'] };
  }
  const message = pae(envelope.payloadType, payload);
  const problems: string[] = [];
  for (const [i, signature] of envelope.signatures.entries()) {
    const candidates = signature.keyid === '' ? trusted : trusted.filter((k) => k.keyid === signature.keyid);
    if (candidates.length === 0) {
      problems.push(`signatures[${i}]: key ${shortId(signature.keyid)} is not a trusted signing key`);
      continue;
    }
    const signatureBytes = Buffer.from(signature.sig, 'base64');
    const match = candidates.find((k) => verifySafely(message, k.key, signatureBytes));
    if (match !== undefined) return { ok: true, keyid: match.keyid, keySource: match.source, payload, problems: [] };
    problems.push(
      signature.keyid === ''
        ? `signatures[${i}]: no trusted key verifies it`
        : `signatures[${i}]: the signature by key ${shortId(signature.keyid)} does not verify: the payload or signature was altered`,
    );
  }
  return { ok: false, payload, problems };
}

/** Reads an in-toto Statement v1 from payload bytes, checking its shape. Throws AttestationError. */
export function parseStatement(payload: Uint8Array, source = 'the attestation payload'): InTotoStatement {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new AttestationError(`${source} is not JSON: expected an in-toto Statement`);
  }
  if (!isRecord(value)) throw new AttestationError(`${source} is not a JSON object: expected an in-toto Statement`);
  if (value._type !== STATEMENT_TYPE) throw new AttestationError(`${source}: _type must be ${STATEMENT_TYPE}`);
  if (!Array.isArray(value.subject) || value.subject.length === 0) {
    throw new AttestationError(`${source}: subject must be a non-empty list`);
  }
  const subject = value.subject.map((s: unknown, i): StatementSubject => {
    if (!isRecord(s) || typeof s.name !== 'string' || s.name === '') {
      throw new AttestationError(`${source}: subject[${i}].name must be a non-empty string`);
    }
    if (!isRecord(s.digest) || Object.keys(s.digest).length === 0) {
      throw new AttestationError(`${source}: subject[${i}].digest must map an algorithm to a hex digest`);
    }
    const digest: Record<string, string> = {};
    for (const [algorithm, hex] of Object.entries(s.digest)) {
      if (typeof hex !== 'string' || !/^[0-9a-f]+$/.test(hex)) {
        throw new AttestationError(`${source}: subject[${i}].digest.${algorithm} must be lower-case hex`);
      }
      digest[algorithm] = hex;
    }
    return { name: s.name, digest };
  });
  if (typeof value.predicateType !== 'string' || value.predicateType === '') {
    throw new AttestationError(`${source}: predicateType must be a non-empty string`);
  }
  if (!isRecord(value.predicate)) throw new AttestationError(`${source}: predicate must be an object`);
  return { _type: STATEMENT_TYPE, subject, predicateType: value.predicateType, predicate: value.predicate };
}

/** A Statement of the release predicate type, with its predicate's identity fields checked. Throws AttestationError. */
export function parseReleaseStatement(payload: Uint8Array, source = 'the attestation payload'): ReleaseStatement {
  const statement = parseStatement(payload, source);
  if (statement.predicateType !== RELEASE_PREDICATE_TYPE) {
    throw new AttestationError(`${source}: predicateType must be ${RELEASE_PREDICATE_TYPE}`);
  }
  const p = statement.predicate;
  for (const field of ['releaseId', 'model', 'version', 'environment'] as const) {
    if (typeof p[field] !== 'string' || p[field] === '') {
      throw new AttestationError(`${source}: predicate.${field} must be a non-empty string`);
    }
  }
  if (p.approvals !== undefined && !Array.isArray(p.approvals)) {
    throw new AttestationError(`${source}: predicate.approvals must be a list`);
  }
  return {
    ...statement,
    predicate: { ...p, approvals: (p.approvals as unknown[] | undefined) ?? [] } as ReleasePredicate,
  };
}

/** The sha256 (hex) the Statement gives the subject `name`, or undefined when it names none. */
export function subjectSha256(statement: InTotoStatement<unknown>, name: string): string | undefined {
  return statement.subject.find((s) => s.name === name)?.digest.sha256;
}

/**
 * One trusted key from SPKI PEM text. `source` names its file in messages; with `expectedKeyId` (the file's name
 * without `.pub`), a key whose id differs is refused, so that a file name never claims a key it is not.
 */
export function parseTrustedKey(pem: string, source: string, expectedKeyId?: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new AttestationError(`${source} is not a PEM public key (SPKI): export the signing key's public half`, {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AttestationError(
      `${source}: a ${key.asymmetricKeyType ?? 'unknown'} key; release signing keys are Ed25519`,
    );
  }
  const keyid = keyIdOf(key);
  if (expectedKeyId !== undefined && expectedKeyId !== keyid) {
    throw new AttestationError(`${source}: the key's id is ${keyid}; name the file ${keyid}${TRUSTED_KEY_SUFFIX}`);
  }
  return { keyid, key, source };
}

/**
 * Every `<keyid>.pub` in `dir` (config/signing-keys). A folder that does not exist gives no keys; a file that is not
 * an Ed25519 SPKI PEM, or whose name is not its key id, throws AttestationError (a trust list is fixed, not guessed).
 */
export async function loadTrustedKeys(dir: string): Promise<TrustedKey[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new AttestationError(`cannot read the signing-keys folder ${dir}`, { cause: err });
  }
  const keys: TrustedKey[] = [];
  for (const name of names.filter((n) => n.endsWith(TRUSTED_KEY_SUFFIX)).sort()) {
    const file = join(dir, name);
    keys.push(parseTrustedKey(await readFile(file, 'utf8'), file, name.slice(0, -TRUSTED_KEY_SUFFIX.length)));
  }
  return keys;
}

function verifySafely(message: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Standard or URL-safe base64 (DSSE allows both); Buffer.from would silently skip anything else. */
function isBase64(text: string): boolean {
  return /^[A-Za-z0-9+/_-]*={0,2}$/.test(text) && text.replace(/=+$/, '').length % 4 !== 1;
}

function shortId(keyid: string): string {
  return /^[0-9a-f]{64}$/.test(keyid) ? `${keyid.slice(0, 16)}…` : JSON.stringify(keyid.slice(0, 20));
}
