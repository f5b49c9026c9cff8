/** Gate evidence kept in the artifact store as canonical JSON, named `sha256:<hex>`. */
import { canonicalJson } from '../common/canonical-json';
import type { ArtifactStore } from '../store/artifact-store';

export const EVIDENCE_PREFIX = 'sha256:';
/** Evidence blobs above this are refused when read back for the bundle. */
export const MAX_EVIDENCE_BYTES = 32 * 1024 * 1024;

/** Stores `data` as canonical JSON; `tagged` false stores a document (an SBOM) exactly as given. */
export async function putEvidence(store: ArtifactStore, data: Record<string, unknown>, tagged = true): Promise<string> {
  const { gate, ...rest } = data;
  const body = tagged ? data : rest;
  const blob = await store.putBytes(`${canonicalJson(body)}\n`, { path: `evidence of ${String(gate)}` });
  return `${EVIDENCE_PREFIX}${blob.sha256}`;
}

/** The digest of an evidence reference, or undefined for a legacy store path. */
export function evidenceDigest(reference: string | undefined): string | undefined {
  if (!reference?.startsWith(EVIDENCE_PREFIX)) return undefined;
  const hex = reference.slice(EVIDENCE_PREFIX.length);
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}
