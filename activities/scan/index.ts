/**
 * The scan gate activity: Temporal wiring around the pure scanner in ./scan. It reads every manifest file from the
 * content-addressed store, heartbeats progress, honours cancellation, writes the full evidence to the store and
 * returns a compact GateResult.
 */
import { activityContext, throttledHeartbeat } from '../common/activity-context';
import { ApplicationFailure } from '@temporalio/common';
import { parseScanPolicy, type ScanPolicy } from '../../config/policy-scan';
import { FailureType } from '../../contract/definitions';
import type { GateInput, GateResult } from '../../contract/types';
import { storePath } from '../store/filesystem';
import { severityCounts, writeEvidence } from '../common/gate-kit';
import { isIncomplete } from './findings';
import { bySeverity, GATE, gateFindings, scanVerdict } from './report';
import { scanTargets, type ScanProgress } from './scan';

export { RULES, type RuleId, type ScanFinding } from './findings';
export { DEFAULT_ALLOWLIST, DENYLIST, GlobalPolicy } from './globals';
export { GATE, gateFindings, scanJson, scanSarif, scanText, scanVerdict } from './report';
export { scanTargets, type FileReport, type ScanReport, type ScanTarget } from './scan';

export interface ScanDeps {
  /** Root of the content-addressed store: artifacts are read from it and the evidence is written into it. */
  storeRoot: string;
}

/** Findings kept in the GateResult (it goes into workflow history); the evidence file keeps all of them. */
export const MAX_RESULT_FINDINGS = 200;
const HEARTBEAT_INTERVAL_MS = 1_000;

export function createScanActivities(deps: ScanDeps) {
  return {
    /**
     * Scan every file of the release's manifest for code in disguise (pickles, Keras Lambdas, TF Python ops),
     * malformed headers, archive tricks and secrets, and decide per the policy's `scan:` section.
     *
     * Idempotent: reads only, and rewrites the same evidence file. Heartbeats `{ file, filesDone, filesTotal, bytes }`:
     * give it a heartbeat timeout. A bad `scan:` policy section is a non-retryable InvalidConfig failure; a file that
     * could not be examined makes the verdict `error`, never `pass`.
     */
    async scanModel(input: GateInput): Promise<GateResult> {
      const startedAt = new Date().toISOString();
      const context = activityContext();
      let policy: ScanPolicy;
      try {
        policy = parseScanPolicy(input.policy, `config/policies/${input.request.policy}.yaml`);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, FailureType.InvalidConfig);
      }
      const targets = input.manifest.files.map((f) => ({
        path: f.path,
        file: storePath(deps.storeRoot, f.sha256),
        size: f.size,
      }));
      const report = await scanTargets(targets, {
        policy,
        signal: context?.cancellationSignal,
        onProgress: context && throttledHeartbeat<ScanProgress>(context, (p) => p.file, HEARTBEAT_INTERVAL_MS),
      });
      const finishedAt = new Date().toISOString();
      const findings = gateFindings(report.findings, input.waivers, finishedAt).sort(bySeverity);
      const verdict = scanVerdict(findings, policy.failOn, policy.warnOn);
      const counts = severityCounts(findings);
      const notExamined = findings.filter((f) => !f.waivedBy && isIncomplete(f.ruleId));
      const evidence = await writeEvidence(deps.storeRoot, input.releaseId, GATE, {
        gate: GATE,
        verdict,
        policy,
        manifestDigest: input.manifest.manifestDigest,
        files: report.files.map((f, i) => ({ ...f, sha256: input.manifest.files[i]?.sha256 })),
        findings,
        startedAt,
        finishedAt,
      });
      const formats = new Map<string, number>();
      for (const f of report.files) formats.set(f.format, (formats.get(f.format) ?? 0) + 1);
      return {
        gate: GATE,
        verdict,
        summary: summarize(verdict, report.files.length, counts, notExamined.length, policy.failOn),
        metrics: {
          files: report.files.length,
          bytes: report.bytes,
          findings: findings.length,
          ...counts,
          notExamined: notExamined.length,
          omittedFindings: Math.max(0, findings.length - MAX_RESULT_FINDINGS),
          formats: [...formats].map(([k, v]) => `${k}:${v}`).join(','),
          durationMs: Date.parse(finishedAt) - Date.parse(startedAt),
        },
        findings: findings.slice(0, MAX_RESULT_FINDINGS),
        evidence,
        annotations: { 'scan-verdict': verdict },
        startedAt,
        finishedAt,
      };
    },
  };
}

function summarize(
  verdict: string,
  files: number,
  counts: Record<string, number>,
  notExamined: number,
  failOn: string,
): string {
  const parts = (['critical', 'high', 'medium', 'low'] as const)
    .filter((s) => (counts[s] ?? 0) > 0)
    .map((s) => `${counts[s]} ${s}`);
  const found = parts.length > 0 ? parts.join(', ') : 'no findings';
  const waived = counts.waived ? ` (${counts.waived} waived)` : '';
  const incomplete = notExamined > 0 ? `; ${notExamined} thing(s) could not be examined` : '';
  return `scanned ${files} file(s): ${found}${waived}${incomplete}; fails on ${failOn} → ${verdict}`;
}
