import { describe, expect, it } from 'vitest';
import { durationMs } from '../../contract/duration';
import { approvalProgress, refusalReason, usefulApprovers } from '../../workflows/approval';
import type { ApprovalRule, Decision, ReleaseConfig } from '../../contract/types';

const rule: ApprovalRule = {
  environment: 'production',
  minApprovers: 2,
  allowedRoles: ['release-manager', 'ml-lead', 'ml-ethics'],
  requiredRoles: [{ role: 'release-manager', count: 1, reason: 'policy default' }],
  timeout: '72h',
};
const config: ReleaseConfig = {
  policy: { name: 'default', file: 'config/policies/default.yaml', digest: 'x' },
  approversFile: { file: 'config/approvers.yaml', digest: 'y' },
  approval: rule,
  approvers: {
    alice: ['release-manager'],
    bob: ['ml-lead'],
    dana: ['ml-ethics', 'ml-lead'],
    rm2: ['release-manager', 'ml-lead'],
    erin: ['legal'],
    carol: ['ml-engineer'],
  },
  gatePolicies: {},
  waivers: [],
};
const approval = (approver: string, roles: string[]): Decision => ({
  approver,
  role: roles[0] as string,
  roles,
  decision: 'approve',
  at: '2026-01-01T00:00:00.000Z',
});

describe('approval policy', () => {
  it('needs the minimum of distinct approvers and a release-manager among them', () => {
    expect(approvalProgress([], rule)).toMatchObject({ satisfied: false, approvalsMissing: 2 });
    expect(
      approvalProgress([approval('bob', ['ml-lead']), approval('dana', ['ml-ethics', 'ml-lead'])], rule),
    ).toMatchObject({
      satisfied: false,
      approvalsMissing: 1,
      missingRoles: [{ role: 'release-manager', count: 1 }],
    });
    expect(
      approvalProgress([approval('bob', ['ml-lead']), approval('alice', ['release-manager'])], rule).satisfied,
    ).toBe(true);
  });

  it('never counts one approver with two roles twice', () => {
    const both = approval('rm2', ['release-manager', 'ml-lead']);
    expect(approvalProgress([both], rule)).toMatchObject({ satisfied: false, approvalsMissing: 1 });
    const legalToo = [{ role: 'legal', count: 1, reason: 'license review' }];
    expect(approvalProgress([both, approval('bob', ['ml-lead'])], rule, legalToo)).toMatchObject({
      satisfied: false,
      missingRoles: [{ role: 'legal', count: 1 }],
    });
    // The matching moves rm2 to the release-manager slot even when it was first seen elsewhere.
    const twoSlots: ApprovalRule = {
      ...rule,
      requiredRoles: [{ role: 'ml-lead', count: 1, reason: 'p' }, ...rule.requiredRoles],
    };
    expect(approvalProgress([both, approval('dana', ['ml-ethics', 'ml-lead'])], twoSlots).satisfied).toBe(true);
  });

  it('refuses strangers, wrong roles, second approvals and decisions after the end', () => {
    const ctx = {
      config,
      approvals: [approval('bob', ['ml-lead'])],
      extra: [],
      stage: 'approval',
      acceptsApprovals: true,
      open: true,
    };
    expect(refusalReason('approve', 'mallory', ctx)).toBe('"mallory" is not an approver in config/approvers.yaml');
    expect(refusalReason('approve', 'carol', ctx)).toBe(
      'carol has roles [ml-engineer] but production decisions need one of [release-manager, ml-lead, ml-ethics] (policy default)',
    );
    expect(refusalReason('approve', 'bob', ctx)).toMatch(/^bob already approved at/);
    expect(refusalReason('reject', 'bob', ctx)).toBeUndefined();
    expect(refusalReason('approve', 'alice', { ...ctx, open: false, stage: 'released' })).toBe(
      'the release is already released; decisions are no longer accepted',
    );
    expect(refusalReason('approve', 'alice', { ...ctx, acceptsApprovals: false, stage: 'acquire' })).toMatch(
      /still in stage acquire/,
    );
    // A role a gate asked for (legal review) makes its holders eligible.
    expect(
      refusalReason('approve', 'erin', { ...ctx, extra: [{ role: 'legal', count: 1, reason: 'license' }] }),
    ).toBeUndefined();
  });

  it('names only the approvers who can still move the release forward', () => {
    expect(usefulApprovers([], config)).toEqual(['alice', 'bob', 'dana', 'rm2']);
    expect(usefulApprovers([approval('bob', ['ml-lead'])], config)).toEqual(['alice', 'rm2']);
  });

  it('reads policy durations in the one grammar, as the releases already running recorded them', () => {
    // Every recorded history's policy says 72h; a release replays only if that reads the same as when it ran.
    expect(durationMs('72h')).toBe(72 * 3_600_000);
    expect(durationMs('90s')).toBe(90_000);
    expect(durationMs('7d')).toBe(7 * 86_400_000);
    expect(() => durationMs('soon')).toThrow(/not a duration/);
  });
});
