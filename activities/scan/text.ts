/**
 * Text files of a model repository: secrets of well-known shapes and private keys (streamed, any size), and the
 * parsed JSON for the checks that need it (TF.js model.json, Keras config, Hugging Face config).
 */
import { finding, type ScanFinding } from './findings';
import type { ByteReader } from './reader';

/** Token shapes with a fixed, documented prefix: few false positives. */
const TOKEN_PATTERNS: { name: string; re: RegExp }[] = [
  { name: 'AWS access key id', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { name: 'GitHub token', re: /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/g },
  { name: 'GitHub fine-grained token', re: /\bgithub_pat_[A-Za-z0-9_]{60,255}\b/g },
  { name: 'GitLab token', re: /\bglpat-[A-Za-z0-9_-]{20,}\b/g },
  { name: 'Hugging Face token', re: /\bhf_[A-Za-z]{34,40}\b/g },
  { name: 'OpenAI API key', re: /\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}/g },
  { name: 'Anthropic API key', re: /\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}/g },
  { name: 'Slack token', re: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g },
  { name: 'Google API key', re: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { name: 'Stripe live key', re: /\b[rs]k_live_[0-9A-Za-z]{24,}\b/g },
  { name: 'npm token', re: /\bnpm_[A-Za-z0-9]{36}\b/g },
  { name: 'PyPI token', re: /\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}/g },
];
const PRIVATE_KEY = /-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----/g;
/** Characters carried from one chunk to the next so a token split across chunks is still seen. */
const OVERLAP = 512;

export interface TextResult {
  findings: ScanFinding[];
  bytes: number;
  /** The parsed JSON when asked for and the text is JSON within the size cap. */
  json?: unknown;
  /** Why the JSON could not be parsed (invalid, or over the cap). */
  jsonError?: string;
  /** The first bytes of the text (for content sniffing such as Python source). */
  head: string;
}

export async function scanText(
  reader: ByteReader,
  path: string,
  options: { parseJson: boolean; maxJsonBytes: number; secrets: boolean },
): Promise<TextResult> {
  const findings: ScanFinding[] = [];
  const seen = new Set<string>();
  const decoder = new TextDecoder('utf-8');
  const kept: string[] = [];
  let keptBytes = 0;
  let tail = '';
  /** Byte offset of the start of `tail` in the file. */
  let tailOffset = reader.offset;
  let head = '';
  let total = 0;
  for (;;) {
    if (reader.available === 0 && !(await reader.fill(1))) break;
    const chunk = reader.buf.subarray(reader.pos);
    reader.pos = reader.buf.length;
    total += chunk.length;
    const text = decoder.decode(chunk, { stream: true });
    if (head.length < 4096) head += text.slice(0, 4096 - head.length);
    if (options.parseJson && keptBytes <= options.maxJsonBytes) {
      kept.push(text);
      keptBytes += chunk.length;
    }
    if (options.secrets) {
      const window = tail + text;
      findSecrets(window, tailOffset, path, findings, seen);
      const cut = Math.max(0, window.length - OVERLAP);
      tailOffset += Buffer.byteLength(window.slice(0, cut));
      tail = window.slice(cut);
    }
  }
  const result: TextResult = { findings, bytes: total, head };
  if (options.parseJson) {
    if (keptBytes > options.maxJsonBytes)
      result.jsonError = `larger than ${options.maxJsonBytes} bytes (scan.limits.maxJsonBytes)`;
    else
      try {
        result.json = JSON.parse(kept.join('').replace(/^\uFEFF/, ''));
      } catch (err) {
        result.jsonError = (err as Error).message;
      }
  }
  return result;
}

function findSecrets(text: string, base: number, path: string, findings: ScanFinding[], seen: Set<string>): void {
  const report = (
    ruleId: 'secrets.token' | 'secrets.private-key',
    index: number,
    value: string,
    what: string,
  ): void => {
    const offset = base + Buffer.byteLength(text.slice(0, index));
    const key = `${offset}:${value.length}`;
    if (seen.has(key)) return;
    seen.add(key);
    findings.push(
      finding(ruleId, path, `${what} (${redact(value)}): rotate it and remove it from the model repository`, {
        offset,
      }),
    );
  };
  for (const { name, re } of TOKEN_PATTERNS) {
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) report('secrets.token', m.index, m[0], name);
  }
  PRIVATE_KEY.lastIndex = 0;
  for (let m = PRIVATE_KEY.exec(text); m; m = PRIVATE_KEY.exec(text))
    report('secrets.private-key', m.index, m[0], 'private key block');
}

/** Enough of a token to find it, not enough to use it. */
function redact(value: string): string {
  if (value.startsWith('-----')) return value;
  return `${value.slice(0, Math.min(8, Math.floor(value.length / 3)))}…`;
}
