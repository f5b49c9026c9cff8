/**
 * What an approver signs: one canonical byte string per decision that binds the release, the run, the model the gates
 * judged, the decision, the comment, the time and (for a waive) the waiver. Signer (`mrel … --sign-with`, or
 * `ssh-keygen -Y sign -n modelrelease-decision` by hand) and verifier build it with decisionPayload(), so both sign
 * and check the same bytes. Pure: workflows, activities and clients share it.
 */
import { z } from 'zod';
import { MAX_APPROVER_CHARS, MAX_COMMENT_CHARS } from './limits';

/** The SSH key types decisions may be signed with (activities/trust/sshsig.ts verifies them; approvers.yaml lists them). */
export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** The SSH signature namespace of decisions (`ssh-keygen -Y sign -n …`): a signature for Git or files never counts. */
export const DECISION_NAMESPACE = 'modelrelease-decision';
export const DECISION_PAYLOAD_TYPE = 'modelrelease.decision/v1';
/** An armored signature is well under 2 KiB for every supported key; a larger one is refused before it reaches history. */
export const MAX_SIGNATURE_CHARS = 4096;
export const SIGNED_DECISIONS = ['approve', 'reject', 'waive', 'rollback', 'keep'] as const;
export type SignedDecision = (typeof SIGNED_DECISIONS)[number];

const SHA256_REF = /^sha256:[0-9a-f]{64}$/;

/** The waiver a `waive` decision signs, as the waive signal carries it. */
export interface SignedWaiver {
  gate: string;
  ruleIds: string[];
  justification: string;
  expiresAt: string;
}

export interface DecisionPayloadFields {
  releaseId: string;
  runId: string;
  /** `sha256:<hex>`; a bare 64-hex digest (as manifests store it) is taken as sha256. */
  manifestDigest: string;
  decision: SignedDecision;
  comment?: string;
  signedAt: string;
  waiver?: SignedWaiver;
}

/**
 * The canonical JSON (RFC 8785) of the decision, as UTF-8 bytes: the exact message a decision's SSH signature is
 * over. Absent comment signs as "".
 */
export function decisionPayload(fields: DecisionPayloadFields): Uint8Array {
  const payload: Record<string, unknown> = {
    type: DECISION_PAYLOAD_TYPE,
    releaseId: fields.releaseId,
    runId: fields.runId,
    manifestDigest: sha256Ref(fields.manifestDigest),
    decision: fields.decision,
    comment: fields.comment ?? '',
    signedAt: fields.signedAt,
  };
  if (fields.waiver) {
    const { gate, ruleIds, justification, expiresAt } = fields.waiver;
    payload.waiver = { gate, ruleIds: [...ruleIds], justification, expiresAt };
  }
  return new TextEncoder().encode(canonicalJson(payload));
}

/** `sha256:<hex>` for a manifest digest in either spelling. */
export function sha256Ref(digest: string): string {
  return /^[0-9a-f]{64}$/.test(digest) ? `sha256:${digest}` : digest;
}

/**
 * The signature half of a signed decision: what a signal or update carries beside the decision itself. `runId` and
 * `manifestDigest` say what the signer saw; the release checks the signature against its own, not these.
 */
export const decisionSignatureSchema = z.object({
  signature: z
    .string()
    .max(MAX_SIGNATURE_CHARS, `signature must be at most ${MAX_SIGNATURE_CHARS} characters (one armored SSH signature)`)
    .regex(
      /^\s*-----BEGIN SSH SIGNATURE-----[A-Za-z0-9+/=\s]+-----END SSH SIGNATURE-----\s*$/,
      'signature must be the armored text `ssh-keygen -Y sign -n modelrelease-decision` prints (BEGIN and END lines included)',
    )
    .optional(),
  signedAt: z.iso
    .datetime({ offset: true, message: 'signedAt must be an ISO 8601 time (the time in the signed payload)' })
    .optional(),
  runId: z.string().min(1).max(128, 'runId must be at most 128 characters (a Temporal run id)').optional(),
  manifestDigest: z.string().regex(SHA256_REF, 'manifestDigest must be sha256:<64 hex>').optional(),
});
export type DecisionSignature = z.infer<typeof decisionSignatureSchema>;

/** The fields of a signed decision as a signal carries them; an unsigned one has no signature. */
export const signedDecisionFieldsSchema = decisionSignatureSchema.extend({
  approver: z
    .string()
    .min(1, 'approver is required (who is deciding?)')
    .max(MAX_APPROVER_CHARS, `approver must be at most ${MAX_APPROVER_CHARS} characters (an id from approvers.yaml)`),
  decision: z.enum(SIGNED_DECISIONS),
  comment: z.string().max(MAX_COMMENT_CHARS, `comment must be at most ${MAX_COMMENT_CHARS} characters`).optional(),
});
export type SignedDecisionFields = z.infer<typeof signedDecisionFieldsSchema>;

/**
 * RFC 8785 for the values a payload holds (strings, arrays, objects; numbers as ECMAScript prints them): keys in
 * UTF-16 code-unit order, strings as JSON.stringify escapes them. Here rather than the `canonicalize` package because
 * the contract imports nothing but zod; a test holds the two to the same bytes.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('a canonical payload holds finite numbers only');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const members = Object.keys(record)
      .filter((key) => record[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${members.join(',')}}`;
  }
  throw new TypeError(`a canonical payload cannot hold a ${typeof value}`);
}
