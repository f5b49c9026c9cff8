/**
 * The payload codec on its own: what it writes (AES-256-GCM, a fresh IV, the key id in the metadata), rotation (the
 * first key encrypts, every listed key decrypts), and the errors a user gets for a missing key, a wrong key, altered
 * data or a bad key setting, none of which may show key material.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AesGcmPayloadCodec,
  CodecKeyConfigError,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  loadCodecKeys,
  parseCodecKeys,
  PayloadCodecError,
  type CodecKey,
} from '../../client/connection/payload-codec';

const oldKey: CodecKey = { id: 'k2025', key: randomBytes(32) };
const newKey: CodecKey = { id: 'k2026', key: randomBytes(32) };
const SECRET = { model: 'credit-risk', version: '4.2.0', comment: 'fairness gap explained in the model card' };

const plain = (): Payload[] => [defaultPayloadConverter.toPayload(SECRET)];
const text = (p: Payload, key: string): string => Buffer.from(p.metadata?.[key] ?? new Uint8Array()).toString();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-codec-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('AesGcmPayloadCodec', () => {
  it('writes ciphertext marked binary/encrypted with its key id, and reads it back unchanged', async () => {
    const codec = new AesGcmPayloadCodec([newKey]);
    const [sealed] = await codec.encode(plain());
    expect(text(sealed!, 'encoding')).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed!, KEY_ID_METADATA)).toBe('k2026');
    expect(Object.keys(sealed!.metadata ?? {}).sort()).toEqual(['encoding', KEY_ID_METADATA]);
    const bytes = Buffer.from(sealed!.data!);
    for (const value of [...Object.values(SECRET), 'json/plain']) expect(bytes.includes(value)).toBe(false);
    // 12-byte IV, the sealed payload, a 16-byte tag.
    expect(bytes.length).toBeGreaterThan(12 + 16 + JSON.stringify(SECRET).length);

    const [opened] = await codec.decode([sealed!]);
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(SECRET);
  });

  it('uses a fresh IV for every payload: the same value never gives the same ciphertext', async () => {
    const codec = new AesGcmPayloadCodec([newKey]);
    const [a] = await codec.encode(plain());
    const [b] = await codec.encode(plain());
    expect(Buffer.from(a!.data!).subarray(0, 12).equals(Buffer.from(b!.data!).subarray(0, 12))).toBe(false);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('rotates: [new, old] encrypts with the new key and still opens what the old key wrote', async () => {
    const [underOld] = await new AesGcmPayloadCodec([oldKey]).encode(plain());
    const rotated = new AesGcmPayloadCodec([newKey, oldKey]);
    const [opened] = await rotated.decode([underOld!]);
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(SECRET);
    const [underNew] = await rotated.encode(plain());
    expect(text(underNew!, KEY_ID_METADATA)).toBe('k2026');
  });

  it('refuses a payload under a key it does not have, naming that key id and what to do', async () => {
    const [underOld] = await new AesGcmPayloadCodec([oldKey]).encode(plain());
    const attempt = new AesGcmPayloadCodec([newKey]).decode([underOld!]);
    await expect(attempt).rejects.toThrow(PayloadCodecError);
    await expect(attempt).rejects.toThrow(
      /key id "k2025", which is not among the configured keys \(k2026\).*MREL_CODEC_KEYS/,
    );
  });

  it('refuses a key id whose material is wrong, and a payload altered after it was written', async () => {
    const [sealed] = await new AesGcmPayloadCodec([oldKey]).encode(plain());
    const impostor = new AesGcmPayloadCodec([{ id: 'k2025', key: randomBytes(32) }]);
    await expect(impostor.decode([sealed!])).rejects.toThrow(/key id "k2025" does not decrypt/);

    const altered = Buffer.from(sealed!.data!);
    altered[20] = altered[20]! ^ 1;
    await expect(new AesGcmPayloadCodec([oldKey]).decode([{ ...sealed!, data: altered }])).rejects.toThrow(
      /does not decrypt: .* or the payload was altered/,
    );
  });

  it('passes payloads written before encryption was on through unchanged', async () => {
    const [opened] = await new AesGcmPayloadCodec([newKey]).decode(plain());
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(SECRET);
  });
});

describe('codec keys', () => {
  const b64 = (k: CodecKey) => k.key.toString('base64');

  it('reads MREL_CODEC_KEYS in order, the first one encrypting', () => {
    const keys = loadCodecKeys({ MREL_CODEC_KEYS: `k2026:${b64(newKey)},k2025:${b64(oldKey)}` });
    expect(keys?.map((k) => k.id)).toEqual(['k2026', 'k2025']);
    expect(keys?.[1]?.key.equals(oldKey.key)).toBe(true);
  });

  it('reads MREL_CODEC_KEY_FILE, one key a line with comments', async () => {
    const file = join(dir, 'codec.keys');
    await writeFile(
      file,
      `# rotated 2026-01\nk2026:${b64(newKey)}\n\nk2025:${b64(oldKey)}  # until old releases end\n`,
    );
    expect(loadCodecKeys({ MREL_CODEC_KEY_FILE: file })?.map((k) => k.id)).toEqual(['k2026', 'k2025']);
  });

  it('is off when neither variable is set', () => {
    expect(loadCodecKeys({})).toBeUndefined();
  });

  it('names the entry and the problem, never the key material', () => {
    const short = randomBytes(16).toString('base64');
    const cases: [string, RegExp][] = [
      [`k1:${short}`, /entry 1 \(key id k1\): the key must be 32 bytes in base64/],
      [`k1:${b64(newKey)},k1:${b64(oldKey)}`, /entry 2: key id k1 is listed twice/],
      [`${b64(newKey)}`, /entry 1 is not <key id>:<base64 key>/],
      [`bad id!:${b64(newKey)}`, /entry 1: the key id must be/],
      [' , ', /lists no key/],
    ];
    for (const [value, message] of cases) {
      let error: unknown;
      try {
        parseCodecKeys(value, 'environment variable MREL_CODEC_KEYS');
      } catch (err) {
        error = err;
      }
      expect(error, value).toBeInstanceOf(CodecKeyConfigError);
      const shown = (error as Error).message;
      expect(shown).toMatch(/^environment variable MREL_CODEC_KEYS: /);
      expect(shown).toMatch(message);
      for (const secret of [short, b64(newKey), b64(oldKey)]) expect(shown).not.toContain(secret);
    }
  });

  it('refuses both variables at once, and a key file it cannot read', () => {
    expect(() => loadCodecKeys({ MREL_CODEC_KEYS: `k:${b64(newKey)}`, MREL_CODEC_KEY_FILE: '/x' })).toThrow(
      /MREL_CODEC_KEYS and MREL_CODEC_KEY_FILE are both set/,
    );
    expect(() => loadCodecKeys({ MREL_CODEC_KEY_FILE: join(dir, 'missing.keys') })).toThrow(
      /MREL_CODEC_KEY_FILE: .*missing\.keys cannot be read \(ENOENT\)/,
    );
  });
});
