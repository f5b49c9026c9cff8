/** Gate evidence kept in the artifact store as canonical JSON, named `sha256:<hex>`. */
import { canonicalJson } from '../common/canonical-json';
import type { ArtifactStore } from '../store/artifact-store';

export const EVIDENCE_PREFIX = 'sha256:';

/** Stores `document` (a gate's evidence, or an attachment such as its SBOM) as canonical JSON; `gate` names it in messages. */
export async function putEvidence(store: ArtifactStore, document: unknown, gate: string): Promise<string> {
  const blob = await store.putBytes(`${canonicalJson(document)}\n`, { path: `evidence of ${gate}` });
  return `${EVIDENCE_PREFIX}${blob.sha256}`;
}

/** The digest of an evidence reference, or undefined for a legacy store path. */
export function evidenceDigest(reference: string | undefined): string | undefined {
  if (!reference?.startsWith(EVIDENCE_PREFIX)) return undefined;
  const hex = reference.slice(EVIDENCE_PREFIX.length);
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}
