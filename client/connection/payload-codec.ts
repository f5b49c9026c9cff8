/**
 * Encrypted payloads: an AES-256-GCM payload codec for the client's and the workers' data converter, so that release
 * inputs, results, signals, updates, queries, memos and heartbeat details reach Temporal's history as ciphertext.
 * Search attributes are never passed through a codec (the server must index them): they stay readable.
 *
 * Keys: MREL_CODEC_KEYS=`<key id>:<base64 of 32 bytes>[,<key id>:…]`, or MREL_CODEC_KEY_FILE naming a file of the
 * same entries (commas or newlines, `#` comments). The first key encrypts; every listed key decrypts, so a key is
 * rotated by putting the new one first and keeping the old one until no open history needs it. Neither set: off.
 *
 * Each payload becomes `encoding: binary/encrypted`, `encryption-key-id: <id>`, data = 12-byte random IV ‖ ciphertext
 * ‖ 16-byte tag of the serialized original payload: the layout of Temporal's encryption samples, so their codec
 * servers read it too.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';

// A CommonJS module whose exports Node's ESM loader cannot name: imported whole (as `node` runs the CLI and workers).
const { temporal } = proto;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export interface CodecKey {
  id: string;
  key: Buffer;
}

/** A payload the configured keys cannot open: which key id it names, and why. Never carries key material. */
export class PayloadCodecError extends Error {
  constructor(
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
    this.name = 'PayloadCodecError';
  }
}

/** A bad key setting; names the variable or file and the entry, never the key. */
export class CodecKeyConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'CodecKeyConfigError';
  }
}

/**
 * The keys from MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE; undefined when neither is set (payloads stay plain). Both set
 * is refused: which one rotates would be a guess.
 */
export function loadCodecKeys(env: NodeJS.ProcessEnv = process.env): CodecKey[] | undefined {
  const inline = env.MREL_CODEC_KEYS;
  const file = env.MREL_CODEC_KEY_FILE;
  if (inline !== undefined && file !== undefined) {
    throw new CodecKeyConfigError([
      'environment variables MREL_CODEC_KEYS and MREL_CODEC_KEY_FILE are both set: keep one (the file keeps keys out of the environment)',
    ]);
  }
  if (inline !== undefined) return parseCodecKeys(inline, 'environment variable MREL_CODEC_KEYS');
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CodecKeyConfigError([
      `environment variable MREL_CODEC_KEY_FILE: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    ]);
  }
  return parseCodecKeys(text, `MREL_CODEC_KEY_FILE ${file}`);
}

/** Parses `<id>:<base64>` entries separated by commas or newlines; `where` names the source in problems. */
export function parseCodecKeys(text: string, where: string): CodecKey[] {
  const entries = text
    .split(/[\n,]/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '');
  const problems: string[] = [];
  const keys: CodecKey[] = [];
  entries.forEach((entry, i) => {
    const at = `${where}: entry ${i + 1}`;
    const colon = entry.indexOf(':');
    if (colon < 0) {
      problems.push(`${at} is not <key id>:<base64 key> (e.g. k2026:$(openssl rand -base64 32))`);
      return;
    }
    const id = entry.slice(0, colon).trim();
    const material = entry.slice(colon + 1).trim();
    if (!KEY_ID.test(id)) {
      problems.push(`${at}: the key id must be 1 to 64 letters, digits, dots, dashes or underscores`);
      return;
    }
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(material) ? Buffer.from(material, 'base64') : undefined;
    if (key === undefined || key.length !== KEY_BYTES) {
      problems.push(`${at} (key id ${id}): the key must be ${KEY_BYTES} bytes in base64 (openssl rand -base64 32)`);
      return;
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`${at}: key id ${id} is listed twice; each key needs its own id`);
      return;
    }
    keys.push({ id, key });
  });
  if (problems.length === 0 && keys.length === 0) {
    problems.push(`${where}: lists no key; give <key id>:<base64 key>, or unset it to leave payloads unencrypted`);
  }
  if (problems.length > 0) throw new CodecKeyConfigError(problems);
  return keys;
}

/** AES-256-GCM over each whole payload; the first key encrypts, any of them decrypts. */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: ReadonlyMap<string, Buffer>;
  private readonly current: CodecKey;

  constructor(keys: readonly CodecKey[]) {
    const [first] = keys;
    if (first === undefined) throw new CodecKeyConfigError(['the payload codec needs at least one key']);
    this.current = first;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The key ids this codec opens, first the one it encrypts with. */
  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          encoding: Buffer.from(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: Buffer.from(this.current.id),
        },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decodeOne(payload));
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    // Payloads written before encryption was switched on stay readable.
    if (encoding === undefined || encoding === null || Buffer.from(encoding).toString() !== ENCRYPTED_ENCODING) {
      return payload;
    }
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    if (rawId === undefined || rawId === null) {
      throw new PayloadCodecError(
        `an encrypted payload carries no ${KEY_ID_METADATA}: it was not written by this codec`,
      );
    }
    const keyId = Buffer.from(rawId).toString();
    const key = this.byId.get(keyId);
    if (key === undefined) {
      throw new PayloadCodecError(
        `a payload is encrypted with key id "${keyId}", which is not among the configured keys (${this.keyIds.join(', ')}): ` +
          `add "${keyId}" to MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE after the current key`,
        keyId,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadCodecError(`a payload encrypted with key id "${keyId}" is truncated`, keyId);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadCodecError(
        `a payload encrypted with key id "${keyId}" does not decrypt: the key configured as "${keyId}" is not the one ` +
          'it was written with, or the payload was altered',
        keyId,
      );
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

/**
 * The failure converter module that goes with the codec (encoded-failures.cjs): failure messages and stack traces
 * become a payload, so they are encrypted too. The release worker's workflow bundle must be built with it.
 */
export const ENCODED_FAILURES_CONVERTER_PATH = fileURLToPath(new URL('./encoded-failures.cjs', import.meta.url));
/** The string every workflow bundle built with ENCODED_FAILURES_CONVERTER_PATH contains (the module's marker). */
export const ENCODED_FAILURES_MARKER = 'modelrelease:encoded-failures:v1';

/**
 * The data converter for a client or worker: the codec, and failures encoded so the codec covers their messages,
 * when keys are configured; the SDK's default otherwise.
 */
export function codecDataConverter(keys: readonly CodecKey[] | undefined): DataConverter | undefined {
  return keys === undefined
    ? undefined
    : { payloadCodecs: [new AesGcmPayloadCodec(keys)], failureConverterPath: ENCODED_FAILURES_CONVERTER_PATH };
}
