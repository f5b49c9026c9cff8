/**
 * The release's message handlers: the status query, the approve/reject/retry signals and the decide update, each a
 * thin call into ReleaseState followed by a publish. Signals have no validator, so whatever arrives is checked here
 * and a malformed one is recorded as refused; the update's validator rejects bad input before it reaches history.
 */
import { setHandler } from '@temporalio/workflow';
import {
  approveSignal,
  decideUpdate,
  keepSignal,
  rejectSignal,
  retrySignal,
  rollbackSignal,
  statusQuery,
  waiveSignal,
} from '../contract/definitions';
import { clip, MAX_APPROVER_CHARS } from '../contract/limits';
import {
  decideInputSchema,
  decisionInputSchema,
  retryInputSchema,
  rolloutDecisionInputSchema,
  waiveInputSchema,
  type DecideInput,
} from '../contract/types';
import type { DecisionOutcome, ReleaseState } from './release-state';
import { admitDecision, type Admission } from './trust';

/**
 * Registers every handler of one release; `publish` shows a change (details, search attributes, memo). With
 * `trusted` (TRUST_PATCH releases) decisions are admitted by their signatures first (workflows/trust.ts).
 */
export function installHandlers(
  state: ReleaseState,
  publish: () => void,
  options: { trusted?: boolean; signedPauses?: boolean } = {},
): void {
  setHandler(statusQuery, () => state.status, {
    description: 'The release as it stands: stage, gate verdicts, approvals, refused decisions, what is awaited.',
  });
  const apply = (decision: DecideInput): DecisionOutcome => {
    const late = lateDecision(decision);
    const outcome = late ? state.refuse(decision, late, nowIso()) : state.decide(decision, nowIso());
    publish();
    return outcome;
  };
  /** A decision admitted by its signature (or as unsigned where the policy allows) before it applies. */
  const applyTrusted = async (decision: DecideInput): Promise<DecisionOutcome> => {
    const early = lateDecision(decision);
    const admitted: Admission = early ? { refused: early } : await admitDecision(state, decision);
    const late = lateDecision(decision);
    const outcome =
      'refused' in admitted || late
        ? state.refuse(decision, late ?? (admitted as { refused: string }).refused, nowIso())
        : state.decide(decision, nowIso(), admitted.proof);
    publish();
    return outcome;
  };
  const applySignal = async (raw: unknown, decision: 'approve' | 'reject'): Promise<void> => {
    const read = readSignal(raw, decision);
    if ('refused' in read) {
      state.refuse(read.refused, read.reason, nowIso());
      publish();
    } else if (options.trusted) await applyTrusted(read.decision);
    else apply(read.decision);
  };
  setHandler(approveSignal, (raw) => applySignal(raw, 'approve'), {
    description:
      'Approve: {"approver": "<id in approvers.yaml>", "comment": "…"}. Counted once the gates passed; a refused one is recorded with why.',
  });
  setHandler(rejectSignal, (raw) => applySignal(raw, 'reject'), {
    description:
      'Reject: {"approver": "<id>", "comment": "why"}. Ends the release as rejected, with the comment as reason.',
  });
  setHandler(
    decideUpdate,
    async (decision) => ({
      ...(options.trusted ? await applyTrusted(decision) : apply(decision)),
      status: state.status,
    }),
    {
      description:
        'Approve or reject with an answer: {"approver", "decision": "approve"|"reject", "comment"?, "validUntil"?}.',
      validator: (decision) => {
        const check = decideInputSchema.safeParse(decision);
        if (!check.success)
          throw new Error(clip(check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')));
        const late = lateDecision(check.data);
        if (late) throw new Error(late);
      },
    },
  );
  const applyRollout = async (raw: unknown, decision: 'rollback' | 'keep'): Promise<void> => {
    const parsed = rolloutDecisionInputSchema.safeParse(raw);
    if (parsed.success && options.signedPauses) {
      // Signed like an approval (TRUST_PAUSES_PATCH): checked for the pause first, then by its signature, then again.
      const input = parsed.data;
      const early = state.rolloutRefusal(input, decision);
      const admitted: Admission = early
        ? { refused: early }
        : await admitDecision(state, {
            approver: input.approver,
            decision,
            ...(input.comment === undefined ? {} : { comment: input.comment }),
            ...(input.signature === undefined ? {} : { signature: input.signature }),
            ...(input.signedAt === undefined ? {} : { signedAt: input.signedAt }),
          });
      if ('refused' in admitted) state.decideRollout(input, decision, nowIso(), admitted.refused);
      else state.decideRollout(input, decision, nowIso(), undefined, admitted.proof);
    } else if (parsed.success) state.decideRollout(parsed.data, decision, nowIso());
    else {
      const problems = payloadProblems(parsed.error);
      state.decideRollout(
        { approver: approverOf(raw) },
        decision,
        nowIso(),
        `malformed ${decision} signal (${problems})`,
      );
    }
    publish();
  };
  setHandler(rollbackSignal, (raw) => applyRollout(raw, 'rollback'), {
    description:
      'Roll back a release paused on a stalled rollout or a breached monitoring window: {"approver": "<id with a role the policy names>", "comment": "…", "signature"?, "signedAt"?}. A revert commit, then the rollback is watched.',
  });
  setHandler(keepSignal, (raw) => applyRollout(raw, 'keep'), {
    description:
      'Keep a release paused on a stalled rollout (watched once more) or a breached monitoring window (it goes on without that metric): {"approver": "<id>", "comment": "…", "signature"?, "signedAt"?}.',
  });
  if (options.trusted) {
    const applyWaive = async (raw: unknown): Promise<void> => {
      const parsed = waiveInputSchema.safeParse(raw);
      if (!parsed.success) {
        state.refuseWaive(
          { approver: approverOf(raw) },
          `malformed waive signal (${payloadProblems(parsed.error)})`,
          nowIso(),
        );
        publish();
        return;
      }
      const input = parsed.data;
      const refusal = state.waiveRefusal(input, nowIso());
      const admitted: Admission = refusal
        ? { refused: refusal }
        : await admitDecision(state, {
            approver: input.approver,
            decision: 'waive',
            ...(input.comment === undefined ? {} : { comment: input.comment }),
            ...(input.signature === undefined ? {} : { signature: input.signature }),
            ...(input.signedAt === undefined ? {} : { signedAt: input.signedAt }),
            waiver: {
              gate: input.gate,
              ruleIds: input.ruleIds,
              justification: input.justification,
              expiresAt: input.expiresAt,
            },
          });
      // Checked again after the signature: the release may have moved on meanwhile.
      const late = 'refused' in admitted ? admitted.refused : state.waiveRefusal(input, nowIso());
      if (late !== undefined) state.refuseWaive(input, late, nowIso());
      else if ('proof' in admitted) state.grantWaiver(input, admitted.proof, nowIso());
      publish();
    };
    setHandler(waiveSignal, (raw) => applyWaive(raw), {
      description:
        'Waive findings of a gate: {"approver", "gate", "ruleIds": [...], "justification", "expiresAt", "signature"?, "signedAt"?}. The gate is judged again with the waiver; a role the policy\'s waivers: section names, an expiry within its maximum.',
    });
  }
  setHandler(
    retrySignal,
    (raw) => {
      // Only a release that waits for it takes a retry; anything else (or a malformed payload) changes nothing.
      if (retryInputSchema.safeParse(raw).success) state.requestRetry();
    },
    {
      description: 'Retry a step the release waits on (a refused GitOps commit, once fixed): {"requestedBy": "<who>"}.',
    },
  );
}

/** A signal's payload as a decision to apply, or as a refused one with why (signals reach history unvalidated). */
function readSignal(
  raw: unknown,
  decision: 'approve' | 'reject',
): { decision: DecideInput } | { refused: DecideInput; reason: string } {
  const parsed = decisionInputSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = payloadProblems(parsed.error);
    return { refused: { approver: approverOf(raw), decision }, reason: `malformed ${decision} signal (${problems})` };
  }
  const claimed = typeof raw === 'object' && raw !== null ? (raw as { decision?: unknown }).decision : undefined;
  if (claimed === undefined || claimed === decision) return { decision: { ...parsed.data, decision } };
  // A payload that says the opposite of its signal is a mistake or an attack: it must not count either way.
  const said = clip(JSON.stringify(claimed), 40);
  return {
    refused: { ...parsed.data, decision },
    reason: `the payload says decision ${said} but came as the ${decision} signal; nothing was counted: send the signal that matches the decision`,
  };
}

/** Why a decision must not apply because it arrived after its sender stopped waiting for an answer. */
export function lateDecision(decision: DecideInput): string | undefined {
  if (decision.validUntil === undefined || Date.parse(decision.validUntil) >= Date.now()) return undefined;
  return `the decision arrived after its validUntil (${decision.validUntil}): its sender was told it did not apply, so it does not count; send it again`;
}

/** What is wrong with a signal's payload, field by field, in one line. */
function payloadProblems(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
}

function approverOf(raw: unknown): string {
  const approver = typeof raw === 'object' && raw !== null ? (raw as { approver?: unknown }).approver : undefined;
  return typeof approver === 'string' && approver !== '' ? clip(approver, MAX_APPROVER_CHARS) : '(missing approver)';
}

export function nowIso(): string {
  return new Date().toISOString();
}
