/**
 * The one activity adapter every gate runs through: it parses the policy section (one invalid-config behaviour),
 * loads the manifest by digest, heartbeats progress and honours cancellation, applies the findings cap, stores the
 * full evidence by digest and turns "could not decide" into an `error` verdict. The gate module itself only measures
 * and judges.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../contract/definitions';
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import type { Finding, GateInput, GateResult } from '../../contract/types';
import { activityContext, throttledHeartbeat } from '../common/activity-context';
import type { ArtifactStore } from '../store/artifact-store';
import { loadManifest } from '../store/manifest';
import { putEvidence } from './evidence';
import { CannotDecide, InvalidPolicy, type Gate, type GateRunContext, type Judgement } from './gate';

/** Heartbeats for the same step at most this often (a new step heartbeats at once). */
const HEARTBEAT_INTERVAL_MS = 1_000;

export interface GateActivityDeps {
  store: ArtifactStore;
}

/** The policy file a release's policy section comes from, for messages. */
export function policyFileOf(input: Pick<GateInput, 'request'>): string {
  return `config/policies/${input.request.policy}.yaml`;
}

/** The gate's policy, or a non-retryable InvalidConfig failure naming each bad field (a retry cannot fix a file). */
export function policyOrFailure<P>(gate: Gate<P>, section: unknown, file: string): P {
  try {
    return gate.parsePolicy(section, file);
  } catch (err) {
    const problems = err instanceof InvalidPolicy ? err.problems : [(err as Error).message];
    throw ApplicationFailure.nonRetryable(
      `invalid ${gate.section} policy in ${file}: ${problems.join('; ')}`,
      FailureType.InvalidConfig,
      { problems: problems.slice(0, 20) },
    );
  }
}

/** Runs a gate for one release input: the body of the gate's activity. */
export async function runGateActivity<P, R>(
  gate: Gate<P, R>,
  input: GateInput,
  deps: GateActivityDeps,
): Promise<GateResult> {
  const startedAt = new Date().toISOString();
  const context = activityContext();
  const file = policyFileOf(input);
  const policy = policyOrFailure(gate, input.policy, file);
  try {
    const manifest = await loadManifest(deps.store, input.manifest);
    const heartbeat = context && throttledHeartbeat<{ step: string }>(context, (p) => p.step, HEARTBEAT_INTERVAL_MS);
    const ctx: GateRunContext<P> = {
      releaseId: input.releaseId,
      request: input.request,
      policy,
      policyFile: file,
      waivers: input.waivers.filter((w) => w.gate === gate.name),
      earlier: input.earlier,
      manifest,
      ...(input.dataset ? { dataset: input.dataset } : {}),
      store: deps.store,
      localFile: (sha256) => deps.store.localFile(sha256),
      signal: context?.cancellationSignal,
      progress: (details, options) => heartbeat?.(details, options?.checkpoint),
      resumeFrom: context?.info.heartbeatDetails,
      now: startedAt,
    };
    const report = await gate.run(ctx);
    const judgement = gate.judge(report, policy, ctx);
    return await toResult(gate, input, judgement, policy, startedAt, deps.store);
  } catch (err) {
    // The worker reports a cancelled activity only when it ends with its own CancelledFailure.
    if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
    if (err instanceof CannotDecide)
      return toResult(gate, input, cannotDecide(gate, err), policy, startedAt, deps.store);
    if (err instanceof InvalidPolicy) {
      throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig, {
        problems: err.problems.slice(0, 20),
      });
    }
    throw err;
  }
}

/** The `error` verdict for a gate that could not decide: the reason as summary and as an unwaivable finding. */
export function cannotDecide(gate: Pick<Gate, 'name'>, err: CannotDecide): Judgement {
  return {
    verdict: 'error',
    summary: `${gate.name} could not decide: ${err.message.split('\n')[0]}`,
    findings: [
      {
        gate: gate.name,
        ruleId: err.ruleId,
        severity: 'high',
        location: err.location,
        message: err.message,
        waivable: false,
      },
    ],
    metrics: { error: err.ruleId },
    evidence: { error: { ruleId: err.ruleId, message: err.message, ...err.details } },
  };
}

/**
 * The GateResult kept in history, with the full evidence stored by digest. The evidence holds no wall-clock time
 * and no host path, so the same measurement gives the same digest on every worker and every retry.
 */
export async function toResult(
  gate: Pick<Gate, 'name' | 'section'>,
  input: Pick<GateInput, 'releaseId' | 'request' | 'manifest'>,
  judgement: Judgement,
  policy: unknown,
  startedAt: string,
  store: ArtifactStore,
): Promise<GateResult> {
  const findings = judgement.findings;
  const attachments: { name: string; digest: string }[] = [];
  for (const attachment of judgement.attachments ?? []) {
    attachments.push({ name: attachment.name, digest: await putEvidence(store, attachment.data, gate.name) });
  }
  const evidence = await putEvidence(
    store,
    {
      gate: gate.name,
      releaseId: input.releaseId,
      model: `${input.request.model.name}@${input.request.model.version}`,
      manifestDigest: input.manifest.manifestDigest,
      policy: { file: policyFileOf(input), section: gate.section, value: policy ?? null },
      verdict: judgement.verdict,
      summary: judgement.summary,
      ...(judgement.inputs ? { inputs: judgement.inputs } : {}),
      report: judgement.evidence,
      findings,
      ...(attachments.length > 0 ? { attachments } : {}),
    },
    gate.name,
  );
  const kept: Finding[] = findings.slice(0, MAX_RESULT_FINDINGS);
  return {
    gate: gate.name,
    verdict: judgement.verdict,
    summary: judgement.summary,
    metrics: {
      ...judgement.metrics,
      ...(findings.length > kept.length ? { findingsOmitted: findings.length - kept.length } : {}),
    },
    findings: kept,
    evidence,
    ...(judgement.requiredApprovals && judgement.requiredApprovals.length > 0
      ? { requiredApprovals: judgement.requiredApprovals }
      : {}),
    ...(judgement.annotations ? { annotations: judgement.annotations } : {}),
    ...(judgement.deployment ? { deployment: judgement.deployment } : {}),
    ...(judgement.throughput ? { throughput: judgement.throughput } : {}),
    ...(judgement.inputs ? { inputs: judgement.inputs } : {}),
    ...(attachments.length > 0 ? { attachments } : {}),
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}

/** The activity function for a gate: `(input: GateInput) => Promise<GateResult>`. */
export function gateActivity<P, R>(
  gate: Gate<P, R>,
  deps: GateActivityDeps,
): (input: GateInput) => Promise<GateResult> {
  return (input) => runGateActivity(gate, input, deps);
}
