import { execFile } from 'node:child_process';
import { createHash, sign } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fingerprint,
  parseAuthorizedKey,
  parseSshSignature,
  SshSigError,
  verifySshSignature,
  type SshSigErrorCode,
} from '../../activities/trust/sshsig';
import { makeKey, signByHand, sshFingerprint, type KeySpec, type TestKey } from './ssh-tools';

const run = promisify(execFile);
const NS = 'modelrelease-decision';
const message = new TextEncoder().encode('{"decision":"approve"}');
const SIGNING_SPECS: KeySpec[] = ['ed25519', 'ecdsa-256', 'ecdsa-384', 'ecdsa-521', 'rsa-3072'];

let dir: string;
const keys = {} as Record<KeySpec, TestKey>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-sshsig-'));
  for (const spec of [...SIGNING_SPECS, 'rsa-1024'] as const) keys[spec] = await makeKey(dir, spec, spec);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): SshSigErrorCode {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SshSigError);
    return (err as SshSigError).code;
  }
  throw new Error('expected an SshSigError');
}

function wire(value: string | Buffer): Buffer {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function armor(raw: Buffer): string {
  const lines = raw.toString('base64').match(/.{1,70}/g) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----', ''].join('\n');
}

describe('SSH keys', () => {
  it.each(SIGNING_SPECS)(
    'parses a %s key made by ssh-keygen, with the fingerprint ssh-keygen -l prints',
    async (spec) => {
      const key = parseAuthorizedKey(keys[spec].line);
      expect(key.key.type).toBe('public');
      expect(key.comment).toBe(`${spec}@test`);
      expect(fingerprint(key)).toBe(await sshFingerprint(keys[spec].publicFile));
    },
  );

  it('refuses RSA keys under 2048 bits, keys cut short, wrong types and stray characters, without quoting them', () => {
    const [type, data] = keys.ed25519.line.split(' ') as [string, string];
    expect(codeOf(() => parseAuthorizedKey(keys['rsa-1024'].line))).toBe('unsupported-key');
    expect(codeOf(() => parseAuthorizedKey(`${type} ${data.slice(0, 40)}`))).toBe('bad-key');
    expect(codeOf(() => parseAuthorizedKey(`ssh-rsa ${data}`))).toBe('bad-key');
    expect(codeOf(() => parseAuthorizedKey(`${type} ${data.slice(0, -4)}!!!=`))).toBe('bad-key');
    expect(codeOf(() => parseAuthorizedKey(`ssh-dss ${data}`))).toBe('unsupported-key');
    expect(codeOf(() => parseAuthorizedKey(`sk-ssh-ed25519@openssh.com ${data}`))).toBe('unsupported-key');
    expect(codeOf(() => parseAuthorizedKey(type))).toBe('bad-key');
    try {
      parseAuthorizedKey(`${type} ${data.slice(0, 40)}`);
    } catch (err) {
      expect((err as Error).message).not.toContain(data.slice(0, 40));
    }
  });
});

describe('SSH signatures', () => {
  it.each(SIGNING_SPECS)('verifies what ssh-keygen -Y sign made by hand with a %s key', async (spec) => {
    const armored = await signByHand(dir, keys[spec], NS, message);
    const key = parseAuthorizedKey(keys[spec].line);
    const sig = verifySshSignature(armored, message, { namespace: NS, keys: [key] });
    expect(fingerprint(sig.publicKey)).toBe(await sshFingerprint(keys[spec].publicFile));
    expect(sig.namespace).toBe(NS);
    // Over another message the signature no longer holds.
    const tampered = new TextEncoder().encode('{"decision":"reject"}');
    expect(codeOf(() => verifySshSignature(armored, tampered, { namespace: NS, keys: [key] }))).toBe('bad-signature');
  });

  it('signs RSA with rsa-sha2-512, and refuses a valid ssh-rsa (SHA-1) signature', async () => {
    expect(parseSshSignature(await signByHand(dir, keys['rsa-3072'], NS, message)).algorithm).toBe('rsa-sha2-512');
    // A genuine SHA-1 signature by the same key over the same SSHSIG data: refused for its algorithm alone.
    const pem = join(dir, 'rsa-pem');
    await copyFile(keys['rsa-3072'].privateFile, pem);
    await run('ssh-keygen', ['-q', '-p', '-m', 'PEM', '-N', '', '-P', '', '-f', pem]);
    const signed = Buffer.concat([
      Buffer.from('SSHSIG'),
      wire(NS),
      wire(''),
      wire('sha512'),
      wire(createHash('sha512').update(message).digest()),
    ]);
    const sha1 = sign('sha1', signed, await readFile(pem, 'utf8'));
    const key = parseAuthorizedKey(keys['rsa-3072'].line);
    const armored = armor(
      Buffer.concat([
        Buffer.from('SSHSIG'),
        Buffer.from([0, 0, 0, 1]),
        wire(key.blob),
        wire(NS),
        wire(''),
        wire('sha512'),
        wire(Buffer.concat([wire('ssh-rsa'), wire(sha1)])),
      ]),
    );
    expect(codeOf(() => verifySshSignature(armored, message, { namespace: NS, keys: [key] }))).toBe(
      'unsupported-algorithm',
    );
  });

  it('refuses another namespace, a key not listed, and a changed signature byte', async () => {
    const armored = await signByHand(dir, keys.ed25519, 'git', message);
    const ed = parseAuthorizedKey(keys.ed25519.line);
    const ec = parseAuthorizedKey(keys['ecdsa-256'].line);
    expect(codeOf(() => verifySshSignature(armored, message, { namespace: NS, keys: [ed] }))).toBe('wrong-namespace');
    const good = await signByHand(dir, keys.ed25519, NS, message);
    expect(codeOf(() => verifySshSignature(good, message, { namespace: NS, keys: [ec] }))).toBe('unknown-key');
    const raw = Buffer.from(parseSshSignature(good).raw);
    raw.writeUInt8(raw.readUInt8(raw.length - 1) ^ 1, raw.length - 1);
    const flipped = armor(raw);
    expect(codeOf(() => verifySshSignature(flipped, message, { namespace: NS, keys: [ed] }))).toBe('bad-signature');
  });

  it('refuses text that is not an armored SSHSIG, never quoting it', () => {
    const secretish = 'hunter2-not-a-signature';
    expect(codeOf(() => parseSshSignature(secretish))).toBe('bad-armor');
    expect(
      codeOf(() => parseSshSignature(`-----BEGIN SSH SIGNATURE-----\n${secretish}\n-----END SSH SIGNATURE-----`)),
    ).toBe('bad-armor');
    const notSshsig = `-----BEGIN SSH SIGNATURE-----\n${Buffer.from('NOTSIG\0\0\0\x01').toString('base64')}\n-----END SSH SIGNATURE-----`;
    expect(codeOf(() => parseSshSignature(notSshsig))).toBe('bad-format');
    try {
      parseSshSignature(secretish);
    } catch (err) {
      expect((err as Error).message).not.toContain(secretish);
    }
  });
});
