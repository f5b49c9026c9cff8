/**
 * How a release shows what changed: the UI's current details, the ReleaseStage and RiskLevel search attributes, the
 * engine's metrics, and (hardened releases) the compact status kept on the server as the memo for readers when no
 * worker answers. Each search-attribute or memo upsert is a command in the history: a release publishes at the same
 * points, with the same changes, every time it replays.
 */
import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import {
  ModelNameKey,
  ModelVersionKey,
  RELEASE_STATUS_MEMO,
  ReleaseStageKey,
  RiskLevelKey,
  TargetEnvironmentKey,
} from '../contract/definitions';
import type { GateResult, ReleaseRequest } from '../contract/types';
import { ReleaseMetrics } from './release-metrics';
import type { ReleaseState } from './release-state';

export interface PublishOptions {
  /** Keep the compact status as the memo (hardened releases). */
  memo: boolean;
  /** Publish RiskLevel (releases from before the content gates carry none). */
  risk: boolean;
}

/** The search attributes that name the release, set once at its start. */
export function publishIdentity(request: ReleaseRequest): void {
  upsertSearchAttributes([
    { key: ModelNameKey, value: request.model.name },
    { key: ModelVersionKey, value: request.model.version },
    { key: TargetEnvironmentKey, value: request.environment },
  ]);
}

/** The function that publishes each change of `state`. */
export function publisher(state: ReleaseState, options: PublishOptions): () => void {
  const metrics = new ReleaseMetrics(state.request.environment, state.request.model.name);
  let risk: string | undefined;
  let memo = '';
  return () => {
    metrics.observe(state.status);
    setCurrentDetails(state.details());
    const level = options.risk ? riskLevel(state.status.gates) : undefined;
    if (level !== undefined && level !== risk) {
      risk = level;
      upsertSearchAttributes([
        { key: ReleaseStageKey, value: state.status.stage },
        { key: RiskLevelKey, value: level },
      ]);
    } else upsertSearchAttributes([{ key: ReleaseStageKey, value: state.status.stage }]);
    if (!options.memo) return;
    const compact = state.compactStatus();
    const text = JSON.stringify(compact);
    if (text !== memo) {
      memo = text;
      upsertMemo({ [RELEASE_STATUS_MEMO]: compact });
    }
  };
}

/** low | medium | high from the verdicts so far; undefined before any gate ran. */
export function riskLevel(gates: GateResult[]): string | undefined {
  if (gates.length === 0) return undefined;
  if (gates.some((g) => g.verdict === 'fail' || g.verdict === 'error')) return 'high';
  if (gates.some((g) => g.verdict === 'warn')) return 'medium';
  return 'low';
}
