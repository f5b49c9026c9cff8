import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  decisionPayload,
  MAX_SIGNATURE_CHARS,
  signedDecisionFieldsSchema,
} from '../../contract/decision-payload';

const DIGEST = 'a'.repeat(64);
const base = {
  releaseId: 'release/credit-risk/1.0.0/production',
  runId: '0199-run',
  manifestDigest: `sha256:${DIGEST}`,
  decision: 'approve' as const,
  signedAt: '2026-12-02T00:00:00.000Z',
};
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('decision payload', () => {
  it('is the canonical JSON of the agreed fields, keys sorted, comment "" when absent', () => {
    expect(text(decisionPayload(base))).toBe(
      `{"comment":"","decision":"approve","manifestDigest":"sha256:${DIGEST}","releaseId":"release/credit-risk/1.0.0/production","runId":"0199-run","signedAt":"2026-12-02T00:00:00.000Z","type":"modelrelease.decision/v1"}`,
    );
  });

  it('gives the same bytes for a bare manifest digest, and different bytes for every field that changes', () => {
    const bytes = text(decisionPayload(base));
    expect(text(decisionPayload({ ...base, manifestDigest: DIGEST }))).toBe(bytes);
    const changes = [
      { releaseId: 'release/credit-risk/1.0.0/staging' },
      { runId: 'other-run' },
      { manifestDigest: 'b'.repeat(64) },
      { decision: 'reject' as const },
      { comment: 'looks good' },
      { signedAt: '2026-12-02T00:00:00.001Z' },
      { decision: 'waive' as const, waiver: { gate: 'scan', ruleIds: ['R1'], justification: 'x', expiresAt: 'y' } },
    ];
    const all = changes.map((change) => text(decisionPayload({ ...base, ...change })));
    expect(new Set([bytes, ...all]).size).toBe(changes.length + 1);
  });

  it('signs a waiver with exactly its gate, rule ids, justification and expiry', () => {
    const waiver = { gate: 'scan', ruleIds: ['B', 'A'], justification: 'accepted risk', expiresAt: '2027-01-01' };
    const json = JSON.parse(
      text(decisionPayload({ ...base, decision: 'waive', waiver: { ...waiver, extra: 1 } as typeof waiver })),
    );
    expect(json.waiver).toEqual(waiver);
  });

  it('canonicalizes exactly as the canonicalize package (RFC 8785) does', () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.string({ unit: 'binary' }),
        fc.boolean(),
        fc.constant(null),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer(),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(fc.string({ unit: 'binary' }), tie('node'), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(fc.property(value, (v) => canonicalJson(v) === canonicalize(v)));
  });
});

describe('signed decision fields', () => {
  const armored = '-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n';

  it('takes an armored signature with its time, run and digest', () => {
    const parsed = signedDecisionFieldsSchema.parse({
      approver: 'alice',
      decision: 'approve',
      signature: armored,
      signedAt: base.signedAt,
      runId: base.runId,
      manifestDigest: base.manifestDigest,
    });
    expect(parsed.signature).toBe(armored);
  });

  it('refuses a signature over 4 KiB, text that is not armored, a bad time and a bare digest, naming the field', () => {
    const problems = (input: Record<string, unknown>) => {
      const result = signedDecisionFieldsSchema.safeParse({ approver: 'alice', decision: 'approve', ...input });
      return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
    };
    const long = armored.replace('U1NIU0lH', 'A'.repeat(MAX_SIGNATURE_CHARS));
    expect(problems({ signature: long })).toEqual(['signature']);
    expect(problems({ signature: 'not a signature' })).toEqual(['signature']);
    expect(problems({ signedAt: 'yesterday' })).toEqual(['signedAt']);
    expect(problems({ manifestDigest: DIGEST })).toEqual(['manifestDigest']);
    expect(problems({ decision: 'maybe' })).toEqual(['decision']);
  });
});
