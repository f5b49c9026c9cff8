/**
 * Signed decisions (TRUST_PATCH releases; rollback and keep with TRUST_PAUSES_PATCH): an approve or reject that carries an SSH signature is verified by the
 * `verifyDecision` local activity — over the canonical payload that binds this release, this run, the manifest the
 * gates judged, the decision, the comment and the signing time — and counts with the key's fingerprint; a bad,
 * missing, expired or replayed signature is refused with why. An unsigned decision counts only where the environment's
 * policy allows it (`allowUnsigned`), marked unsigned. The verdict is the activity's result, recorded in history, so
 * replay reaches the same one.
 */
import { isCancellation, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import { sha256Ref } from '../contract/decision-payload';
import type { SignedWaiver } from '../contract/decision-payload';
import type { SignedBy } from '../contract/types';
import type { PlanActivities } from './plan';
import type { ReleaseState } from './release-state';

/** A signature made more than this long before it reaches the release is refused as expired. */
export const SIGNATURE_MAX_AGE_MS = 60 * 60_000;

const { verifyDecision } = proxyLocalActivities<PlanActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

export type Admission = { proof: { signed: SignedBy } | { unsigned: true } } | { refused: string };

/**
 * A decision as the release admits it: an approve or reject, a waive with the waiver it signs, or a rollback or keep
 * of a pause (TRUST_PAUSES_PATCH).
 */
export interface DecisionToAdmit {
  approver: string;
  decision: 'approve' | 'reject' | 'waive' | 'rollback' | 'keep';
  comment?: string;
  signature?: string;
  signedAt?: string;
  waiver?: SignedWaiver;
}

export async function admitDecision(state: ReleaseState, input: DecisionToAdmit): Promise<Admission> {
  const { config } = state;
  if (input.signature === undefined) {
    if (config?.approval.allowUnsigned === false)
      return {
        refused: `unsigned decisions do not count for ${state.request.environment} (policy ${state.request.policy}: allowUnsigned is false): sign it, e.g. mrel ${input.decision} ${state.status.releaseId} --as ${input.approver} --sign-with ~/.ssh/id_ed25519`,
      };
    return { proof: { unsigned: true } };
  }
  if (input.signedAt === undefined)
    return { refused: 'a signed decision needs signedAt: the time in the signed payload' };
  const manifest = state.manifest;
  if (config === undefined || manifest === undefined)
    return {
      refused: `the release is still in stage ${state.stage}: a signature binds the model the gates judged; sign once the release awaits approval`,
    };
  const runId = workflowInfo().runId;
  const manifestDigest = sha256Ref(manifest.manifestDigest);
  try {
    const verdict = await verifyDecision({
      releaseId: state.status.releaseId,
      runId,
      manifestDigest,
      approver: input.approver,
      decision: input.decision,
      ...(input.comment === undefined ? {} : { comment: input.comment }),
      signedAt: input.signedAt,
      ...(input.waiver === undefined ? {} : { waiver: input.waiver }),
      signature: input.signature,
      keys: config.approverKeys?.[input.approver] ?? [],
      now: new Date().toISOString(),
      maxAgeMs: SIGNATURE_MAX_AGE_MS,
      seen: state.signedPayloads(),
    });
    if (!verdict.ok) return { refused: `signature refused (${verdict.code}): ${verdict.reason}` };
    return {
      proof: {
        signed: {
          fingerprint: verdict.fingerprint,
          keyType: verdict.keyType,
          signedAt: input.signedAt,
          runId,
          manifestDigest,
          signature: input.signature,
          payloadDigest: verdict.payloadDigest,
        },
      },
    };
  } catch (err) {
    if (isCancellation(err)) throw err;
    return {
      refused: `the signature could not be checked (${err instanceof Error ? err.message : String(err)}); send it again`,
    };
  }
}
