/**
 * Names shared by the workflow, the workers, the client, the CLI and the tests: defined once here.
 * Imported by workflow code, so it must stay deterministic and free of I/O.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type {
  DecideInput,
  DecideOutcome,
  DecisionInput,
  ReleaseStatus,
  RetryInput,
  RolloutDecisionInput,
  WaiveInput,
} from './types';

/** Task queue of the release worker (CPU work: acquire, gitops, config). */
export const RELEASE_TASK_QUEUE = 'model-release';
/** Task queue of the evaluation worker (GPU nodes in production). */
export const EVALUATION_TASK_QUEUE = 'evaluation';

/** `release/<model>/<version>/<environment>`: one workflow per model version and environment. */
export function releaseWorkflowId(model: string, version: string, environment: string): string {
  return `release/${model}/${version}/${environment}`;
}

/** The release as it stands: stage, gate results, approvals, what is awaited from whom. */
export const statusQuery = defineQuery<ReleaseStatus>('status');
/** Approve the release. Refused (and recorded as refused) when the approver lacks a role or already approved. */
export const approveSignal = defineSignal<[DecisionInput]>('approve');
/** Reject the release: it ends as rejected with the comment as reason. */
export const rejectSignal = defineSignal<[DecisionInput]>('reject');
/**
 * Try a failed step again: the GitOps commit of an approved release that the remote refused or failed, once the remote
 * is fixed. Counts only while the release waits for it (its status shows `retrying.waitingFor`).
 */
export const retrySignal = defineSignal<[RetryInput]>('retry');
/**
 * A stalled rollout that the policy pauses for people: roll it back (a revert commit, then the rollback's rollout
 * watched) or keep it (the rollout is watched once more). Role-checked like approvals; counts only while paused.
 */
export const rollbackSignal = defineSignal<[RolloutDecisionInput]>('rollback');
export const keepSignal = defineSignal<[RolloutDecisionInput]>('keep');
/** Waive findings of a gate (TRUST_PATCH releases whose policy has a `waivers:` section): the gate is judged again. */
export const waiveSignal = defineSignal<[WaiveInput]>('waive');
/** Approve or reject with an immediate answer; the validator rejects malformed input before it reaches history. */
export const decideUpdate = defineUpdate<DecideOutcome, [DecideInput]>('decide');

/** Memo key of the compact status the release keeps on the server, for readers when no worker answers queries. */
export const RELEASE_STATUS_MEMO = 'releaseStatus';

export const ModelNameKey = defineSearchAttributeKey('ModelName', SearchAttributeType.KEYWORD);
export const ModelVersionKey = defineSearchAttributeKey('ModelVersion', SearchAttributeType.KEYWORD);
export const TargetEnvironmentKey = defineSearchAttributeKey('TargetEnvironment', SearchAttributeType.KEYWORD);
export const ReleaseStageKey = defineSearchAttributeKey('ReleaseStage', SearchAttributeType.KEYWORD);
/** low | medium | high, from the gate verdicts so far (any fail or error: high; any warn: medium). */
export const RiskLevelKey = defineSearchAttributeKey('RiskLevel', SearchAttributeType.KEYWORD);

/** Every custom search attribute the dev server must register (`--search-attribute Name=Keyword`). */
export const SEARCH_ATTRIBUTES = [
  'ModelName',
  'ModelVersion',
  'TargetEnvironment',
  'ReleaseStage',
  'RiskLevel',
] as const;

/**
 * Types of permanent (non-retryable) failures. Activities throw
 * `ApplicationFailure.nonRetryable(message, FailureType.X)`; anything else is transient and retried.
 */
export enum FailureType {
  InvalidRequest = 'InvalidRequest',
  InvalidConfig = 'InvalidConfig',
  DigestMismatch = 'DigestMismatch',
  UnsafePath = 'UnsafePath',
  EmptyModel = 'EmptyModel',
  SourceNotFound = 'SourceNotFound',
  SourceRejected = 'SourceRejected',
  UnsupportedSource = 'UnsupportedSource',
  SourceNotAllowed = 'SourceNotAllowed',
  GitOpsConflict = 'GitOpsConflict',
  GitOpsRejected = 'GitOpsRejected',
  /** The image or tag does not exist in its registry. */
  ImageNotFound = 'ImageNotFound',
  /** A webhook refused a notification (4xx) or its URL is not configured on the worker. */
  NotificationRejected = 'NotificationRejected',
  /** The release ended as failed (a gate failed or errored); details carry the final ReleaseStatus. */
  ReleaseFailed = 'ReleaseFailed',
}
