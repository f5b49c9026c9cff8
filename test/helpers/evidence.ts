/**
 * Reads a gate's evidence back from the artifact store by the digest its result names, as the evidence bundle does.
 */
import { evidenceDigest } from '../../activities/gate/evidence';
import { MAX_EVIDENCE_BLOB_BYTES } from '../../activities/gitops';
import type { ArtifactStore } from '../../activities/store';
import type { Finding, Verdict } from '../../contract/types';

/** The stored evidence document of one gate run; `report` is the gate's own part. */
export interface GateEvidence<R = Record<string, unknown>> {
  gate: string;
  releaseId: string;
  model: string;
  manifestDigest: string;
  policy: { file: string; section: string; value: unknown };
  verdict: Verdict;
  summary: string;
  inputs?: { name: string; digest: string }[];
  report: R;
  findings: Finding[];
  attachments?: { name: string; digest: string }[];
}

/** The raw bytes of an evidence blob (or attachment) named `sha256:<hex>`; fails when the reference is no digest. */
export async function readEvidenceBytes(store: ArtifactStore, reference: string | undefined): Promise<Buffer> {
  const hex = evidenceDigest(reference);
  if (hex === undefined) throw new Error(`not an evidence digest: ${String(reference)}`);
  return store.read(hex, MAX_EVIDENCE_BLOB_BYTES);
}

export async function readEvidence<R = Record<string, unknown>>(
  store: ArtifactStore,
  reference: string | undefined,
): Promise<GateEvidence<R>> {
  return JSON.parse((await readEvidenceBytes(store, reference)).toString('utf8')) as GateEvidence<R>;
}
