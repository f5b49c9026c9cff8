/**
 * The evidence bundle a release commits with its deployment (RELEASE_PLAN_PATCH releases): each gate's evidence blob
 * by digest, and the index of what the release was judged by and who decided. Built from ReleaseState; the publish
 * activity reads the blobs from the artifact store and writes them byte-stable. Deterministic.
 */
import type { EvidenceBundleRef, EvidenceIndex } from '../activities/gitops/evidence-bundle';
import type { GateResult, ReleaseConfig } from '../contract/types';
import type { ReleaseState } from './release-state';

export function evidenceBundle(state: ReleaseState, config: ReleaseConfig): EvidenceBundleRef {
  const { gates, approvals, refused } = state.status;
  const index: EvidenceIndex = {
    policy: { name: config.policy.name, file: config.policy.file, digest: config.policy.digest },
    approvers: { file: config.approversFile.file, digest: config.approversFile.digest },
    decisions: approvals,
    refusedDecisions: refused,
    gates: gates.map((g) => {
      const sha256 = evidenceDigest(g);
      const row: EvidenceIndex['gates'][number] = { gate: g.gate, verdict: g.verdict, summary: g.summary };
      if (sha256 !== undefined) row.evidenceSha256 = sha256;
      return row;
    }),
  };
  if (config.waiversFile) index.waivers = { file: config.waiversFile.file, digest: config.waiversFile.digest };
  if (state.status.waivers?.length) index.grantedWaivers = state.status.waivers;
  const pricing = gates.flatMap((g) => g.inputs ?? []).find((f) => f.name.includes('pricing'));
  if (pricing) index.pricing = { file: pricing.name, digest: pricing.digest };
  const entries = gates.flatMap((g) => {
    const sha256 = evidenceDigest(g);
    const attachments = (g.attachments ?? []).filter((a) => isDigest(a.digest));
    return [
      ...(sha256 === undefined ? [] : [{ name: `gates/${g.gate}.json`, sha256 }]),
      ...attachments.map((a) => ({ name: `gates/${g.gate}/${a.name}`, sha256: a.digest })),
    ];
  });
  return { entries, index };
}

/** The gate's evidence when it is a blob by digest (`sha256:<hex>`); older gates wrote a store path instead. */
function evidenceDigest(gate: GateResult): string | undefined {
  return gate.evidence !== undefined && isDigest(gate.evidence) ? gate.evidence : undefined;
}

function isDigest(text: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(text);
}
