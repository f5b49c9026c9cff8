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
