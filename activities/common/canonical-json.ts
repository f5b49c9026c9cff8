/**
 * Canonical JSON (RFC 8785, JCS): keys sorted, numbers and strings in one spelling, so the same value always gives
 * the same bytes and the same digest. Evidence, manifests and bundles are stored this way: byte-stable across
 * retries and workers.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

export function sha256Hex(bytes: string | Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Sorted keys, two-space indent and a final newline: the byte-stable form of files people read in Git (bundle index,
 * evidence.json). Undefined members are dropped, as JSON.stringify does.
 */
export function readableJson(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
        .map((k) => [k, sortKeys(record[k])]),
    );
  }
  return value;
}
