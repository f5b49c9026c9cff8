/**
 * SSH signatures as `ssh-keygen -Y sign` makes them (OpenSSH's PROTOCOL.sshsig), verified with node:crypto, and SSH
 * public keys as authorized_keys lines. Written here rather than taken from npm: sshpk (the well-kept SSH key library)
 * parses keys and raw SSH signatures but not the SSHSIG envelope, and no maintained package verifies it.
 *
 * Supported: ssh-ed25519, ecdsa-sha2-nistp256/384/521 and RSA keys (≥ 2048 bits) signing with rsa-sha2-256/512.
 * Refused: ssh-rsa (SHA-1) signatures, DSA, certificates and security-key (sk-) keys. Errors say why, never quoting
 * the input.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { SSH_KEY_TYPES, type SshKeyType } from '../../contract/decision-payload';
import { ProductError } from '../../contract/errors';

const MAGIC = Buffer.from('SSHSIG');
const SIG_VERSION = 1;
const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';
/** Far above any real signature (an RSA-16384 one is about 6 KiB armored): larger input is refused unread. */
const MAX_ARMOR_CHARS = 16 * 1024;
const MIN_RSA_BITS = 2048;

export { SSH_KEY_TYPES, type SshKeyType };
const isKeyType = (type: string): type is SshKeyType => (SSH_KEY_TYPES as readonly string[]).includes(type);

const CURVES: Record<string, { curve: string; crv: string; size: number; hash: string }> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', crv: 'P-256', size: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', crv: 'P-384', size: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', crv: 'P-521', size: 66, hash: 'sha512' },
};
const RSA_SIGNATURE_HASHES: Record<string, string> = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' };
const MESSAGE_HASHES = ['sha256', 'sha512'];

export type SshSigErrorCode =
  | 'bad-key'
  | 'unsupported-key'
  | 'bad-armor'
  | 'bad-format'
  | 'unsupported-algorithm'
  | 'wrong-namespace'
  | 'unknown-key'
  | 'bad-signature';

/** Why a key or signature was refused; `code` is stable, the message says what to do. Never retried. */
export class SshSigError extends ProductError {
  readonly permanent = true;
  constructor(
    readonly code: SshSigErrorCode,
    message: string,
  ) {
    super(message, { details: { code } });
  }
}

export interface SshPublicKey {
  type: SshKeyType;
  /** The key in SSH wire format: what signatures embed and fingerprints hash. */
  blob: Buffer;
  key: KeyObject;
  comment?: string;
}

export interface SshSignature {
  publicKey: SshPublicKey;
  namespace: string;
  hashAlgorithm: string;
  /** The signature's own algorithm: the key type, or rsa-sha2-256/512 for RSA keys. */
  algorithm: string;
  signature: Buffer;
  /** The decoded SSHSIG blob. */
  raw: Buffer;
}

/** `SHA256:<base64 without padding>` of the key's wire form: what `ssh-keygen -l` prints. */
export function fingerprint(key: SshPublicKey | Uint8Array): string {
  const blob = key instanceof Uint8Array ? key : key.blob;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** One authorized_keys line, `<type> <base64> [comment]` (the line of a .pub file), as a node KeyObject. */
export function parseAuthorizedKey(line: string): SshPublicKey {
  const [type, data, ...comment] = line.trim().split(/\s+/);
  if (type === undefined || data === undefined) {
    throw new SshSigError(
      'bad-key',
      'is not an SSH public key: give the line of its .pub file (`<type> <base64> [comment]`)',
    );
  }
  if (!isKeyType(type)) {
    throw new SshSigError('unsupported-key', `${unsupportedType(type)} (supported: ${SSH_KEY_TYPES.join(', ')})`);
  }
  const blob = strictBase64(data);
  if (blob === undefined)
    throw new SshSigError('bad-key', 'has a key that is not valid base64: copy the .pub line again');
  const key = parseKeyBlob(blob);
  if (key.type !== type) {
    throw new SshSigError('bad-key', `names type ${type} but holds a ${key.type} key: copy the .pub line again`);
  }
  return comment.length > 0 ? { ...key, comment: comment.join(' ') } : key;
}

/** An SSH public key in wire format. */
export function parseKeyBlob(blob: Buffer): SshPublicKey {
  const reader = new WireReader(blob, 'bad-key', 'the key is truncated or corrupt: copy the .pub line again');
  const type = reader.text();
  if (!isKeyType(type)) throw new SshSigError('unsupported-key', unsupportedType(type));
  let key: KeyObject;
  try {
    if (type === 'ssh-ed25519') {
      const x = reader.bytes();
      if (x.length !== 32)
        throw new SshSigError('bad-key', 'the Ed25519 key is not 32 bytes: copy the .pub line again');
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, format: 'jwk' });
    } else if (type === 'ssh-rsa') {
      const e = unsigned(reader.bytes());
      const n = unsigned(reader.bytes());
      if (n.length * 8 < MIN_RSA_BITS) {
        throw new SshSigError(
          'unsupported-key',
          `RSA keys need at least ${MIN_RSA_BITS} bits: make one with ssh-keygen -t rsa -b 3072`,
        );
      }
      key = createPublicKey({
        key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
        format: 'jwk',
      });
    } else {
      const curve = CURVES[type] as (typeof CURVES)[string];
      if (reader.text() !== curve.curve)
        throw new SshSigError('bad-key', `the key's curve does not match its type ${type}`);
      const point = reader.bytes();
      if (point.length !== 1 + 2 * curve.size || point[0] !== 4) {
        throw new SshSigError('bad-key', `the ${type} key is not an uncompressed point of its curve`);
      }
      key = createPublicKey({
        key: {
          kty: 'EC',
          crv: curve.crv,
          x: point.subarray(1, 1 + curve.size).toString('base64url'),
          y: point.subarray(1 + curve.size).toString('base64url'),
        },
        format: 'jwk',
      });
    }
  } catch (err) {
    if (err instanceof SshSigError) throw err;
    throw new SshSigError('bad-key', `the ${type} key is not a valid public key: copy the .pub line again`);
  }
  reader.end();
  return { type, blob, key };
}

/** Parses an armored `-----BEGIN SSH SIGNATURE-----` block; checks its form, not the signature. */
export function parseSshSignature(armored: string): SshSignature {
  const badArmor = (why: string) =>
    new SshSigError(
      'bad-armor',
      `the signature ${why}: give the whole text ssh-keygen -Y sign wrote, BEGIN and END lines included`,
    );
  if (armored.length > MAX_ARMOR_CHARS) throw badArmor(`is longer than ${MAX_ARMOR_CHARS} characters`);
  const text = armored.trim();
  if (!text.startsWith(ARMOR_BEGIN) || !text.endsWith(ARMOR_END)) throw badArmor('is not an armored SSH signature');
  const raw = strictBase64(text.slice(ARMOR_BEGIN.length, text.length - ARMOR_END.length).replace(/\s+/g, ''));
  if (raw === undefined || raw.length === 0) throw badArmor('is not valid base64 between its BEGIN and END lines');
  const reader = new WireReader(raw, 'bad-format', 'the signature is truncated or corrupt: sign again');
  if (!reader.fixed(MAGIC.length).equals(MAGIC)) throw new SshSigError('bad-format', 'the signature is not an SSHSIG');
  const version = reader.uint32();
  if (version !== SIG_VERSION) {
    throw new SshSigError(
      'bad-format',
      `the signature has SSHSIG version ${version}; only version ${SIG_VERSION} is known`,
    );
  }
  const publicKey = signatureKey(reader.bytes());
  const namespace = reader.text();
  reader.bytes(); // reserved: PROTOCOL.sshsig says verifiers ignore it
  const hashAlgorithm = reader.text();
  const inner = new WireReader(reader.bytes(), 'bad-format', 'the signature is truncated or corrupt: sign again');
  reader.end();
  const algorithm = inner.text();
  const signature = inner.bytes();
  inner.end();
  if (!MESSAGE_HASHES.includes(hashAlgorithm)) {
    throw new SshSigError(
      'unsupported-algorithm',
      'the signature hashes with an unknown algorithm (sha256 or sha512 are known)',
    );
  }
  const expected: string[] = publicKey.type === 'ssh-rsa' ? Object.keys(RSA_SIGNATURE_HASHES) : [publicKey.type];
  if (!expected.includes(algorithm)) {
    throw new SshSigError(
      'unsupported-algorithm',
      algorithm === 'ssh-rsa'
        ? 'the signature uses ssh-rsa (SHA-1), which is refused: sign with a current ssh-keygen (rsa-sha2-512)'
        : `a ${publicKey.type} key must sign with ${expected.join(' or ')}`,
    );
  }
  return { publicKey, namespace, hashAlgorithm, algorithm, signature, raw };
}

/**
 * Verifies an armored SSH signature over `message`: its namespace, that its key is one of `keys`, and the signature.
 * Returns the parsed signature (its key is the matching one of `keys`).
 */
export function verifySshSignature(
  armored: string,
  message: Uint8Array,
  options: { namespace: string; keys: readonly SshPublicKey[] },
): SshSignature {
  const sig = parseSshSignature(armored);
  if (sig.namespace !== options.namespace) {
    throw new SshSigError(
      'wrong-namespace',
      `the signature was made for another namespace than ${options.namespace}: sign with ssh-keygen -Y sign -n ${options.namespace}`,
    );
  }
  const key = options.keys.find((k) => k.blob.equals(sig.publicKey.blob));
  if (!key) {
    throw new SshSigError(
      'unknown-key',
      `the signature was made with key ${fingerprint(sig.publicKey)}, which is not one of the signer's keys`,
    );
  }
  const signed = Buffer.concat([
    MAGIC,
    wireString(options.namespace),
    wireString(''),
    wireString(sig.hashAlgorithm),
    wireString(createHash(sig.hashAlgorithm).update(message).digest()),
  ]);
  if (!verifies(key, sig, signed)) {
    throw new SshSigError(
      'bad-signature',
      'the signature does not match the signed content: it was made over other content, or is corrupt',
    );
  }
  return { ...sig, publicKey: key };
}

function verifies(key: SshPublicKey, sig: SshSignature, signed: Buffer): boolean {
  try {
    if (key.type === 'ssh-ed25519') return sig.signature.length === 64 && verify(null, signed, key.key, sig.signature);
    if (key.type === 'ssh-rsa')
      return verify(RSA_SIGNATURE_HASHES[sig.algorithm] as string, signed, key.key, sig.signature);
    const curve = CURVES[key.type] as (typeof CURVES)[string];
    // SSH carries ECDSA's r and s as two mpints; node takes them as one fixed-width r‖s.
    const reader = new WireReader(sig.signature, 'bad-signature', 'the ECDSA signature is corrupt: sign again');
    const r = unsigned(reader.bytes());
    const s = unsigned(reader.bytes());
    reader.end();
    if (r.length > curve.size || s.length > curve.size) return false;
    const rs = Buffer.concat([Buffer.alloc(curve.size - r.length), r, Buffer.alloc(curve.size - s.length), s]);
    return verify(curve.hash, signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, rs);
  } catch (err) {
    if (err instanceof SshSigError) throw err;
    return false;
  }
}

function signatureKey(blob: Buffer): SshPublicKey {
  try {
    return parseKeyBlob(blob);
  } catch (err) {
    if (err instanceof SshSigError && err.code === 'bad-key') {
      throw new SshSigError('bad-format', 'the public key inside the signature is corrupt: sign again');
    }
    throw err;
  }
}

function unsupportedType(type: string): string {
  if (type.startsWith('sk-'))
    return 'security-key (sk-) SSH keys are not supported yet: use an ed25519, ecdsa or rsa key';
  if (type.includes('-cert-')) return 'SSH certificates are not supported: give the plain public key';
  if (type === 'ssh-dss') return 'DSA keys are refused (OpenSSH dropped them): use an ed25519, ecdsa or rsa key';
  return 'the key type is not supported';
}

/** Base64 as ssh-keygen writes it; Buffer.from alone would skip stray characters instead of refusing them. */
function strictBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** An mpint's magnitude without its sign byte or leading zeros. */
function unsigned(mpint: Buffer): Buffer {
  let i = 0;
  while (i < mpint.length - 1 && mpint[i] === 0) i++;
  return mpint.subarray(i);
}

function wireString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** Reads SSH wire fields (RFC 4251), refusing any that runs past the end or bytes left over. */
class WireReader {
  private offset = 0;
  constructor(
    private readonly buffer: Buffer,
    private readonly code: SshSigErrorCode,
    private readonly corrupt: string,
  ) {}

  fixed(length: number): Buffer {
    if (this.offset + length > this.buffer.length) throw new SshSigError(this.code, this.corrupt);
    const bytes = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return bytes;
  }

  uint32(): number {
    return this.fixed(4).readUInt32BE(0);
  }

  bytes(): Buffer {
    return this.fixed(this.uint32());
  }

  text(): string {
    return this.bytes().toString('latin1');
  }

  end(): void {
    if (this.offset !== this.buffer.length) throw new SshSigError(this.code, this.corrupt);
  }
}
