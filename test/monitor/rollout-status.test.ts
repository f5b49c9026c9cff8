import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../activities/monitor/rollout-status';
import {
  argoSyncState,
  deploymentRolloutState,
  fluxSyncState,
  inferenceServiceState,
  revisionMatches,
} from '../../activities/monitor/rollout-status';

const SHA = '3f2a9c0d1e4b5a6978877665544332211aabbccd';
const OTHER = '0000000000000000000000000000000000000001';

function deployment(
  spec: { replicas?: number; generation?: number },
  status: Record<string, unknown>,
  progressing?: { reason: string; message?: string; lastUpdateTime?: string },
): KubeObject {
  return {
    metadata: { generation: spec.generation ?? 2 },
    spec: spec.replicas === undefined ? {} : { replicas: spec.replicas },
    status: {
      ...status,
      conditions: progressing ? [{ type: 'Progressing', status: 'False', ...progressing }] : [],
    },
  };
}

describe('revisionMatches', () => {
  it('accepts the revision forms Flux and Argo CD report for exactly this commit', () => {
    expect(revisionMatches(`main@sha1:${SHA}`, SHA)).toBe(true);
    expect(revisionMatches(`main/${SHA}`, SHA)).toBe(true);
    expect(revisionMatches(SHA, SHA)).toBe(true);
    expect(revisionMatches(`main@sha1:${SHA.toUpperCase()}`, SHA)).toBe(true);
  });

  it('refuses another commit, an abbreviation and a longer hash', () => {
    expect(revisionMatches(`main@sha1:${OTHER}`, SHA)).toBe(false);
    expect(revisionMatches(`main@sha1:${SHA.slice(0, 12)}`, SHA)).toBe(false);
    expect(revisionMatches(`main@sha1:a${SHA}`, SHA)).toBe(false);
    expect(revisionMatches(undefined, SHA)).toBe(false);
    expect(revisionMatches('', SHA)).toBe(false);
  });
});

describe('deploymentRolloutState (kubectl rollout status rules)', () => {
  it('waits until the controller has observed the new generation', () => {
    const state = deploymentRolloutState(
      deployment(
        { replicas: 2, generation: 3 },
        { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 },
      ),
    );
    expect(state.state).toBe('progressing');
    expect(state.message).toMatch(/spec update to be observed/);
  });

  it('counts new replicas still to be updated', () => {
    const state = deploymentRolloutState(
      deployment({ replicas: 3 }, { observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3 }),
    );
    expect(state).toMatchObject({ state: 'progressing', message: '1 of 3 new replicas updated' });
    expect(state.replicas).toEqual({ desired: 3, updated: 1, ready: 0, available: 3 });
  });

  it('waits for old replicas to terminate', () => {
    const state = deploymentRolloutState(
      deployment({ replicas: 2 }, { observedGeneration: 2, replicas: 3, updatedReplicas: 2, availableReplicas: 2 }),
    );
    expect(state).toMatchObject({ state: 'progressing', message: '1 old replicas pending termination' });
  });

  it('waits for updated replicas to become available', () => {
    const state = deploymentRolloutState(
      deployment({ replicas: 2 }, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 1 }),
    );
    expect(state).toMatchObject({ state: 'progressing', message: '1 of 2 updated replicas available' });
  });

  it('is complete when every desired replica is updated and available and no old one is left', () => {
    const state = deploymentRolloutState(
      deployment(
        { replicas: 2 },
        { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 },
      ),
    );
    expect(state.state).toBe('complete');
    expect(state.replicas).toEqual({ desired: 2, updated: 2, ready: 2, available: 2 });
  });

  it('defaults spec.replicas to 1 as the API server does', () => {
    const waiting = deploymentRolloutState(deployment({}, { observedGeneration: 2 }));
    expect(waiting).toMatchObject({ state: 'progressing', message: '0 of 1 new replicas updated' });
  });

  it('is stalled on ProgressDeadlineExceeded for the observed generation', () => {
    const state = deploymentRolloutState(
      deployment(
        { replicas: 1 },
        { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 0 },
        { reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "m-5c9" has timed out progressing.' },
      ),
    );
    expect(state.state).toBe('stalled');
    expect(state.message).toMatch(/exceeded its progress deadline: ReplicaSet "m-5c9" has timed out/);
  });

  it('ignores a deadline of an earlier generation the controller has not re-evaluated yet', () => {
    const state = deploymentRolloutState(
      deployment(
        { replicas: 1, generation: 3 },
        { observedGeneration: 2, replicas: 1, updatedReplicas: 0 },
        { reason: 'ProgressDeadlineExceeded' },
      ),
    );
    expect(state.state).toBe('progressing');
  });

  it('ignores a deadline set before the watch began (the stalled rollout a rollback is undoing), not one after', () => {
    const stuck = (lastUpdateTime: string) =>
      deployment(
        { replicas: 1 },
        { observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 },
        { reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "m-v2" has timed out progressing.', lastUpdateTime },
      );
    const since = '2026-12-01T10:00:05.500Z';
    expect(deploymentRolloutState(stuck('2026-12-01T10:00:05Z'), since)).toMatchObject({ state: 'progressing' });
    expect(deploymentRolloutState(stuck('2026-12-01T10:00:40Z'), since)).toMatchObject({ state: 'stalled' });
    expect(deploymentRolloutState(stuck('2026-12-01T10:00:05Z'))).toMatchObject({ state: 'stalled' });
    // A rollback's watch: the condition the controller keeps refreshing for the rollout being undone is no stall.
    const rollback = deploymentRolloutState(stuck('2026-12-01T10:00:40Z'), undefined, { deadlineCounts: false });
    expect(rollback).toMatchObject({ state: 'progressing', message: '1 old replicas pending termination' });
  });

  it('waits for a Deployment that does not exist yet', () => {
    expect(deploymentRolloutState(undefined)).toMatchObject({ state: 'progressing' });
  });
});

describe('inferenceServiceState', () => {
  const service = (conditions: unknown[], observedGeneration = 1): KubeObject => ({
    metadata: { generation: 1 },
    status: { observedGeneration, conditions },
  });

  it('is complete when Ready is True for the current generation', () => {
    expect(inferenceServiceState(service([{ type: 'Ready', status: 'True' }])).state).toBe('complete');
    expect(inferenceServiceState(service([{ type: 'Ready', status: 'True' }], 0)).state).toBe('progressing');
  });

  it('waits while not Ready, saying why', () => {
    const state = inferenceServiceState(
      service([{ type: 'Ready', status: 'False', reason: 'PredictorNotReady', message: 'pulling' }]),
    );
    expect(state).toMatchObject({ state: 'progressing' });
    expect(state.message).toMatch(/PredictorNotReady: pulling/);
  });

  it('is stalled when a condition carries ProgressDeadlineExceeded', () => {
    const state = inferenceServiceState(
      service([{ type: 'PredictorReady', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'timed out' }]),
    );
    expect(state.state).toBe('stalled');
  });
});

describe('fluxSyncState', () => {
  const kustomization = (status: Record<string, unknown>): KubeObject => ({ status });
  const ready = (status: string, reason: string, message = '') => ({ type: 'Ready', status, reason, message });

  it('is applied when lastAppliedRevision is the commit and Ready is not False', () => {
    const state = fluxSyncState(
      kustomization({
        lastAppliedRevision: `main@sha1:${SHA}`,
        conditions: [ready('True', 'ReconciliationSucceeded')],
      }),
      SHA,
    );
    expect(state).toMatchObject({ state: 'applied', revision: `main@sha1:${SHA}` });
  });

  it('waits while another revision is applied', () => {
    const state = fluxSyncState(
      kustomization({
        lastAppliedRevision: `main@sha1:${OTHER}`,
        conditions: [ready('True', 'ReconciliationSucceeded')],
      }),
      SHA,
    );
    expect(state.state).toBe('waiting');
    expect(state.message).toContain(`main@sha1:${OTHER}`);
  });

  it('counts a commit whose health checks are running as applied (wait: true)', () => {
    const message = `Running health checks for revision main@sha1:${SHA} with a timeout of 30s`;
    const state = fluxSyncState(
      kustomization({
        lastAppliedRevision: `main@sha1:${OTHER}`,
        lastAttemptedRevision: `main@sha1:${SHA}`,
        conditions: [ready('Unknown', 'Progressing', message), { type: 'Healthy', status: 'Unknown', message }],
      }),
      SHA,
    );
    expect(state.state).toBe('applied');
  });

  it('hands a failed health check of the commit to the workload watch', () => {
    const state = fluxSyncState(
      kustomization({
        lastAppliedRevision: `main@sha1:${OTHER}`,
        lastAttemptedRevision: `main@sha1:${SHA}`,
        conditions: [ready('False', 'HealthCheckFailed', 'timeout waiting for: [Deployment/ml/m status: InProgress]')],
      }),
      SHA,
    );
    expect(state.state).toBe('applied');
  });

  it('fails at once when the commit does not build', () => {
    const state = fluxSyncState(
      kustomization({
        lastAppliedRevision: `main@sha1:${OTHER}`,
        lastAttemptedRevision: `main@sha1:${SHA}`,
        conditions: [ready('False', 'BuildFailed', 'kustomize build failed: accumulating resources')],
      }),
      SHA,
    );
    expect(state).toMatchObject({ state: 'failed' });
    expect(state.message).toMatch(/BuildFailed: kustomize build failed/);
  });

  it('waits out other failures of the commit, which Flux retries', () => {
    const state = fluxSyncState(
      kustomization({
        lastAttemptedRevision: `main@sha1:${SHA}`,
        conditions: [ready('False', 'ReconciliationFailed', 'connection refused')],
      }),
      SHA,
    );
    expect(state.state).toBe('waiting');
  });

  it('waits for a Kustomization that does not exist', () => {
    expect(fluxSyncState(undefined, SHA).state).toBe('waiting');
  });
});

describe('argoSyncState', () => {
  const application = (status: Record<string, unknown>): KubeObject => ({ status });

  it('is applied when synced to the commit and Healthy or Progressing', () => {
    for (const health of ['Healthy', 'Progressing']) {
      const state = argoSyncState(
        application({ sync: { status: 'Synced', revision: SHA }, health: { status: health } }),
        SHA,
      );
      expect(state.state).toBe('applied');
    }
  });

  it('accepts the commit among the revisions of a multi-source application', () => {
    const state = argoSyncState(
      application({ sync: { status: 'Synced', revisions: [OTHER, SHA] }, health: { status: 'Healthy' } }),
      SHA,
    );
    expect(state.state).toBe('applied');
  });

  it('waits while OutOfSync or at another revision', () => {
    expect(
      argoSyncState(application({ sync: { status: 'OutOfSync', revision: SHA }, health: { status: 'Healthy' } }), SHA)
        .state,
    ).toBe('waiting');
    expect(
      argoSyncState(application({ sync: { status: 'Synced', revision: OTHER }, health: { status: 'Healthy' } }), SHA)
        .state,
    ).toBe('waiting');
  });

  it('fails when Degraded at the commit, or when the sync operation for it failed', () => {
    expect(
      argoSyncState(
        application({ sync: { status: 'Synced', revision: SHA }, health: { status: 'Degraded', message: 'x' } }),
        SHA,
      ).state,
    ).toBe('failed');
    const failed = argoSyncState(
      application({
        sync: { status: 'OutOfSync', revision: OTHER },
        health: { status: 'Healthy' },
        operationState: {
          phase: 'Failed',
          message: 'one or more objects failed to apply',
          syncResult: { revision: SHA },
        },
      }),
      SHA,
    );
    expect(failed.state).toBe('failed');
    expect(failed.message).toMatch(/failed to apply/);
  });
});
