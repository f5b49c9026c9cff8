/**
 * The DSSE reader shared by the admission webhook, `mrel verify` and the attestation writer: PAE as the DSSE spec
 * defines it, signatures checked against trusted keys by key id, and envelopes, Statements and key files that are
 * not what they claim refused with the field named.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AttestationError,
  IN_TOTO_PAYLOAD_TYPE,
  RELEASE_PREDICATE_TYPE,
  STATEMENT_TYPE,
  keyIdOf,
  loadTrustedKeys,
  pae,
  parseEnvelope,
  parseReleaseStatement,
  parseTrustedKey,
  signEnvelope,
  subjectSha256,
  verifyEnvelope,
} from '../../activities/trust/dsse';

const exec = promisify(execFile);
const signer = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const spki = (key: typeof signer.publicKey) => key.export({ type: 'spki', format: 'pem' }).toString();

const statement = {
  _type: STATEMENT_TYPE,
  subject: [
    { name: 'bundle.json', digest: { sha256: 'a'.repeat(64) } },
    { name: 'model-manifest', digest: { sha256: 'c'.repeat(64) } },
  ],
  predicateType: RELEASE_PREDICATE_TYPE,
  predicate: {
    releaseId: 'release/m/1/prod',
    model: 'm',
    version: '1',
    environment: 'prod',
    policy: {},
    approvals: [],
  },
};
const payload = Buffer.from(JSON.stringify(statement));

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelrelease-dsse-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('DSSE envelopes', () => {
  it('encodes PAE as the DSSE v1 spec does', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
    // Lengths are bytes, not characters.
    expect(pae('t', Buffer.from('é')).toString()).toBe('DSSEv1 1 t 2 é');
  });

  it('names a key by the sha256 of its SPKI DER, as openssl computes it', async () => {
    const pemFile = join(tmp, 'key.pem');
    await writeFile(pemFile, spki(signer.publicKey));
    const { stdout } = await exec('sh', [
      '-c',
      `openssl pkey -pubin -in ${pemFile} -outform DER | openssl dgst -sha256 -r`,
    ]);
    expect(keyIdOf(signer.publicKey)).toBe(stdout.split(' ')[0]);
    expect(keyIdOf(signer.privateKey)).toBe(keyIdOf(signer.publicKey));
  });

  it('verifies a signature by a trusted key, and only that', () => {
    const trusted = [parseTrustedKey(spki(signer.publicKey), 'signing-keys/a.pub')];
    const envelope = parseEnvelope(JSON.stringify(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, signer.privateKey)));
    const ok = verifyEnvelope(envelope, trusted);
    expect(ok).toMatchObject({ ok: true, keyid: keyIdOf(signer.publicKey), keySource: 'signing-keys/a.pub' });
    const statementRead = parseReleaseStatement(ok.payload);
    expect(statementRead.predicate.releaseId).toBe('release/m/1/prod');
    expect(subjectSha256(statementRead, 'model-manifest')).toBe('c'.repeat(64));

    const altered = {
      ...envelope,
      payload: Buffer.from(JSON.stringify({ ...statement, subject: [] })).toString('base64'),
    };
    expect(verifyEnvelope(altered, trusted)).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('does not verify: the payload or signature was altered')],
    });
    const retyped = { ...envelope, payloadType: 'application/json' };
    expect(verifyEnvelope(retyped, trusted, 'application/json').ok).toBe(false);

    const foreign = signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, stranger.privateKey);
    expect(verifyEnvelope(foreign, trusted).problems).toEqual([
      `signatures[0]: key ${keyIdOf(stranger.publicKey).slice(0, 16)}… is not a trusted signing key`,
    ]);
    // A signature that hides its key id is tried against every trusted key, and still must verify.
    const anonymous = { ...foreign, signatures: [{ keyid: '', sig: foreign.signatures[0]?.sig ?? '' }] };
    expect(verifyEnvelope(anonymous, trusted).ok).toBe(false);
    expect(verifyEnvelope(envelope, []).problems[0]).toContain('no trusted signing keys');
  });

  it('refuses envelopes and Statements of the wrong shape, naming the field', () => {
    const bad = (text: string) => () => parseEnvelope(text, 'x/attestation.dsse.json');
    expect(bad('{')).toThrow('x/attestation.dsse.json is not JSON');
    expect(bad('{"payloadType":"t","payload":"%%%","signatures":[{"sig":"AA=="}]}')).toThrow(
      'payload must be a base64 string',
    );
    expect(bad('{"payloadType":"t","payload":"","signatures":[]}')).toThrow('signatures must be a list');
    expect(bad('{"payloadType":"t","payload":"","signatures":[{"keyid":"k"}]}')).toThrow('signatures[0].sig');
    expect(() => parseReleaseStatement(Buffer.from(JSON.stringify({ ...statement, _type: 'x' })))).toThrow(
      `_type must be ${STATEMENT_TYPE}`,
    );
    expect(() =>
      parseReleaseStatement(Buffer.from(JSON.stringify({ ...statement, predicate: { releaseId: 'r' } }))),
    ).toThrow('predicate.model must be a non-empty string');
    expect(() =>
      parseReleaseStatement(
        Buffer.from(JSON.stringify({ ...statement, subject: [{ name: 'a', digest: { sha256: 'XYZ' } }] })),
      ),
    ).toThrow('subject[0].digest.sha256 must be lower-case hex');
  });
});

describe('trusted keys (config/signing-keys/<keyid>.pub)', () => {
  it('loads each key under its key id, and none from a folder that does not exist', async () => {
    const dir = join(tmp, 'keys');
    await mkdir(dir);
    await writeFile(join(dir, `${keyIdOf(signer.publicKey)}.pub`), spki(signer.publicKey));
    await writeFile(join(dir, 'README.md'), 'not a key');
    const keys = await loadTrustedKeys(dir);
    expect(keys.map((k) => k.keyid)).toEqual([keyIdOf(signer.publicKey)]);
    expect(await loadTrustedKeys(join(tmp, 'absent'))).toEqual([]);
  });

  it('refuses a file whose name is not its key id, or that holds no Ed25519 key', async () => {
    const dir = join(tmp, 'bad-keys');
    await mkdir(dir);
    await writeFile(join(dir, 'release.pub'), spki(signer.publicKey));
    await expect(loadTrustedKeys(dir)).rejects.toThrow(
      `release.pub: the key's id is ${keyIdOf(signer.publicKey)}; name the file ${keyIdOf(signer.publicKey)}.pub`,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    expect(() => parseTrustedKey(spki(rsa), 'rsa.pub')).toThrow('rsa.pub: a rsa key; release signing keys are Ed25519');
    expect(() => parseTrustedKey('garbage', 'junk.pub')).toThrow(AttestationError);
  });
});
