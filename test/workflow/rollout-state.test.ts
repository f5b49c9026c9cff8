/**
 * The monitor stage's state, without Temporal: a stalled rollout paused for people counts a `rollback` or `keep` only
 * from a role the delivery policy names and only while paused; everything else is recorded as refused with why, and
 * the UI's details and the status say what is watched and awaited. Also the bound on the waivers one release holds.
 */
import { describe, expect, it } from 'vitest';
import { releaseRequestSchema, type ReleaseConfig, type ReleaseRequest } from '../../contract/types';
import { MAX_WAIVERS } from '../../contract/limits';
import { ReleaseState } from '../../workflows/release-state';
import { requestSchemaFor } from '../../workflows/request-check';
import type { PlanVersion } from '../../workflows/plan';

const request: ReleaseRequest = {
  model: { name: 'credit-risk', version: '1.0.0', source: 'file:///models/credit-risk' },
  environment: 'production',
  policy: 'default',
  requestedBy: 'ci',
};
const at = (s: number) => new Date(Date.UTC(2026, 11, 1, 0, 0, s)).toISOString();

const config = {
  policy: { name: 'default', file: 'policies/default.yaml', digest: 'p' },
  approversFile: { file: 'approvers.yaml', digest: 'q' },
  approval: {
    environment: 'production',
    minApprovers: 1,
    allowedRoles: ['release-manager'],
    requiredRoles: [],
    timeout: '72h',
  },
  approvers: { amara: ['release-manager'], boris: ['ml-lead'], cyril: ['ml-engineer'] },
  gatePolicies: {},
  waivers: [],
} satisfies ReleaseConfig;

/** A release that committed and whose rollout is watched. */
function committed(): ReleaseState {
  const state = new ReleaseState(request, 'release/credit-risk/1.0.0/production', [], at(0));
  state.config = config;
  state.openApproval(at(1));
  state.startCommit(at(2));
  state.setCommit(
    { repository: 'gitops', branch: 'main', sha: 'a'.repeat(40), paths: [], alreadyPresent: false },
    at(3),
  );
  state.startMonitor('Deployment production/credit-risk', at(4));
  return state;
}

describe('rollout decisions', () => {
  it('refuses rollback and keep while the rollout is only being watched, and says why', () => {
    const state = committed();
    const outcome = state.decideRollout({ approver: 'amara' }, 'rollback', at(5));
    expect(outcome.accepted).toBe(false);
    expect(state.status.refused.at(-1)).toMatchObject({ approver: 'amara', decision: 'rollback' });
    expect(outcome.reason).toMatch(/only while a stalled rollout or a breached monitoring window waits for people/);
    expect(state.rolloutDecision).toBeUndefined();
  });

  it('counts a decision only from a role the policy names, then stops waiting', () => {
    const state = committed();
    state.updateRollout({ state: 'stalled', reason: 'ProgressDeadlineExceeded' }, at(5));
    state.pauseRollout(['release-manager', 'ml-lead'], at(600), 'rollback', at(6));
    expect(state.status.rollout?.awaiting).toEqual({
      roles: ['release-manager', 'ml-lead'],
      from: ['amara', 'boris'],
      deadline: at(600),
      onTimeout: 'rollback',
    });
    const engineer = state.decideRollout({ approver: 'cyril', comment: 'looks fine' }, 'keep', at(7));
    expect(engineer).toMatchObject({ accepted: false });
    expect(engineer.reason).toMatch(/cyril holds none of the roles .*release-manager, ml-lead/);
    const stranger = state.decideRollout({ approver: 'mallory' }, 'keep', at(8));
    expect(stranger.accepted).toBe(false);

    expect(state.decideRollout({ approver: 'boris', comment: 'node drained' }, 'rollback', at(9))).toEqual({
      accepted: true,
    });
    expect(state.rolloutDecision).toMatchObject({ approver: 'boris', role: 'ml-lead', decision: 'rollback' });
    expect(state.status.rollout?.awaiting).toBeUndefined();
    // The pause is over: a second decision changes nothing.
    expect(state.decideRollout({ approver: 'amara' }, 'keep', at(10)).accepted).toBe(false);
    expect(state.status.rollout?.decisions).toHaveLength(1);
  });

  it('records a malformed signal as refused without counting it', () => {
    const state = committed();
    state.pauseRollout(['release-manager'], at(600), 'keep', at(6));
    const outcome = state.decideRollout(
      { approver: 'amara' },
      'keep',
      at(7),
      'malformed keep signal (comment: too long)',
    );
    expect(outcome.accepted).toBe(false);
    expect(state.rolloutDecision).toBeUndefined();
    expect(state.status.rollout?.awaiting).toBeDefined();
  });

  it('records a signed decision with its key, shows it in the details, and knows its payload is spent', () => {
    const state = committed();
    state.pauseRollout(['release-manager'], at(600), 'keep', at(6));
    const signed = {
      fingerprint: 'SHA256:abc',
      keyType: 'ssh-ed25519',
      signedAt: at(6),
      runId: 'run-1',
      manifestDigest: `sha256:${'c'.repeat(64)}`,
      signature: '-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----',
      payloadDigest: `sha256:${'d'.repeat(64)}`,
    };
    expect(state.decideRollout({ approver: 'amara', comment: 'ok' }, 'keep', at(7), undefined, { signed })).toEqual({
      accepted: true,
    });
    expect(state.status.rollout?.decisions[0]).toMatchObject({ approver: 'amara', decision: 'keep', signed });
    expect(state.details()).toContain('keep by amara (release-manager) signed SHA256:abc: ok');
    expect(state.signedPayloads()).toEqual([signed.payloadDigest]);
  });

  it('refuses with the reason the signature check gave, and counts nothing', () => {
    const state = committed();
    state.pauseRollout(['release-manager'], at(600), 'keep', at(6));
    expect(state.rolloutRefusal({ approver: 'amara' }, 'keep')).toBeUndefined();
    const outcome = state.decideRollout({ approver: 'amara' }, 'keep', at(7), 'signature refused (bad-signature): x');
    expect(outcome).toMatchObject({ accepted: false, reason: 'signature refused (bad-signature): x' });
    expect(state.status.rollout?.decisions).toEqual([]);
    expect(state.status.refused.at(-1)).toMatchObject({ approver: 'amara', decision: 'keep' });
  });

  it('shows the monitor row in the UI details: workload, replicas, what is awaited and the revert', () => {
    const state = committed();
    state.updateRollout(
      { state: 'stalled', reason: 'rollout stalled', replicas: { desired: 2, updated: 1, ready: 1, available: 1 } },
      at(5),
    );
    state.pauseRollout(['release-manager'], at(600), 'rollback', at(6));
    let details = state.details();
    expect(details).toContain('| monitor | ⏸️ paused |');
    expect(details).toContain('Deployment production/credit-risk; 1/2 ready, 1 updated');
    expect(details).toContain('awaiting rollback or keep from: amara');
    state.decideRollout({ approver: 'amara', comment: 'roll back' }, 'rollback', at(7));
    state.updateRollout(
      { state: 'rolled-back', revert: { sha: 'b'.repeat(40), decidedBy: 'amara', reason: 'x' } },
      at(8),
    );
    details = state.details();
    expect(details).toContain('↩️ rolled back');
    expect(details).toContain(`reverted in ${'b'.repeat(12)} (amara)`);
  });

  it('takes no approval once the release is committed and watched', () => {
    const state = committed();
    expect(state.open).toBe(false);
    expect(state.decide({ approver: 'amara', decision: 'approve' }, at(5)).accepted).toBe(false);
  });
});

describe('request check of delivery releases', () => {
  const delivering: PlanVersion = {
    hardened: true,
    notifying: true,
    contentGates: true,
    planned: true,
    delivering: true,
    monitoring: true,
  };
  const planned: PlanVersion = { ...delivering, delivering: false, monitoring: false };
  it('takes image.push only from releases that can push (the check a running release started with stays)', () => {
    const pushing = { ...request, image: { ref: 'docker-daemon:app:ci', push: '127.0.0.1:5000/team/app' } };
    expect(requestSchemaFor(delivering).parse(pushing).image).toEqual(pushing.image);
    expect(requestSchemaFor(planned).parse(pushing).image).toEqual({ ref: 'docker-daemon:app:ci' });
    expect(requestSchemaFor(delivering).safeParse({ ...request, image: { ref: 'r', pushTo: 'x' } }).success).toBe(
      false,
    );
  });
});

describe('the door on images to push', () => {
  const problems = (image: unknown) => {
    const parsed = releaseRequestSchema.safeParse({ ...request, image });
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  it('asks where to push an image only the local engine holds, and pushes nothing else', () => {
    expect(problems({ ref: 'docker-daemon:app:ci', push: '127.0.0.1:5000/team/app' })).toEqual([]);
    expect(problems({ ref: 'docker-daemon:app:ci' })).toEqual([
      expect.stringMatching(/^image\.push: a docker-daemon: image exists only in the local engine/),
    ]);
    expect(problems({ ref: 'registry.example.com/app:1', push: 'registry.example.com/other' })).toEqual([
      expect.stringMatching(/^image\.push: only a docker-daemon: image is pushed by the release/),
    ]);
    expect(problems({ ref: 'registry.example.com/app:1' })).toEqual([]);
  });
});

describe('waivers', () => {
  it('grants at most MAX_WAIVERS waivers to one release, and says why the next one is refused', () => {
    const state = new ReleaseState(request, 'release/credit-risk/1.0.0/production', [], at(0));
    state.config = { ...config, waiverPolicy: { maxDays: 30, roles: { '*': ['release-manager'] }, hold: true } };
    const scan = { gate: 'scan', verdict: 'warn' as const, summary: 'findings', metrics: {}, findings: [] };
    state.recordGate({ ...scan, startedAt: at(1), finishedAt: at(1) }, at(1));
    state.openApproval(at(2));
    const waive = (n: number) => ({
      approver: 'amara',
      gate: 'scan',
      ruleIds: [`rule-${n}`],
      justification: 'reviewed',
      expiresAt: at(86_400),
    });
    for (let n = 0; n < MAX_WAIVERS; n++) {
      expect(state.waiveRefusal(waive(n), at(3))).toBeUndefined();
      state.grantWaiver(waive(n), { unsigned: true }, at(3));
    }
    expect(state.status.waivers).toHaveLength(MAX_WAIVERS);
    expect(state.waiveRefusal(waive(MAX_WAIVERS), at(4))).toBe(
      `the release already holds ${MAX_WAIVERS} waivers, the most one release may; put lasting accepted risks in config/waivers.yaml`,
    );
  });
});
