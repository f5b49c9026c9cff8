/**
 * Checks one signed decision (approve, reject, waive) the way the release records it: the SSH signature over the
 * canonical decision payload, made with one of the approver's keys from approvers.yaml, neither from the future nor
 * older than the policy allows, and not seen before. Pure apart from the clock the caller passes in: the same input
 * gives the same answer, so the verdict recorded in history is the one a later audit reaches.
 */
import { createHash } from 'node:crypto';
import {
  DECISION_NAMESPACE,
  decisionPayload,
  type SignedDecision,
  type SignedWaiver,
} from '../../contract/decision-payload';
import {
  fingerprint,
  parseAuthorizedKey,
  SshSigError,
  verifySshSignature,
  type SshPublicKey,
  type SshSigErrorCode,
} from './sshsig';

/** Clocks of signer and worker may disagree this much before a signature counts as from the future. */
export const MAX_CLOCK_SKEW_MS = 2 * 60_000;

export interface DecisionToVerify {
  releaseId: string;
  runId: string;
  manifestDigest: string;
  approver: string;
  decision: SignedDecision;
  comment?: string;
  signedAt: string;
  waiver?: SignedWaiver;
  /** The armored SSH signature. */
  signature: string;
  /** The approver's authorized_keys lines from approvers.yaml (ReleaseConfig.approverKeys). */
  keys: readonly string[];
  now: Date;
  maxAgeMs: number;
  /** Digests of signatures the release already counted (signatureDigest and payloadDigest of earlier results). */
  seen: readonly string[];
}

/** Why a signed decision was refused: the signature's own faults (SshSigErrorCode) or the decision's. */
export type DecisionRefusal =
  Exclude<SshSigErrorCode, 'bad-key'> | 'no-keys' | 'bad-time' | 'future' | 'expired' | 'replay';

export type DecisionVerdict =
  | {
      ok: true;
      /** `SHA256:…` of the key that signed, as `ssh-keygen -l` prints it. */
      fingerprint: string;
      keyType: string;
      /** sha256:<hex> of the decoded signature. */
      signatureDigest: string;
      /**
       * sha256:<hex> of the signed payload. Any signature over the same decision has it (a re-armored or re-signed
       * copy, an ECDSA signature with s negated), so it is what catches a replay.
       */
      payloadDigest: string;
    }
  | { ok: false; code: DecisionRefusal; reason: string };

export function verifyDecision(input: DecisionToVerify): DecisionVerdict {
  const refuse = (code: DecisionRefusal, reason: string): DecisionVerdict => ({ ok: false, code, reason });
  const keys: SshPublicKey[] = [];
  for (const line of input.keys) {
    try {
      keys.push(parseAuthorizedKey(line));
    } catch {
      // approvers.yaml is checked at load; a key that does not parse here just cannot match.
    }
  }
  if (keys.length === 0) {
    return refuse(
      'no-keys',
      `${input.approver} has no SSH public keys in approvers.yaml: add the .pub line of their signing key under approvers.${input.approver}.keys`,
    );
  }
  const signedAt = Date.parse(input.signedAt);
  if (!/^\d{4}-\d\d-\d\dT/.test(input.signedAt) || Number.isNaN(signedAt)) {
    return refuse('bad-time', 'signedAt is not an ISO 8601 time: sign again with mrel … --sign-with');
  }
  const now = input.now.getTime();
  if (signedAt > now + MAX_CLOCK_SKEW_MS) {
    return refuse(
      'future',
      `the decision was signed at ${new Date(signedAt).toISOString()}, later than now (${input.now.toISOString()}) by more than the allowed clock skew of ${MAX_CLOCK_SKEW_MS / 60_000} minutes: check the signer's clock`,
    );
  }
  if (now - signedAt > input.maxAgeMs) {
    return refuse(
      'expired',
      `the signature is from ${new Date(signedAt).toISOString()}, older than the ${formatAge(input.maxAgeMs)} a signed decision stays valid: sign the decision again`,
    );
  }
  const payload = decisionPayload(input);
  let verified;
  try {
    verified = verifySshSignature(input.signature, payload, { namespace: DECISION_NAMESPACE, keys });
  } catch (err) {
    if (!(err instanceof SshSigError) || err.code === 'bad-key') throw err;
    const reason =
      err.code === 'unknown-key' ? `${err.message} in approvers.yaml (approvers.${input.approver}.keys)` : err.message;
    return refuse(err.code, reason);
  }
  const signatureDigest = sha256(verified.raw);
  const payloadDigest = sha256(payload);
  if (input.seen.includes(signatureDigest) || input.seen.includes(payloadDigest)) {
    return refuse('replay', 'this signed decision was already used: sign a new one (a signature counts once)');
  }
  return {
    ok: true,
    fingerprint: fingerprint(verified.publicKey),
    keyType: verified.publicKey.type,
    signatureDigest,
    payloadDigest,
  };
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function formatAge(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} day(s)`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hour(s)`;
  return `${Math.round(ms / 60_000)} minute(s)`;
}
