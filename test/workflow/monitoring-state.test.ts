/**
 * The monitoring window's state, without Temporal: measurements tallied per metric on their intervals, what the UI's
 * details and `mrel status` show (a table per metric: phase, last value, successes, failures), a breach paused for
 * people, and what a release carries into its next run when it continues as new.
 */
import { describe, expect, it } from 'vitest';
import { renderStatus } from '../../client/format';
import type { Measurement, MonitorPolicy } from '../../contract/monitoring';
import type { ReleaseConfig, ReleaseRequest } from '../../contract/types';
import { ReleaseState } from '../../workflows/release-state';

const request: ReleaseRequest = {
  model: { name: 'credit-risk', version: '1.0.0', source: 'file:///models/credit-risk' },
  environment: 'production',
  policy: 'default',
  requestedBy: 'ci',
};
const at = (s: number) => new Date(Date.UTC(2026, 11, 1, 0, 0, s)).toISOString();

const monitor: MonitorPolicy = {
  window: '1h',
  onBreach: 'pause',
  pause: { roles: ['release-manager'], timeout: '4h', onTimeout: 'rollback' },
  metrics: [
    {
      name: 'latency',
      provider: { prometheus: { address: 'http://127.0.0.1:9090', query: 'q' } },
      args: {},
      interval: '1m',
      initialDelay: '30s',
      successCondition: 'result[0] <= 0.5',
      failureLimit: 1,
      inconclusiveLimit: 0,
      consecutiveErrorLimit: 4,
    },
    {
      name: 'data-drift',
      provider: { drift: {} },
      args: {},
      count: 1,
      failureCondition: 'result.datasetDrift',
      failureLimit: 0,
      inconclusiveLimit: 0,
      consecutiveErrorLimit: 4,
    },
  ],
};

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
  approvers: { amara: ['release-manager'], boris: ['ml-lead'] },
  gatePolicies: {},
  waivers: [],
  monitor,
} satisfies ReleaseConfig;

function monitoring(): ReleaseState {
  const state = new ReleaseState(request, 'release/credit-risk/1.0.0/production', [], at(0));
  state.config = config;
  state.openApproval(at(1));
  state.startCommit(at(2));
  state.setCommit(
    { repository: 'gitops', branch: 'main', sha: 'a'.repeat(40), paths: [], alreadyPresent: false },
    at(3),
  );
  state.startMonitoring(monitor, at(10));
  return state;
}

const measured = (phase: Measurement['phase'], value: string, s: number, message?: string): Measurement => ({
  phase,
  value,
  startedAt: at(s),
  finishedAt: at(s),
  ...(message ? { message } : {}),
});

describe('the monitoring window', () => {
  it('starts in stage monitoring with each metric due after its initial delay, and takes no approvals', () => {
    const state = monitoring();
    expect(state.stage).toBe('monitoring');
    expect(state.open).toBe(false);
    expect(state.monitoring.endsAt).toBe(new Date(Date.UTC(2026, 11, 1, 1, 0, 10)).toISOString());
    expect(state.monitoring.metrics.map((t) => [t.name, t.phase, t.nextAt])).toEqual([
      ['latency', 'Running', at(40)],
      ['data-drift', 'Running', at(10)],
    ]);
  });

  it('tallies measurements the Argo way: the next is due an interval later, count and failureLimit conclude', () => {
    const state = monitoring();
    const [latency, drift] = monitor.metrics as [MonitorPolicy['metrics'][0], MonitorPolicy['metrics'][0]];
    expect(state.recordMeasurement(latency, measured('Successful', '[0.12]', 41), at(41))).toMatchObject({
      phase: 'Running',
      successful: 1,
      nextAt: at(100),
    });
    // One failure is within failureLimit 1; the second fails the metric and nothing more is due.
    expect(state.recordMeasurement(latency, measured('Failed', '[0.9]', 100), at(100)).phase).toBe('Running');
    const failed = state.recordMeasurement(latency, measured('Failed', '[0.95]', 160, 'slow'), at(160));
    expect(failed).toMatchObject({ phase: 'Failed', failed: 2, successful: 1, count: 3, message: 'slow' });
    expect(failed.nextAt).toBeUndefined();
    // count: 1 — one measurement concludes the metric.
    expect(state.recordMeasurement(drift, measured('Successful', 'no drift', 11), at(11)).phase).toBe('Successful');
  });

  it('shows a table per metric in the UI details and in mrel status', () => {
    const state = monitoring();
    const [latency] = monitor.metrics as [MonitorPolicy['metrics'][0]];
    state.recordMeasurement(latency, measured('Successful', '[0.12]', 41), at(41));
    const details = state.details();
    expect(details).toContain('| monitoring | ⏳ watching | window 1h until 2026-12-01T01:00:10.000Z |');
    expect(details).toContain('| metric | phase | last value | successful | failed | inconclusive | error | next |');
    expect(details).toContain(`| latency | ⏳ Running | \\[0.12\\] | 1 | 0 | 0 | 0 | ${at(100)} |`);
    const text = renderStatus(state.status);
    expect(text).toContain('monitoring: watching, window 1h');
    expect(text).toMatch(/^ {2}latency +Running +1 +0 +0 +0 +\[0\.12\] +\(next 2026-12-01T00:01:40\.000Z\)$/m);
  });

  it('pauses a breach for the roles the policy names: a rollback from anyone else is refused', () => {
    const state = monitoring();
    state.updateMonitoring({ breach: { metric: 'latency', phase: 'Failed', message: 'slow', at: at(160) } }, at(160));
    state.pauseRollout(['release-manager'], at(4 * 3600), 'rollback', at(160), 'monitoring');
    expect(state.monitoring.awaiting).toMatchObject({ roles: ['release-manager'], from: ['amara'] });
    expect(state.decideRollout({ approver: 'boris' }, 'rollback', at(170)).accepted).toBe(false);
    expect(state.decideRollout({ approver: 'amara', comment: 'roll it back' }, 'rollback', at(171)).accepted).toBe(
      true,
    );
    expect(state.rolloutDecision).toMatchObject({ approver: 'amara', decision: 'rollback' });
    expect(state.monitoring.decisions).toHaveLength(1);
    expect(state.monitoring.awaiting).toBeUndefined();
    expect(state.details()).toContain('rollback by amara (release-manager): roll it back');
  });

  it('carries status, config and window into the next run when it continues as new', () => {
    const state = monitoring();
    const [latency] = monitor.metrics as [MonitorPolicy['metrics'][0]];
    state.recordMeasurement(latency, measured('Successful', '[0.12]', 41), at(41));
    const resume = state.resumeInput();
    const next = ReleaseState.resumed(resume, request, state.status.releaseId, [], at(50));
    expect(next.stage).toBe('monitoring');
    expect(next.config?.monitor).toEqual(monitor);
    expect(next.monitoring.metrics[0]).toMatchObject({ name: 'latency', successful: 1, nextAt: at(100) });
    expect(next.status.commit?.sha).toBe('a'.repeat(40));
  });
});
