/**
 * modelReleaseWorkflow: one durable workflow per model version and environment.
 *
 *   config → gate phases (acquire; later scan+license, evaluate, cost) → approval (signals/update) → gitops
 *
 * Workflow id `release/<model>/<version>/<environment>` (see releaseWorkflowId); the client starts it with the
 * USE_EXISTING conflict policy so a second start returns the running release. The result is the final
 * ReleaseStatus, whose stage is released, rejected, expired or failed.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import type { EvaluationActivities } from '../activities/evaluate';
import { durationMs } from './approval';
import {
  approveSignal,
  decideUpdate,
  EVALUATION_TASK_QUEUE,
  FailureType,
  ModelNameKey,
  ModelVersionKey,
  rejectSignal,
  RELEASE_STATUS_MEMO,
  ReleaseStageKey,
  retrySignal,
  RiskLevelKey,
  statusQuery,
  TargetEnvironmentKey,
} from '../contract/definitions';
import { legacyReleaseRequestSchema } from './legacy-request';
import { clip, MAX_APPROVER_CHARS } from '../contract/limits';
import { ReleaseMetrics } from './release-metrics';
import { ReleaseState } from './release-state';
import {
  decideInputSchema,
  decisionInputSchema,
  releaseRequestSchema,
  retryInputSchema,
  type ArtifactManifest,
  type DecideInput,
  type GateInput,
  type GateResult,
  type NotificationEvent,
  type ReleaseRequest,
  type ReleaseStatus,
  type TerminalStage,
} from '../contract/types';

/** Short, retried activities: config loading and the GitOps commit. */
const SHORT: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
};
/** Long, heartbeating activities that move model bytes. */
const LONG: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
};

/** Evaluation activities: on the evaluation task queue (GPU workers), long, heartbeating, resumable. */
const EVALUATION: ActivityOptions = {
  taskQueue: EVALUATION_TASK_QUEUE,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
};

/**
 * Releases started with HARDENING_PATCH run every activity in rounds: a round is one activity call with a few quick
 * attempts (RETRY_IN_ROUND); between rounds the release shows the attempt, the last failure and the next retry in its
 * status and the UI's details. Heartbeats every few seconds (workers/keep-alive.ts sends them for every activity)
 * against a short heartbeat timeout mean that an activity lost with its worker is retried within seconds; the
 * schedule-to-start timeout turns "no worker polls this queue" into a visible failed round instead of a silent wait.
 */
export const HARDENING_PATCH = 'hardening-v1';
const RETRY_IN_ROUND = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 };
const H_SHORT: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  scheduleToStartTimeout: '2 minutes',
  heartbeatTimeout: '15s',
  retry: RETRY_IN_ROUND,
};
const H_LONG: ActivityOptions = { ...H_SHORT, startToCloseTimeout: '6 hours' };
const H_EVALUATION: ActivityOptions = {
  taskQueue: EVALUATION_TASK_QUEUE,
  startToCloseTimeout: '2 hours',
  scheduleToStartTimeout: '2 minutes',
  // TensorFlow kernels can hold the event loop for a few seconds between heartbeats.
  heartbeatTimeout: '30s',
  retry: RETRY_IN_ROUND,
};
/** Rounds before a step gives up (gates: error verdict; gitops: waits for a `retry` signal). */
const GATE_ROUNDS = 8;
const GITOPS_ROUNDS = 5;
const ROUND_BACKOFF_MS = { first: 10_000, max: 5 * 60_000 };
/** How long a step waits for a worker to take it (rounds of schedule-to-start timeouts) before it fails. */
const STARVED_LIMIT_MS = 24 * 3_600_000;

/** Releases started with NOTIFICATIONS_PATCH tell the policy's webhooks what happens (see `notify`). */
export const NOTIFICATIONS_PATCH = 'notifications-v1';
const NOTIFY: ActivityOptions = {
  startToCloseTimeout: '30s',
  scheduleToStartTimeout: '2 minutes',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 6 },
};
const notifier = proxyActivities<ReleaseActivities>(NOTIFY);
const HARDENED = new Map<ActivityOptions, ActivityOptions>([
  [SHORT, H_SHORT],
  [LONG, H_LONG],
  [EVALUATION, H_EVALUATION],
]);

/**
 * What a step's activity call runs with: the hardened counterpart of `base` for releases started with
 * HARDENING_PATCH, `base` itself for those started before, and the activities proxied with those options.
 */
function profile(base: ActivityOptions, hardened: boolean) {
  const options = hardened ? (HARDENED.get(base) ?? H_SHORT) : base;
  return { options, activities: proxyActivities<AllActivities>(options) };
}

/** What gates share: the request, what earlier gates produced, and how steps are retried. */
export interface GateContext {
  request: ReleaseRequest;
  state: ReleaseState;
  manifest?: ArtifactManifest;
  /** Runs one step's activity call, in visible rounds for hardened releases (directly otherwise). */
  retried: <T>(step: string, call: (hardened: boolean) => Promise<T>, rounds?: number) => Promise<T>;
}

/** One gate: a name, and how to run it. Gates in one phase run in parallel; a fail or error stops the release. */
export interface GateStep {
  name: string;
  /** Whether the gate applies to this release (default: always). Decided at start, from the request. */
  when?: (request: ReleaseRequest) => boolean;
  run(ctx: GateContext): Promise<GateResult>;
}

/** Failure types that mean the model itself is bad (fail), rather than that we could not decide (error). */
const FAILING_TYPES: string[] = [FailureType.DigestMismatch, FailureType.UnsafePath, FailureType.EmptyModel];

const acquireGate: GateStep = {
  name: 'acquire',
  async run(ctx) {
    const startedAt = nowIso();
    const { model } = ctx.request;
    const summary = `acquire ${model.name}@${model.version} from ${model.source}`;
    const manifest = await ctx.retried('acquire', (hardened) => {
      const { options, activities } = profile(LONG, hardened);
      return activities.acquireModel.executeWithOptions({ ...options, summary }, [{ model }]);
    });
    ctx.manifest = manifest;
    ctx.state.status.manifest = manifest;
    // An empty file is never weights: worth a note (a placeholder left behind, or a truncated upload).
    const empty = manifest.files.filter((f) => f.size === 0);
    return {
      gate: 'acquire',
      verdict: 'pass',
      summary:
        `${manifest.files.length} file(s), ${formatBytes(manifest.totalSize)}, manifest sha256:${manifest.manifestDigest.slice(0, 12)}… at ${manifest.resolvedRevision}` +
        (empty.length > 0 ? `; ${empty.length} empty file(s): ${empty.map((f) => f.path).join(', ')}` : ''),
      metrics: { files: manifest.files.length, bytes: manifest.totalSize, manifestDigest: manifest.manifestDigest },
      findings: empty.map((f) => ({
        gate: 'acquire',
        ruleId: 'EmptyFile',
        severity: 'info' as const,
        location: f.path,
        message: `${f.path} is empty (0 bytes): check that the upload or export finished`,
        waivable: true,
      })),
      startedAt,
      finishedAt: nowIso(),
    };
  },
};

/** Gate activities: `(input: GateInput) => Promise<GateResult>` on the release or the evaluation worker. */
type AllActivities = ReleaseActivities & EvaluationActivities;
type GateActivityName = {
  [K in keyof AllActivities]: AllActivities[K] extends (input: GateInput) => Promise<GateResult> ? K : never;
}[keyof AllActivities];

/**
 * A gate that is one activity call with the release's GateInput. `section` names the policy section it reads (the
 * gate's own name by default; the three evaluation gates share `evaluation`).
 */
function activityGate(
  name: string,
  activity: GateActivityName,
  options: ActivityOptions = SHORT,
  extra: { when?: GateStep['when']; section?: string } = {},
): GateStep {
  return {
    name,
    when: extra.when,
    async run(ctx) {
      const { model } = ctx.request;
      const input = gateInput(ctx, name, extra.section ?? name);
      return ctx.retried(name, (hardened) => {
        const run = profile(options, hardened);
        return run.activities[activity].executeWithOptions(
          { ...run.options, summary: `${name} ${model.name}@${model.version}` },
          [input],
        );
      });
    },
  };
}

function gateInput(ctx: GateContext, gate: string, section: string): GateInput {
  const config = ctx.state.config;
  if (!config || !ctx.manifest) throw new Error(`gate ${gate} ran before config and acquire`);
  return {
    releaseId: ctx.state.status.releaseId,
    request: ctx.request,
    manifest: ctx.manifest,
    policy: config.gatePolicies[section],
    waivers: config.waivers.filter((w) => w.gate === gate),
    earlier: ctx.state.status.gates,
  };
}

/** Releases started before the content gates existed replay with acquire only (see test/histories). */
export const CONTENT_GATES_PATCH = 'content-gates-v1';

/**
 * The gate pipeline, phase by phase. Adding a gate is one entry here (a phase of several runs them in parallel).
 */
const hasEvaluation = (request: ReleaseRequest): boolean => request.evaluation !== undefined;

function gatePhases(request: ReleaseRequest): GateStep[][] {
  if (!patched(CONTENT_GATES_PATCH)) return [[acquireGate]];
  const phases: GateStep[][] = [
    [acquireGate],
    [
      activityGate('scan', 'scanModel', LONG),
      activityGate('license', 'checkLicense', LONG),
      // The inference image and its dependencies, when the request names the image it ships in.
      activityGate('image', 'scanImage', LONG, { when: (r) => r.image !== undefined }),
    ],
    // Measured against the curated dataset the request names (the policy can require one at the door).
    [
      activityGate('fairness', 'evaluateFairness', EVALUATION, { when: hasEvaluation, section: 'evaluation' }),
      activityGate('robustness', 'evaluateRobustness', EVALUATION, { when: hasEvaluation, section: 'evaluation' }),
      activityGate('explain', 'explainModel', EVALUATION, { when: hasEvaluation, section: 'evaluation' }),
    ],
    // Last: it reads the throughput the evaluation measured and prices the other gates' verdicts as risk.
    [activityGate('cost', 'estimateCost', LONG)],
  ];
  return phases.map((phase) => phase.filter((gate) => gate.when?.(request) ?? true)).filter((p) => p.length > 0);
}

export async function modelReleaseWorkflow(input: ReleaseRequest): Promise<ReleaseStatus> {
  const status = await release(input);
  if (status.stage === 'failed') {
    // A failed release fails its workflow: it shows red in the UI, and starting the same release again is allowed
    // (the id reuse policy admits a new run only after a failure). The final status travels in the details.
    throw ApplicationFailure.create({
      type: FailureType.ReleaseFailed,
      message: status.reason ?? 'release failed',
      nonRetryable: true,
      details: [status],
    });
  }
  return status;
}

async function release(input: ReleaseRequest): Promise<ReleaseStatus> {
  const hardened = patched(HARDENING_PATCH);
  const notifying = hardened && patched(NOTIFICATIONS_PATCH);
  const parsed = (hardened ? releaseRequestSchema : legacyReleaseRequestSchema).safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => clip(`${i.path.join('.') || '(request)'}: ${i.message}`));
    throw ApplicationFailure.nonRetryable(
      clip(`invalid release request: ${problems.join('; ')}`),
      FailureType.InvalidRequest,
      {
        problems: problems.slice(0, 20),
      },
    );
  }
  const request = parsed.data;
  const { workflowId } = workflowInfo();
  const phases = gatePhases(request);
  const state = new ReleaseState(
    request,
    workflowId,
    phases.map((phase) => phase.map((g) => g.name)),
    nowIso(),
  );
  const metrics = new ReleaseMetrics(request.environment, request.model.name);

  const withRisk = phases.length > 1; // releases from before the content gates carry no RiskLevel
  let risk: string | undefined;
  let memo = '';
  const publish = (): void => {
    metrics.observe(state.status);
    setCurrentDetails(state.details());
    const level = withRisk ? riskLevel(state.status.gates) : undefined;
    if (level !== undefined && level !== risk) {
      risk = level;
      upsertSearchAttributes([
        { key: ReleaseStageKey, value: state.status.stage },
        { key: RiskLevelKey, value: level },
      ]);
    } else upsertSearchAttributes([{ key: ReleaseStageKey, value: state.status.stage }]);
    if (hardened) {
      // What `mrel status` and the HTTP door show while no worker can answer the query: kept on the server.
      const compact = state.compactStatus();
      const text = JSON.stringify(compact);
      if (text !== memo) {
        memo = text;
        upsertMemo({ [RELEASE_STATUS_MEMO]: compact });
      }
    }
  };
  const moveTo = (stage: string): void => {
    state.setStage(stage, nowIso());
    publish();
  };

  setHandler(statusQuery, () => state.status, {
    description: 'The release as it stands: stage, gate verdicts, approvals, refused decisions, what is awaited.',
  });
  const apply = (decision: DecideInput) => {
    const late = lateDecision(decision);
    const outcome = late ? state.refuse(decision, late, nowIso()) : state.decide(decision, nowIso());
    publish();
    return outcome;
  };
  const applySignal = (raw: unknown, decision: 'approve' | 'reject'): void => {
    const parsed = decisionInputSchema.safeParse(raw);
    const claimed = typeof raw === 'object' && raw !== null ? (raw as { decision?: unknown }).decision : undefined;
    if (!parsed.success) {
      // Signals have no validator, so a malformed payload reaches history: record it as refused, change nothing.
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
      state.refuse({ approver: approverOf(raw), decision }, `malformed ${decision} signal (${problems})`, nowIso());
      publish();
    } else if (claimed !== undefined && claimed !== decision) {
      // A payload that says the opposite of its signal is a mistake or an attack: it must not count either way.
      const said = clip(JSON.stringify(claimed), 40);
      state.refuse(
        { ...parsed.data, decision },
        `the payload says decision ${said} but came as the ${decision} signal; nothing was counted: send the signal that matches the decision`,
        nowIso(),
      );
      publish();
    } else apply({ ...parsed.data, decision });
  };
  setHandler(approveSignal, (raw) => applySignal(raw, 'approve'), {
    description:
      'Approve: {"approver": "<id in approvers.yaml>", "comment": "…"}. Counted once the gates passed; a refused one is recorded with why.',
  });
  setHandler(rejectSignal, (raw) => applySignal(raw, 'reject'), {
    description:
      'Reject: {"approver": "<id>", "comment": "why"}. Ends the release as rejected, with the comment as reason.',
  });
  setHandler(decideUpdate, (decision) => ({ ...apply(decision), status: state.status }), {
    description:
      'Approve or reject with an answer: {"approver", "decision": "approve"|"reject", "comment"?, "validUntil"?}.',
    validator: (decision) => {
      const check = decideInputSchema.safeParse(decision);
      if (!check.success)
        throw new Error(clip(check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')));
      const late = lateDecision(check.data);
      if (late) throw new Error(late);
    },
  });
  let retryRequested = false;
  setHandler(
    retrySignal,
    (raw) => {
      // Only a release that waits for it takes a retry; anything else (or a malformed payload) changes nothing.
      if (retryInputSchema.safeParse(raw).success && state.status.retrying?.waitingFor !== undefined) {
        retryRequested = true;
      }
    },
    {
      description: 'Retry a step the release waits on (a refused GitOps commit, once fixed): {"requestedBy": "<who>"}.',
    },
  );

  upsertSearchAttributes([
    { key: ModelNameKey, value: request.model.name },
    { key: ModelVersionKey, value: request.model.version },
    { key: TargetEnvironmentKey, value: request.environment },
  ]);
  publish();

  /** Tells the environment's webhooks about `event`; a webhook that still fails after its retries is recorded. */
  const notify = async (event: NotificationEvent, headline: string, details: string[] = []): Promise<number> => {
    const targets = notifying ? (state.config?.notifications ?? []).filter((t) => t.events.includes(event)) : [];
    const base = { event, releaseId: workflowId, headline: clip(headline), details: details.map((d) => clip(d)) };
    const about = { model: request.model.name, version: request.model.version, environment: request.environment };
    await Promise.all(
      targets.map(async (target) => {
        try {
          await notifier.notify.executeWithOptions({ ...NOTIFY, summary: `notify ${target.name}: ${event}` }, [
            { ...base, ...about, target },
          ]);
        } catch (err) {
          if (isCancellation(err)) throw err;
          state.recordNotificationFailure({ target: target.name, event, error: failureMessage(err), at: nowIso() });
          publish();
        }
      }),
    );
    return targets.length;
  };
  let gateFailureNotified = false;
  const finish = async (stage: TerminalStage, reason?: string): Promise<ReleaseStatus> => {
    state.clearRetrying(nowIso());
    state.end(stage, reason, nowIso());
    publish();
    if (stage === 'released') {
      const commit = state.status.commit;
      const approvals = state.status.approvals.map((a) => `${a.approver} (${a.role})`).join(', ');
      await notify('released', `committed ${commit?.sha.slice(0, 12) ?? '?'} to ${commit?.branch ?? '?'}`, [
        `approved by ${approvals}`,
      ]);
    } else if (!(stage === 'failed' && gateFailureNotified)) {
      await notify(stage, reason ?? stage);
    }
    return state.status;
  };
  const rejectedReason = (): string => {
    const r = state.rejection;
    return r ? `rejected by ${r.approver} (${r.role}): ${r.comment ?? 'no reason given'}` : 'rejected';
  };

  /** One step's activity call; for hardened releases in rounds, each failed round shown with the next retry. */
  const retried = async <T>(step: string, call: (hardened: boolean) => Promise<T>, rounds = GATE_ROUNDS) => {
    if (!hardened) return call(false);
    const since = Date.now();
    let failures = 0;
    for (let round = 1; ; round++) {
      try {
        const result = await call(true);
        if (state.status.retrying?.step === step) state.clearRetrying(nowIso());
        return result;
      } catch (err) {
        if (isCancellation(err) || isPermanent(err)) throw err;
        // A queue that no worker polls (or a backlog) is waiting, not failing: it does not use up the rounds, but
        // it ends too once the step has waited STARVED_LIMIT_MS.
        if (isStarved(err) ? Date.now() - since >= STARVED_LIMIT_MS : ++failures >= rounds) throw err;
        const wait = Math.min(ROUND_BACKOFF_MS.first * 2 ** (Math.max(failures, 1) - 1), ROUND_BACKOFF_MS.max);
        const now = nowIso();
        state.setRetrying(
          {
            step,
            attempt: round,
            lastFailure: failureMessage(err),
            failedAt: now,
            nextRetryAt: new Date(Date.parse(now) + wait).toISOString(),
          },
          now,
        );
        publish();
        await sleep(wait);
      }
    }
  };

  // Everything before approval runs in a scope that a reject cancels, so a rejected release stops at once.
  const ctx: GateContext = { request, state, retried };
  const beforeApproval = new CancellationScope();
  const pipeline = beforeApproval.run(async (): Promise<string | undefined> => {
    try {
      const configInput = {
        policy: request.policy,
        environment: request.environment,
        model: { name: request.model.name, version: request.model.version },
      };
      const summary = `load policy ${request.policy} for ${request.environment}`;
      state.config = await retried('config', (h) => {
        const { options, activities } = profile(SHORT, h);
        return activities.loadReleaseConfig.executeWithOptions({ ...options, summary }, [configInput]);
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      return `config: ${failureMessage(err)}`;
    }
    for (const phase of phases) {
      moveTo(phase.map((g) => g.name).join('+'));
      const results = await Promise.all(phase.map((gate) => runGate(gate, ctx)));
      for (const result of results) {
        state.recordGate(result, nowIso());
        state.extraRequirements.push(...(result.requiredApprovals ?? []));
      }
      publish();
      const stopped = results.find((r) => r.verdict === 'fail' || r.verdict === 'error');
      if (stopped) {
        const why = `${stopped.gate} ${stopped.verdict}: ${stopped.summary}`;
        gateFailureNotified = (await notify('gate-failed', why)) > 0;
        return why;
      }
    }
    return undefined;
  });
  let outcome: { failure?: string; error?: unknown } | undefined;
  const pipelineDone = pipeline.then(
    (failure) => void (outcome = { failure }),
    (error) => void (outcome = isCancellation(error) && state.rejection ? {} : { error }),
  );
  await condition(() => state.rejection !== undefined || outcome !== undefined);
  if (state.rejection) {
    beforeApproval.cancel();
    await pipelineDone;
    return await finish('rejected', rejectedReason());
  }
  const { failure, error } = outcome ?? {};
  if (error !== undefined) throw error;
  if (failure !== undefined) return await finish('failed', failure);

  const config = state.config;
  if (!config || !ctx.manifest)
    return await finish('failed', 'internal: release config or manifest missing after gates');
  state.openApproval(nowIso());
  publish();
  const awaiting = state.status.awaiting;
  // Sent while the release already waits: a slow webhook never delays a decision or the deadline.
  const told = awaiting
    ? notify('awaiting-approval', `awaits approval: needs ${awaiting.description}`, [
        `may approve: ${awaiting.from.join(', ') || 'nobody in approvers.yaml can'}`,
        `until ${awaiting.deadline}`,
      ])
    : Promise.resolve();
  const decided = await condition(
    () => state.rejection !== undefined || state.approved,
    durationMs(config.approval.timeout),
  );
  await told;
  if (state.rejection) return await finish('rejected', rejectedReason());
  if (!decided) {
    const missing = state.progress();
    return await finish(
      'expired',
      `no decision within ${config.approval.timeout} (policy ${config.policy.name}); still missing ${missing.approvalsMissing} approval(s)`,
    );
  }

  moveTo('gitops');
  const gitopsInput = {
    releaseId: workflowId,
    runId: workflowInfo().runId,
    request,
    manifest: ctx.manifest,
    gates: state.status.gates,
    approvals: state.status.approvals,
    policy: { name: config.policy.name, digest: config.policy.digest },
  };
  const summary = `commit ${request.model.name}@${request.model.version} to ${request.environment}`;
  const commitOnce = (h: boolean) => {
    const { options, activities } = profile(SHORT, h);
    return activities.commitRelease.executeWithOptions({ ...options, summary }, [gitopsInput]);
  };
  for (let attempt = 1; ; attempt++) {
    try {
      state.setCommit(await retried('gitops', commitOnce, GITOPS_ROUNDS), nowIso());
      state.clearRetrying(nowIso());
      break;
    } catch (err) {
      if (!hardened || isCancellation(err)) return await finish('failed', `gitops: ${failureMessage(err)}`);
      // Approved and judged: a remote that refuses or fails now must not cost the approvals. The release waits, with
      // the failure in view, until someone fixes the remote and sends `retry`, or the approval timeout runs out.
      const now = nowIso();
      state.setRetrying(
        {
          step: 'gitops',
          attempt,
          lastFailure: failureMessage(err),
          failedAt: now,
          waitingFor: `a retry signal once the GitOps remote is fixed (mrel retry ${workflowId}), until ${new Date(Date.parse(now) + durationMs(config.approval.timeout)).toISOString()}`,
        },
        now,
      );
      publish();
      retryRequested = false;
      if (!(await condition(() => retryRequested, durationMs(config.approval.timeout)))) {
        return await finish('failed', `gitops: no retry within ${config.approval.timeout}: ${failureMessage(err)}`);
      }
    }
  }
  return await finish('released');
}

/** Why a decision must not apply because it arrived after its sender stopped waiting for an answer. */
function lateDecision(decision: DecideInput): string | undefined {
  if (decision.validUntil === undefined || Date.parse(decision.validUntil) >= Date.now()) return undefined;
  return `the decision arrived after its validUntil (${decision.validUntil}): its sender was told it did not apply, so it does not count; send it again`;
}

/** No worker started the activity within its schedule-to-start timeout. */
function isStarved(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === 'SCHEDULE_TO_START'
  );
}

/** A failure that no retry can change: a non-retryable ApplicationFailure from the activity. */
function isPermanent(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable === true;
}

async function runGate(gate: GateStep, ctx: GateContext): Promise<GateResult> {
  const startedAt = nowIso();
  try {
    return await gate.run(ctx);
  } catch (err) {
    if (isCancellation(err)) throw err;
    const type = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
    const verdict = type && FAILING_TYPES.includes(type) ? 'fail' : 'error';
    return {
      gate: gate.name,
      verdict,
      summary: failureMessage(err),
      metrics: {},
      findings: [
        {
          gate: gate.name,
          ruleId: type ?? 'GateError',
          severity: verdict === 'fail' ? 'high' : 'medium',
          location: ctx.request.model.source,
          message: failureMessage(err),
          waivable: false,
        },
      ],
      startedAt,
      finishedAt: nowIso(),
    };
  }
}

/** low | medium | high from the verdicts so far; undefined before any gate ran. */
export function riskLevel(gates: GateResult[]): string | undefined {
  if (gates.length === 0) return undefined;
  if (gates.some((g) => g.verdict === 'fail' || g.verdict === 'error')) return 'high';
  if (gates.some((g) => g.verdict === 'warn')) return 'medium';
  return 'low';
}

function approverOf(raw: unknown): string {
  const approver = typeof raw === 'object' && raw !== null ? (raw as { approver?: unknown }).approver : undefined;
  return typeof approver === 'string' && approver !== '' ? clip(approver, MAX_APPROVER_CHARS) : '(missing approver)';
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    const activity = err.activityType;
    switch (err.cause.timeoutType) {
      case 'SCHEDULE_TO_START':
        return `no worker took ${activity} in time: is a worker polling its task queue running?`;
      case 'HEARTBEAT':
        return `${activity} stopped heartbeating (its worker died or hung)`;
      default:
        return `${activity} timed out (${err.cause.timeoutType ?? 'timeout'})`;
    }
  }
  if (err instanceof ActivityFailure && err.cause) return clip(err.cause.message);
  return clip(err instanceof Error ? err.message : String(err));
}

function nowIso(): string {
  return new Date().toISOString();
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}
