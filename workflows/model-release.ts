/**
 * modelReleaseWorkflow: one durable workflow per model version and environment.
 *
 *   config → gate phases (acquire; scan+license; evaluation; cost) → approval (signals/update) → gitops → monitor
 *
 * Workflow id `release/<model>/<version>/<environment>` (see releaseWorkflowId); the client starts it with the
 * USE_EXISTING conflict policy so a second start returns the running release. The result is the final ReleaseStatus,
 * whose stage is released, rejected, expired or failed. The plan (phases, profiles, queues) is workflows/plan.ts; the
 * state and its transitions are ReleaseState; this file is the order of the steps.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType } from '../contract/definitions';
import { durationMs } from '../contract/duration';
import type { GitOpsPublishInput } from '../activities/gitops';
import type { MonitoringResume } from '../contract/monitoring';
import type { ReleaseRequest, ReleaseStatus } from '../contract/types';
import { evidenceBundle } from './evidence';
import { installHandlers, nowIso } from './handlers';
import {
  CONTENT_GATES_PATCH,
  DELIVERY_PATCH,
  GITOPS_ROUNDS,
  HARDENING_PATCH,
  MONITORING_PATCH,
  NOTIFICATIONS_PATCH,
  phasesFor,
  RELEASE_PLAN_PATCH,
  TRUST_PATCH,
  TRUST_PAUSES_PATCH,
  type PlanVersion,
} from './plan';
import { monitorRollout } from './monitor';
import { monitorWindow } from './monitoring';
import { publishIdentity, publisher } from './publish';
import { ReleaseState } from './release-state';
import { checkRequest } from './request-check';
import { failureMessage, Steps } from './steps';

export {
  CONTENT_GATES_PATCH,
  DELIVERY_PATCH,
  HARDENING_PATCH,
  MONITORING_PATCH,
  NOTIFICATIONS_PATCH,
  RELEASE_PLAN_PATCH,
  TRUST_PATCH,
  TRUST_PAUSES_PATCH,
} from './plan';

/**
 * `resume` is set only by the release itself when it continues as new during its monitoring window: the next run
 * picks the window up where the last one left it.
 */
export async function modelReleaseWorkflow(input: ReleaseRequest, resume?: MonitoringResume): Promise<ReleaseStatus> {
  const status = resume === undefined ? await release(input) : await resumeMonitoring(input, resume);
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

/** The patches this release runs with, asked in the order their markers were first recorded. */
function planVersion(): PlanVersion {
  const hardened = patched(HARDENING_PATCH);
  const notifying = hardened && patched(NOTIFICATIONS_PATCH);
  const contentGates = patched(CONTENT_GATES_PATCH);
  const planned = hardened && notifying && contentGates && patched(RELEASE_PLAN_PATCH);
  const delivering = planned && patched(DELIVERY_PATCH);
  const monitoring = delivering && patched(MONITORING_PATCH);
  const trusted = monitoring && patched(TRUST_PATCH);
  const signedPauses = trusted && patched(TRUST_PAUSES_PATCH);
  return { hardened, notifying, contentGates, planned, delivering, monitoring, trusted, signedPauses };
}

async function release(input: ReleaseRequest): Promise<ReleaseStatus> {
  const version = planVersion();
  const request = checkRequest(input, version);
  const phases = phasesFor(request, version);
  const views = phases.map((p) => ({ stage: p.stage, gates: p.gates.map((g) => g.name) }));
  const state = new ReleaseState(request, workflowInfo().workflowId, views, nowIso());
  // Releases from before the content gates carry no RiskLevel.
  const publish = publisher(state, { memo: version.hardened, risk: phases.length > 1 });
  installHandlers(state, publish, { trusted: version.trusted === true, signedPauses: version.signedPauses === true });
  publishIdentity(request);
  publish();
  const steps = new Steps(state, version, publish);

  const stopped = await untilRejected(state, async () => (await steps.loadConfig()) ?? steps.gates(phases));
  if (state.rejection) return steps.finish('rejected', state.rejectedReason());
  if (stopped !== undefined) return steps.finish('failed', stopped);
  const config = state.config;
  if (!config || !state.manifest) return steps.finish('failed', 'internal: release config or manifest missing');

  state.openApproval(nowIso());
  publish();
  const awaiting = state.status.awaiting;
  // Sent while the release already waits: a slow webhook never delays a decision or the deadline.
  const told = awaiting
    ? steps.notify('awaiting-approval', `awaits approval: needs ${awaiting.description}`, [
        `may approve: ${awaiting.from.join(', ') || 'nobody in approvers.yaml can'}`,
        `until ${awaiting.deadline}`,
      ])
    : undefined;
  const timeout = config.approval.timeout;
  const decided = version.trusted
    ? await awaitDecisions(state, steps, phases, durationMs(timeout))
    : await condition(() => state.rejection !== undefined || state.approved, durationMs(timeout));
  await told;
  if (state.rejection) return steps.finish('rejected', state.rejectedReason());
  if (!decided) {
    const missing = `still missing ${state.progress().approvalsMissing} approval(s)`;
    return steps.finish('expired', `no decision within ${timeout} (policy ${config.policy.name}); ${missing}`);
  }

  state.startCommit(nowIso());
  publish();
  const failure = await commit(state, steps, publish);
  if (failure !== undefined) return steps.finish('failed', failure);
  if (!version.delivering) return steps.finish('released');
  const outcome = await monitorRollout(state, steps, publish);
  if (outcome.stage !== 'released' || !version.monitoring || config.monitor === undefined)
    return steps.finish(outcome.stage, outcome.reason);
  const watched = await monitorWindow(state, steps, publish, outcome);
  return steps.finish(watched.stage, watched.reason);
}

/** A run that continued as new in the monitoring window: the same release, its state carried over, the window resumed. */
async function resumeMonitoring(input: ReleaseRequest, resume: MonitoringResume): Promise<ReleaseStatus> {
  const version = planVersion();
  const request = checkRequest(input, version);
  const phases = phasesFor(request, version);
  const views = phases.map((p) => ({ stage: p.stage, gates: p.gates.map((g) => g.name) }));
  const state = ReleaseState.resumed(resume, request, workflowInfo().workflowId, views, nowIso());
  const publish = publisher(state, { memo: true, risk: true });
  installHandlers(state, publish, { trusted: version.trusted === true, signedPauses: version.signedPauses === true });
  publish();
  const steps = new Steps(state, version, publish);
  const watched = await monitorWindow(state, steps, publish);
  return steps.finish(watched.stage, watched.reason);
}

/**
 * Waits for the approvals (TRUST_PATCH releases) until `timeoutMs` has passed; a waiver granted meanwhile judges its
 * gate again first. Whether the release was decided (approved or rejected) in time.
 */
async function awaitDecisions(
  state: ReleaseState,
  steps: Steps,
  phases: ReturnType<typeof phasesFor>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const woke = await condition(
      () => state.rejection !== undefined || state.approved || state.rejudgeRequested,
      Math.max(0, deadline - Date.now()),
    );
    if (!woke) return false;
    if (state.rejection !== undefined || !state.rejudgeRequested) return true;
    await steps.rejudge(phases, state.takeRejudge());
    if (state.approved) return true;
  }
}

/**
 * Runs `pipeline` (config and gates) in a scope that a reject cancels, so a rejected release stops at once. Returns
 * the pipeline's failure reason; undefined when it passed or the release was rejected.
 */
async function untilRejected(state: ReleaseState, pipeline: () => Promise<string | undefined>) {
  const scope = new CancellationScope();
  let outcome: { failure?: string; error?: unknown } | undefined;
  const done = scope.run(pipeline).then(
    (failure) => void (outcome = { failure }),
    (error) => void (outcome = isCancellation(error) && state.rejection ? {} : { error }),
  );
  await condition(() => state.rejection !== undefined || outcome !== undefined);
  if (state.rejection) {
    scope.cancel();
    await done;
    return undefined;
  }
  if (outcome?.error !== undefined) throw outcome.error;
  return outcome?.failure;
}

/**
 * Pushes the image the gate scanned from the local Docker engine to the request's `image.push` repository by digest,
 * before the commit that deploys it: what runs is exactly what was scanned. Undefined when nothing is to be pushed.
 */
async function pushImage(
  state: ReleaseState,
  steps: Steps,
): Promise<{ ref: string } | { failure: string } | undefined> {
  const image = state.request.image;
  if (image?.push === undefined) return undefined;
  const scanned = state.status.gates.find((g) => g.gate === 'image')?.metrics.imageDigest;
  try {
    const pushed = await steps.call(
      'push',
      'long',
      'pushImage',
      [{ source: image.ref, target: image.push, ...(typeof scanned === 'string' ? { imageId: scanned } : {}) }],
      `push ${image.ref} to ${image.push} by digest`,
      GITOPS_ROUNDS,
    );
    state.status.pushedImage = pushed.ref;
    return { ref: pushed.ref };
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { failure: `image push: ${failureMessage(err)}` };
  }
}

/**
 * Commits the approved release to the GitOps repository. Approved and judged: a remote that refuses or fails must
 * not cost the approvals, so a hardened release waits, with the failure in view, for a `retry` signal once the remote
 * is fixed, until the approval timeout runs out. Returns the failure reason, or undefined once committed.
 */
async function commit(state: ReleaseState, steps: Steps, publish: () => void): Promise<string | undefined> {
  const { request, config, status } = state;
  if (!config || !state.manifest) return 'internal: release config or manifest missing';
  const input: GitOpsPublishInput = {
    releaseId: status.releaseId,
    runId: workflowInfo().runId,
    request,
    manifest: state.manifest,
    gates: status.gates,
    approvals: status.approvals,
    policy: { name: config.policy.name, digest: config.policy.digest },
  };
  // Releases from before the evidence bundle commit as they began.
  if (steps.version.planned) input.evidence = evidenceBundle(state, config);
  if (steps.version.delivering) {
    if (config.delivery !== undefined) input.delivery = config.delivery;
    const pushed = await pushImage(state, steps);
    if (pushed !== undefined && 'failure' in pushed) return pushed.failure;
    if (pushed !== undefined) input.deployImage = pushed.ref;
  }
  const summary = `commit ${request.model.name}@${request.model.version} to ${request.environment}`;
  const timeout = config.approval.timeout;
  for (let attempt = 1; ; attempt++) {
    try {
      state.setCommit(await steps.call('gitops', 'short', 'commitRelease', [input], summary, GITOPS_ROUNDS), nowIso());
      return undefined;
    } catch (err) {
      if (!steps.version.hardened || isCancellation(err)) return `gitops: ${failureMessage(err)}`;
      const now = nowIso();
      const until = new Date(Date.parse(now) + durationMs(timeout)).toISOString();
      const waitingFor = `a retry signal once the GitOps remote is fixed (mrel retry ${status.releaseId}), until ${until}`;
      state.setRetrying({ step: 'gitops', attempt, lastFailure: failureMessage(err), failedAt: now, waitingFor }, now);
      publish();
      state.awaitRetry();
      if (!(await condition(() => state.retryRequested, durationMs(timeout))))
        return `gitops: no retry within ${timeout}: ${failureMessage(err)}`;
    }
  }
}
