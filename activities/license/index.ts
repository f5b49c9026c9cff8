/**
 * The license gate activity: Temporal wiring around the pure decision in ./check. It reads the model's files
 * through the acquired manifest (by digest, from the artifact store), heartbeats per source file, writes the full
 * evidence into the store, and returns a compact GateResult.
 */
import { activityContext } from '../common/activity-context';
import { ApplicationFailure } from '@temporalio/common';
import { checkLicensePolicy, type LicensePolicy } from '../../config/policy-license';
import { FailureType } from '../../contract/definitions';
import type { Finding, GateInput, GateResult } from '../../contract/types';
import { severityCounts, writeEvidence } from '../common/gate-kit';
import { checkModelLicense, GATE, LicensePolicyError, type LicenseReport } from './check';
import { manifestFiles } from './model-files';

export { checkModelLicense, GATE, LICENSE_RULES, LicensePolicyError } from './check';
export type { CheckOptions, Conflict, LicensePart, LicenseReport } from './check';
export { directoryFiles, manifestFiles } from './model-files';
export { licensePolicyProblems } from './policy-check';
export type { ModelFile, ModelFiles } from './model-files';

export interface LicenseDeps {
  /** Root of the content-addressed store: where the artifacts are read and the evidence is written. */
  storeRoot: string;
}

/** Findings kept in the GateResult (it goes into workflow history); the evidence file keeps all of them. */
export const MAX_RESULT_FINDINGS = 200;

/**
 * Validates a policy's `license:` section (absent = defaults). Throws a non-retryable InvalidConfig failure whose
 * message names each bad field: a retry cannot fix the policy file.
 */
export function licensePolicyOf(section: unknown): LicensePolicy {
  const checked = checkLicensePolicy(section);
  if ('policy' in checked) return checked.policy;
  throw ApplicationFailure.nonRetryable(
    `invalid license policy: ${checked.problems.join('; ')}`,
    FailureType.InvalidConfig,
    { problems: checked.problems },
  );
}

export function createLicenseActivities(deps: LicenseDeps) {
  return {
    /**
     * The license gate: reads the model card, LICENSE/COPYING files and package metadata, identifies and
     * categorises the license, and decides it by the policy's `license:` section.
     *
     * Verdicts: `pass` (allowed), `warn` (review: `requiredApprovals` asks for the policy's review role), `fail`
     * (denied), `error` (a source could not be read; never `pass`). Idempotent: it only reads the store and
     * rewrites the same evidence file. Heartbeats `{ file, done, total }` per source file and stops when cancelled.
     * An invalid policy is a non-retryable InvalidConfig failure; store read errors are plain errors (retried).
     */
    async checkLicense(input: GateInput): Promise<GateResult> {
      const startedAt = new Date().toISOString();
      const policy = licensePolicyOf(input.policy);
      const context = activityContext();
      let report: LicenseReport;
      try {
        report = await checkModelLicense(manifestFiles(input.manifest), policy, {
          now: startedAt,
          waivers: input.waivers.filter((w) => w.gate === GATE),
          signal: context?.cancellationSignal,
          onProgress: context ? (progress) => context.heartbeat(progress) : undefined,
        });
      } catch (err) {
        if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
        if (err instanceof LicensePolicyError) {
          throw ApplicationFailure.nonRetryable(`invalid license policy: ${err.message}`, FailureType.InvalidConfig, {
            problems: err.problems,
          });
        }
        throw err;
      }
      const evidence = await writeEvidence(deps.storeRoot, input.releaseId, GATE, {
        gate: GATE,
        releaseId: input.releaseId,
        model: `${input.manifest.model}@${input.manifest.version}`,
        manifestDigest: input.manifest.manifestDigest,
        ...report,
      });
      return toGateResult(report, evidence, startedAt);
    },
  };
}

/** The compact GateResult for a report: summary, metrics, at most MAX_RESULT_FINDINGS findings. */
export function toGateResult(report: LicenseReport, evidence: string | undefined, startedAt: string): GateResult {
  const findings: Finding[] = report.findings.slice(0, MAX_RESULT_FINDINGS);
  const best = report.sources.filter((s) => s.match).map((s) => s.match?.score ?? 0);
  return {
    gate: GATE,
    verdict: report.verdict,
    summary: report.summary,
    metrics: {
      license: report.license,
      category: report.category,
      decision: report.decision,
      sources: report.sources.length,
      conflicts: report.conflicts.length,
      ...(best.length > 0 ? { textMatchScore: Math.min(...best) } : {}),
      ...severityCounts(report.findings),
      findingsOmitted: report.findings.length - findings.length,
    },
    findings,
    ...(evidence ? { evidence } : {}),
    ...(report.requiredApprovals.length > 0 ? { requiredApprovals: report.requiredApprovals } : {}),
    annotations: { license: report.license },
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}

export type LicenseActivities = ReturnType<typeof createLicenseActivities>;
