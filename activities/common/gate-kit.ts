/**
 * What every gate shares: severity order, waivers and the verdict rule. Pure; knows nothing of Temporal.
 */
import type { Finding, Severity, Verdict, Waiver } from '../../contract/types';

export const SEVERITY_RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

/** The SARIF 2.1.0 `level` of each severity (both scan reports write SARIF for code-scanning dashboards). */
export const SARIF_LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = {
  critical: 'error',
  high: 'error',
  medium: 'warning',
  low: 'note',
  info: 'note',
};

/** True when `severity` is at or above `threshold`. */
export function atLeast(severity: Severity, threshold: Severity): boolean {
  return SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold];
}

/** Whether a waiver covers a finding at `now` (ISO time): same gate, a listed ruleId (or "*"), not expired. */
export function waiverCovers(waiver: Waiver, finding: Finding, now: string): boolean {
  return (
    waiver.gate === finding.gate &&
    (waiver.ruleIds.includes(finding.ruleId) || waiver.ruleIds.includes('*')) &&
    Date.parse(waiver.expiresAt) > Date.parse(now)
  );
}

/**
 * Marks the findings that an unexpired waiver covers (`waivedBy`); unwaivable findings and expired waivers count
 * as no waiver. Returns new objects; the input is not modified.
 */
export function applyWaivers(findings: Finding[], waivers: Waiver[], now: string): Finding[] {
  return findings.map((finding) => {
    if (!finding.waivable) return finding;
    const waiver = waivers.find((w) => waiverCovers(w, finding, now));
    if (!waiver) return finding;
    return {
      ...finding,
      waivedBy: { approver: waiver.approver, justification: waiver.justification, expiresAt: waiver.expiresAt },
    };
  });
}

/**
 * The verdict from findings, fail-closed: `error` when something could not be examined (unless a finding at or
 * above failOn already fails it), `fail` for an unwaived finding at or above `failOn`, `warn` for any other
 * unwaived finding at or above `warnOn` (default low), else `pass`.
 */
export function verdictFor(options: {
  findings: Finding[];
  failOn: Severity;
  warnOn?: Severity;
  /** Something was not examined (a parse error, a limit hit, an unknown format). */
  incomplete?: boolean;
}): Verdict {
  const counted = options.findings.filter((f) => !f.waivedBy);
  if (counted.some((f) => atLeast(f.severity, options.failOn))) return 'fail';
  if (options.incomplete) return 'error';
  if (counted.some((f) => atLeast(f.severity, options.warnOn ?? 'low'))) return 'warn';
  return 'pass';
}

/** Counts of unwaived findings per severity, for GateResult.metrics. */
export function severityCounts(findings: Finding[]): Record<string, number> {
  const counts: Record<string, number> = { critical: 0, high: 0, medium: 0, low: 0, info: 0, waived: 0 };
  for (const f of findings) {
    if (f.waivedBy) counts.waived = (counts.waived ?? 0) + 1;
    else counts[f.severity] = (counts[f.severity] ?? 0) + 1;
  }
  return counts;
}
