/**
 * The start API: typed functions over the Temporal client that automation, the CLI and the HTTP door share.
 */
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import { trafficSchema } from '../activities/cost/traffic';
import { ConfigError, resolveReleaseConfig, zodProblems } from '../config/loader';
import {
  decideUpdate,
  ModelNameKey,
  ModelVersionKey,
  RELEASE_TASK_QUEUE,
  releaseWorkflowId,
  ReleaseStageKey,
  RiskLevelKey,
  statusQuery,
  TargetEnvironmentKey,
} from '../workflows/definitions';
import type { modelReleaseWorkflow } from '../workflows/model-release';
import { ReleaseClientError } from './errors';
import {
  releaseRequestSchema,
  type DecideInput,
  type DecideOutcome,
  type ReleaseRequest,
  type ReleaseConfig,
  type ReleaseStatus,
} from '../workflows/types';

export { ReleaseClientError };

export interface ClientOptions {
  address?: string;
  namespace?: string;
}

export async function connectClient(options: ClientOptions = {}): Promise<Client> {
  const address = options.address ?? process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';
  try {
    const connection = await Connection.connect({ address, connectTimeout: 5_000 });
    return new Client({ connection, namespace: options.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default' });
  } catch (err) {
    throw new ReleaseClientError(
      'UNAVAILABLE',
      `cannot reach Temporal at ${address}: ${(err as Error).message}. Is \`npm start\` (or the server) running? Set TEMPORAL_ADDRESS otherwise.`,
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
      zodProblems(traffic.error).map((p) => `traffic.${p}`),
    );
  }
  let config: ReleaseConfig;
  try {
    config = await resolveReleaseConfig(parsed.data, configDir);
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

/** The release as it stands (the `status` query), also after it ended. */
export async function getRelease(client: Client, releaseId: string): Promise<ReleaseStatus> {
  const handle = handleFor(client, releaseId);
  try {
    return await handle.query(statusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new ReleaseClientError('NOT_FOUND', `no release with id ${releaseId} (see \`mrel list\`)`, [], {
        cause: err,
      });
    }
    const final = await finalStatus(handle);
    if (final) return final;
    throw err;
  }
}

/** The final status of an ended release from its result (or failure details), without a worker. */
async function finalStatus(handle: WorkflowHandle<typeof modelReleaseWorkflow>): Promise<ReleaseStatus | undefined> {
  const description = await handle.describe();
  if (description.status.name === 'RUNNING') return undefined;
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
export async function decide(client: Client, releaseId: string, input: DecideInput): Promise<DecideOutcome> {
  const handle = handleFor(client, releaseId);
  try {
    return await handle.executeUpdate(decideUpdate, { args: [input] });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      const final = await describe(client, releaseId).then((d) => (d ? finalStatus(handle) : undefined));
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
