/**
 * The start API: typed functions over the Temporal client that automation, the CLI and the HTTP door share.
 */
import {
  Client,
  Connection,
  isGrpcServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes, type DataConverter } from '@temporalio/common';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { trafficSchema } from '../activities/cost/traffic';
import { requestSourceProblems } from '../activities/common/source-policy';
import { ConfigError, loadSourcePolicy, resolveReleaseConfig } from '../config/loader';
import { zodProblems } from '../contract/problems';
import { POLICY_SECTIONS } from '../activities/gate-policies';
import {
  decideUpdate,
  ModelNameKey,
  ModelVersionKey,
  RELEASE_STATUS_MEMO,
  RELEASE_TASK_QUEUE,
  releaseWorkflowId,
  ReleaseStageKey,
  keepSignal,
  retrySignal,
  RiskLevelKey,
  rollbackSignal,
  statusQuery,
  TargetEnvironmentKey,
  waiveSignal,
} from '../contract/definitions';
import type { modelReleaseWorkflow } from '../workflows/model-release';
import { ReleaseClientError } from './errors';
import { CodecKeyConfigError, codecDataConverter, loadCodecKeys } from './connection/payload-codec';
import {
  describeTemporalConnection,
  loadTemporalConnectionConfig,
  temporalConnectOptions,
  TemporalConnectionConfigError,
  type TemporalConnectionConfig,
} from './connection/temporal-connection';
import {
  releaseRequestSchema,
  retryInputSchema,
  rolloutDecisionInputSchema,
  waiveInputSchema,
  type DecideInput,
  type DecideOutcome,
  type PendingStep,
  type ReleaseRequest,
  type ReleaseConfig,
  type ReleaseStatus,
  type RolloutDecisionInput,
} from '../contract/types';

export { ReleaseClientError };

export interface ClientOptions {
  address?: string;
  namespace?: string;
  /** A profile of the Temporal config file; else TEMPORAL_PROFILE, else `default`. */
  profile?: string;
}

/**
 * A client connected as the environment configures it (client/connection/temporal-connection.ts: config profile,
 * TEMPORAL_* variables, TLS, API key), with the payload codec when MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE is set.
 * Explicit options win over both.
 */
export async function connectClient(
  options: ClientOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Client> {
  let config: TemporalConnectionConfig;
  let dataConverter: DataConverter | undefined;
  try {
    config = loadTemporalConnectionConfig(env, options);
    dataConverter = codecDataConverter(loadCodecKeys(env));
  } catch (err) {
    if (err instanceof TemporalConnectionConfigError || err instanceof CodecKeyConfigError) {
      throw new ReleaseClientError('INVALID_REQUEST', 'the Temporal connection is not configured right', err.problems);
    }
    throw err;
  }
  try {
    const connection = await Connection.connect({ ...temporalConnectOptions(config), connectTimeout: 5_000 });
    return new Client({ connection, namespace: config.namespace, ...(dataConverter ? { dataConverter } : {}) });
  } catch (err) {
    throw new ReleaseClientError(
      'UNAVAILABLE',
      `cannot reach Temporal at ${describeTemporalConnection(config)}: ${(err as Error).message}. Is \`npm start\` (or the server) running? Set TEMPORAL_ADDRESS or a profile (TEMPORAL_PROFILE) otherwise.`,
      [],
      { cause: err },
    );
  }
}

/**
 * Validates a request at the door: its shape (every problem named by field), the policy file and an approval rule
 * for the environment. Nothing is started when this throws.
 */
export async function validateRequest(raw: unknown, configDir?: string): Promise<ReleaseRequest> {
  const parsed = releaseRequestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ReleaseClientError('INVALID_REQUEST', 'the release request is invalid', zodProblems(parsed.error));
  }
  // The cost gate needs the traffic profile; its shape is checked here so that problems name their fields at once.
  const traffic = trafficSchema.safeParse(parsed.data.traffic);
  if (parsed.data.traffic === undefined) {
    throw new ReleaseClientError('INVALID_REQUEST', 'the release request is invalid', [
      'traffic is required: the cost gate prices every release (give averageRequestsPerSecond, peakRequestsPerSecond and compute.msPerRequest, or a history)',
    ]);
  }
  if (!traffic.success) {
    throw new ReleaseClientError(
      'INVALID_REQUEST',
      'the release request is invalid',
      zodProblems(traffic.error, 'traffic'),
    );
  }
  let config: ReleaseConfig;
  let sourceProblems: string[];
  try {
    config = await resolveReleaseConfig(parsed.data, POLICY_SECTIONS, configDir);
    sourceProblems = await requestSourceProblems(parsed.data, await loadSourcePolicy(configDir));
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ReleaseClientError(
        'INVALID_REQUEST',
        'the release request names config that does not work',
        err.message.split('\n'),
      );
    }
    throw err;
  }
  if (sourceProblems.length > 0) {
    throw new ReleaseClientError(
      'INVALID_REQUEST',
      'the release request names a source that config/sources.yaml does not allow',
      sourceProblems,
    );
  }
  const evaluationPolicy = config.gatePolicies.evaluation as { required?: boolean } | undefined;
  if (evaluationPolicy?.required === true && parsed.data.evaluation === undefined) {
    throw new ReleaseClientError('INVALID_REQUEST', 'the release request is invalid', [
      `evaluation is required by policy ${config.policy.name}: give dataset, label, protected and favorable`,
    ]);
  }
  return parsed.data;
}

export interface StartedRelease {
  releaseId: string;
  runId: string;
  /** False when the same release was already running (or had ended): nothing new was started. */
  started: boolean;
}

/**
 * Starts the release of model@version to an environment, or returns the one already running with that id
 * (USE_EXISTING conflict policy: never a second workflow). After a release ended as released, rejected or
 * expired it is not started again (a new version is a new release); after a failed one it may be.
 */
export async function startRelease(
  client: Client,
  raw: unknown,
  options: { taskQueue?: string; configDir?: string } = {},
): Promise<StartedRelease> {
  const request = await validateRequest(raw, options.configDir);
  const releaseId = releaseWorkflowId(request.model.name, request.model.version, request.environment);
  const existing = await describe(client, releaseId);
  if (existing?.status.name === 'RUNNING') return { releaseId, runId: existing.runId, started: false };
  try {
    const handle = await client.workflow.start<typeof modelReleaseWorkflow>('modelReleaseWorkflow', {
      workflowId: releaseId,
      taskQueue: options.taskQueue ?? RELEASE_TASK_QUEUE,
      args: [request],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      staticSummary: `${request.model.name}@${request.model.version} → ${request.environment}`,
      staticDetails: [
        `- **source:** ${request.model.source}`,
        `- **policy:** ${request.policy}`,
        `- **requested by:** ${request.requestedBy}`,
        ...(request.team
          ? [`- **team:** ${request.team}${request.costCenter ? ` (cost center ${request.costCenter})` : ''}`]
          : []),
        `- **pinned digests:** ${Object.keys(request.model.digests ?? {}).length} file(s)`,
      ].join('\n'),
      typedSearchAttributes: new TypedSearchAttributes([
        { key: ModelNameKey, value: request.model.name },
        { key: ModelVersionKey, value: request.model.version },
        { key: TargetEnvironmentKey, value: request.environment },
        { key: ReleaseStageKey, value: 'config' },
      ]),
    });
    const runId = handle.firstExecutionRunId;
    return { releaseId, runId, started: runId !== existing?.runId };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const ended = await describe(client, releaseId);
      return { releaseId, runId: ended?.runId ?? '', started: false };
    }
    throw err;
  }
}

async function describe(client: Client, releaseId: string) {
  try {
    return await client.workflow.getHandle(releaseId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

function handleFor(client: Client, releaseId: string): WorkflowHandle<typeof modelReleaseWorkflow> {
  return client.workflow.getHandle<typeof modelReleaseWorkflow>(releaseId);
}

/** How long a status query waits for the release's worker before the status saved on the server is shown. */
export const QUERY_TIMEOUT_MS = 5_000;
/** How long a decision waits for the release's worker to accept or refuse it; after that it never applies. */
export const DECISION_TIMEOUT_MS = 15_000;

/**
 * The release as it stands (the `status` query), also after it ended, with the activities the server is running or
 * retrying for it. When no worker answers within QUERY_TIMEOUT_MS, the compact status the release saved on the server
 * (its memo) is returned instead, marked `served.from = 'memo'`.
 */
export async function getRelease(
  client: Client,
  releaseId: string,
  options: { queryTimeoutMs?: number } = {},
): Promise<ReleaseStatus> {
  const handle = handleFor(client, releaseId);
  const timeout = options.queryTimeoutMs ?? QUERY_TIMEOUT_MS;
  const notFound = (cause: unknown) =>
    new ReleaseClientError('NOT_FOUND', `no release with id ${releaseId} (see \`mrel list\`)`, [], { cause });
  let queried: ReleaseStatus | undefined;
  let queryError: unknown;
  try {
    queried = await client.withDeadline(Date.now() + timeout, () => handle.query(statusQuery));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw notFound(err);
    queryError = err;
  }
  // One describe serves the fallback (the release ended, or its saved status) and the pending activities.
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    // A release removed (retention) between the query and the describe.
    if (err instanceof WorkflowNotFoundError) throw notFound(err);
    if (queried) return queried;
    throw err;
  }
  let status = queried;
  if (!status) {
    const ended = description.status.name === 'RUNNING' ? undefined : await endedStatus(handle);
    if (ended) return ended;
    status = savedStatus(description, timeout);
    if (!status) {
      throw new ReleaseClientError(
        'WORKER_UNAVAILABLE',
        `no release worker answered for ${releaseId} within ${timeout / 1000} s, and the release saved no status on the server yet (it was started before this version, or has not run its first step); check that a release worker polls its task queue`,
        [],
        { cause: queryError },
      );
    }
  }
  const pending = await pendingSteps(client, description).catch(() => undefined);
  return pending && pending.length > 0 ? { ...status, pending } : status;
}

/** The compact status the release keeps in its memo, for when no worker answers; undefined if it has none. */
function savedStatus(description: WorkflowExecutionDescription, timeoutMs: number): ReleaseStatus | undefined {
  const memo = description.memo?.[RELEASE_STATUS_MEMO] as ReleaseStatus | undefined;
  if (!memo || typeof memo !== 'object') return undefined;
  return {
    ...memo,
    served: {
      from: 'memo',
      reason: `no release worker answered within ${timeoutMs / 1000} s: this is the status the release last saved on the server; steps in progress may have moved on`,
    },
  };
}

/** Activities the server holds for the release: attempt, last failure and next retry, as the Temporal UI shows them. */
async function pendingSteps(client: Client, description: WorkflowExecutionDescription): Promise<PendingStep[]> {
  if (description.status.name !== 'RUNNING') return [];
  const activities = description.raw.pendingActivities ?? [];
  // Heartbeat details are the activity's progress (file and bytes stored, rows evaluated); undecodable ones are left out.
  const details = await Promise.all(
    activities.map((a) =>
      decodeArrayFromPayloads(client.options.loadedDataConverter, a.heartbeatDetails?.payloads).then(
        (values) => values[0],
        () => undefined,
      ),
    ),
  );
  return activities.map((a, i) => {
    const step: PendingStep = {
      activity: a.activityType?.name ?? '?',
      state: pendingStateName(a.state),
      attempt: a.attempt ?? 1,
    };
    if (a.heartbeatDetails?.payloads?.length) step.progress = details[i];
    const failure = a.lastFailure?.message;
    if (failure) step.lastFailure = failure.length > 1000 ? `${failure.slice(0, 1000)}…` : failure;
    const next = timestampIso(a.nextAttemptScheduleTime);
    if (next) step.nextRetryAt = next;
    const heartbeat = timestampIso(a.lastHeartbeatTime);
    if (heartbeat) step.lastHeartbeatAt = heartbeat;
    if (a.lastWorkerIdentity) step.lastWorker = a.lastWorkerIdentity;
    return step;
  });
}

function pendingStateName(state: number | null | undefined): string {
  return (
    ['unspecified', 'scheduled', 'started', 'cancel-requested', 'paused', 'pause-requested'][state ?? 0] ?? 'unknown'
  );
}

function timestampIso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return undefined;
  const seconds = Number(ts.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

/** An ended release's final status: its result, or the status a failed release carries in its failure details. */
async function endedStatus(handle: WorkflowHandle<typeof modelReleaseWorkflow>): Promise<ReleaseStatus | undefined> {
  try {
    return await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure) {
      const [status] = err.cause.details ?? [];
      if (status && typeof status === 'object') return status as ReleaseStatus;
    }
    return undefined;
  }
}

/**
 * Approve or reject through the `decide` update: the answer says at once whether the decision counted and why
 * not. A release that already ended answers RELEASE_ENDED with its final stage.
 */
export async function decide(
  client: Client,
  releaseId: string,
  input: DecideInput,
  options: { timeoutMs?: number } = {},
): Promise<DecideOutcome> {
  const handle = handleFor(client, releaseId);
  const timeout = options.timeoutMs ?? DECISION_TIMEOUT_MS;
  // The decision is valid only while we wait for its answer: an update admitted now but delivered later (when a
  // worker comes back) is refused by the release, so nobody's decision applies without them seeing it confirmed.
  const validUntil = new Date(Date.now() + timeout).toISOString();
  try {
    return await client.withDeadline(Date.now() + timeout, () =>
      handle.executeUpdate(decideUpdate, { args: [{ ...input, validUntil }] }),
    );
  } catch (err) {
    if (deadlineExceeded(err)) {
      throw new ReleaseClientError(
        'WORKER_UNAVAILABLE',
        `no release worker answered within ${timeout / 1000} s, so the decision was not applied, and it will not apply later (it was valid until ${validUntil}); send it again once a release worker runs`,
        [],
        { cause: err },
      );
    }
    if (err instanceof WorkflowNotFoundError) {
      const description = await describe(client, releaseId);
      const final = description && description.status.name !== 'RUNNING' ? await endedStatus(handle) : undefined;
      if (final) {
        throw new ReleaseClientError(
          'RELEASE_ENDED',
          `release ${releaseId} already ended as ${final.stage}${final.reason ? ` (${final.reason})` : ''}; decisions are no longer accepted`,
          [],
          { cause: err },
        );
      }
      throw new ReleaseClientError('NOT_FOUND', `no release with id ${releaseId} (see \`mrel list\`)`, [], {
        cause: err,
      });
    }
    if (err instanceof WorkflowUpdateFailedError) {
      throw new ReleaseClientError('INVALID_REQUEST', `decision refused: ${err.cause?.message ?? err.message}`, [], {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Asks a release that waits after a failed step (its status shows `retrying.waitingFor`, e.g. a GitOps remote that
 * refused the commit) to try again. A signal: it is recorded even while no worker runs, and acts when one does.
 */
export async function retryRelease(client: Client, releaseId: string, requestedBy: string): Promise<ReleaseStatus> {
  const input = retryInputSchema.safeParse({ requestedBy });
  if (!input.success) {
    throw new ReleaseClientError('INVALID_REQUEST', 'the retry is invalid', zodProblems(input.error));
  }
  const status = await getRelease(client, releaseId);
  if (!status.retrying?.waitingFor) {
    throw new ReleaseClientError(
      'INVALID_REQUEST',
      `release ${releaseId} is in stage ${status.stage} and waits for no retry${status.retrying ? ` (it retries by itself: next try at ${status.retrying.nextRetryAt})` : ''}`,
    );
  }
  await handleFor(client, releaseId).signal(retrySignal, input.data);
  return status;
}

/**
 * Sends `rollback` or `keep` to a release whose stalled rollout or breached monitoring window waits for people, then reads the status until the
 * release shows the decision counted or refused (signals have no answer of their own). Refused at once, without a
 * signal, when the release is not paused.
 */
export async function decideRollout(
  client: Client,
  releaseId: string,
  decision: 'rollback' | 'keep',
  input: RolloutDecisionInput,
  waitMs = DECISION_TIMEOUT_MS,
): Promise<{ accepted: boolean; reason?: string; status: ReleaseStatus }> {
  const parsed = rolloutDecisionInputSchema.safeParse(input);
  if (!parsed.success)
    throw new ReleaseClientError('INVALID_REQUEST', `the ${decision} is invalid`, zodProblems(parsed.error));
  const before = await getRelease(client, releaseId);
  // A breached monitoring window or a stalled rollout: whichever is paused now.
  const pausedOf = (s: ReleaseStatus) =>
    s.monitoring?.state === 'paused' ? s.monitoring : s.rollout?.state === 'paused' ? s.rollout : undefined;
  const paused = pausedOf(before);
  if (paused === undefined) {
    const where = before.monitoring
      ? `its monitoring window is ${before.monitoring.state}`
      : before.rollout
        ? `its rollout is ${before.rollout.state}`
        : `it is in stage ${before.stage}`;
    throw new ReleaseClientError(
      'INVALID_REQUEST',
      `release ${releaseId} does not wait for a rollback or keep (${where}); they count only while a stalled rollout or a breached monitoring window is paused`,
    );
  }
  const target = paused === before.monitoring ? 'monitoring' : 'rollout';
  const decisions = paused.decisions.length;
  const refused = before.refused.length + (before.refusedOmitted ?? 0);
  await handleFor(client, releaseId).signal(decision === 'rollback' ? rollbackSignal : keepSignal, parsed.data);
  const until = Date.now() + waitMs;
  for (;;) {
    const status = await getRelease(client, releaseId);
    if ((status[target]?.decisions.length ?? 0) > decisions) return { accepted: true, status };
    if (status.refused.length + (status.refusedOmitted ?? 0) > refused) {
      const last = status.refused[status.refused.length - 1];
      return { accepted: false, reason: last?.reason ?? 'refused', status };
    }
    if (Date.now() > until)
      throw new ReleaseClientError(
        'WORKER_UNAVAILABLE',
        `the ${decision} was sent, but the release did not show it within ${waitMs / 1000} s; see mrel status ${releaseId}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Sends the `waive` signal, then reads the status until the release shows the waiver granted or refused (with why).
 * The release judges the gate again with it; `status` shows the gate's new verdict once that has run.
 */
export async function waiveRelease(
  client: Client,
  releaseId: string,
  input: unknown,
  waitMs = DECISION_TIMEOUT_MS,
): Promise<{ accepted: boolean; reason?: string; status: ReleaseStatus }> {
  const parsed = waiveInputSchema.safeParse(input);
  if (!parsed.success)
    throw new ReleaseClientError('INVALID_REQUEST', 'the waive is invalid', zodProblems(parsed.error));
  const before = await getRelease(client, releaseId);
  const granted = before.waivers?.length ?? 0;
  const refused = before.refused.length + (before.refusedOmitted ?? 0);
  await handleFor(client, releaseId).signal(waiveSignal, parsed.data);
  const until = Date.now() + waitMs;
  for (;;) {
    const status = await getRelease(client, releaseId);
    if ((status.waivers?.length ?? 0) > granted) return { accepted: true, status };
    if (status.refused.length + (status.refusedOmitted ?? 0) > refused) {
      const last = status.refused[status.refused.length - 1];
      return { accepted: false, reason: last?.reason ?? 'refused', status };
    }
    if (Date.now() > until)
      throw new ReleaseClientError(
        'WORKER_UNAVAILABLE',
        `the waive was sent, but the release did not show it within ${waitMs / 1000} s; see mrel status ${releaseId}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A gRPC deadline we set ran out (the server or the worker did not answer in time). */
function deadlineExceeded(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    // The SDK's own word for an update call whose deadline passed (under load it arrives without the gRPC status).
    if (e instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
    if (isGrpcServiceError(e) && e.code === 4) return true;
    if (e instanceof Error && /deadline exceeded/i.test(e.message)) return true;
  }
  return false;
}

export interface ReleaseSummary {
  releaseId: string;
  runId: string;
  model?: string;
  version?: string;
  environment?: string;
  stage?: string;
  risk?: string;
  workflowStatus: string;
  startTime: Date;
}

/** Releases found by the search attributes (visibility query), newest first. */
export async function listReleases(
  client: Client,
  filter: { model?: string; stage?: string; environment?: string; risk?: string; limit?: number } = {},
): Promise<ReleaseSummary[]> {
  const clauses = [`WorkflowType = 'modelReleaseWorkflow'`];
  if (filter.model) clauses.push(`ModelName = ${quote(filter.model)}`);
  if (filter.stage) clauses.push(`ReleaseStage = ${quote(filter.stage)}`);
  if (filter.environment) clauses.push(`TargetEnvironment = ${quote(filter.environment)}`);
  if (filter.risk) clauses.push(`RiskLevel = ${quote(filter.risk)}`);
  const out: ReleaseSummary[] = [];
  for await (const wf of client.workflow.list({ query: clauses.join(' AND ') })) {
    const sa = wf.typedSearchAttributes;
    out.push({
      releaseId: wf.workflowId,
      runId: wf.runId,
      model: sa.get(ModelNameKey),
      version: sa.get(ModelVersionKey),
      environment: sa.get(TargetEnvironmentKey),
      stage: sa.get(ReleaseStageKey),
      risk: sa.get(RiskLevelKey),
      workflowStatus: wf.status.name,
      startTime: wf.startTime,
    });
    if (out.length >= (filter.limit ?? 100)) break;
  }
  return out;
}

function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
