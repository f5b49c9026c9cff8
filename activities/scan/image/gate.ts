/**
 * The gate's decision from a scan report: findings (vulnerabilities and the config/inventory problems), waivers,
 * the fail-closed verdict, compact metrics and the Deployment annotations that pin the scanned digest.
 */
import { MAX_RESULT_FINDINGS } from '../../../contract/limits';
import type { ImagePolicy } from './policy';
import type { Finding, GateResult, Waiver } from '../../../contract/types';
import { applyWaivers, SEVERITY_RANK, severityCounts, verdictFor } from '../../common/gate-kit';
import type { ImageScanReport } from './scan';

/** The gate's name in findings, waivers, evidence and the policy section. */
export const IMAGE_GATE = 'image';

export interface ImageDecision {
  verdict: GateResult['verdict'];
  summary: string;
  /** Every finding, waivers applied, worst first. */
  findings: Finding[];
  metrics: GateResult['metrics'];
  annotations: Record<string, string>;
}

/** Turns a report into findings and a verdict under `policy` and `waivers` at time `now`. */
export function decideImageGate(
  report: ImageScanReport,
  policy: ImagePolicy,
  waivers: Waiver[],
  now: string,
): ImageDecision {
  const raw: { finding: Finding; aliases: string[] }[] = [];
  let ignoredUnfixed = 0;
  for (const v of report.vulnerabilities) {
    if (policy.ignoreUnfixed && !v.fixed) {
      ignoredUnfixed++;
      continue;
    }
    const others = v.aliases.filter((a) => a !== v.id);
    raw.push({
      finding: {
        gate: IMAGE_GATE,
        ruleId: v.id,
        severity: v.severity,
        location: `${v.package.location}#${v.package.name}@${v.package.version}`,
        message:
          `${v.package.name} ${v.package.version} (${v.package.ecosystem}) is affected by ${v.id}` +
          `${others.length ? ` (${others.join(', ')})` : ''}: ${v.summary}; ` +
          `${v.fixed ? `fixed in ${v.fixed}` : 'no fix published'}` +
          `${v.score !== undefined ? `; CVSS ${v.score}` : ''} [${v.sources.join('+')}]`,
        waivable: true,
      },
      aliases: others,
    });
  }
  for (const p of report.problems) {
    raw.push({
      finding: {
        gate: IMAGE_GATE,
        ruleId: p.ruleId,
        severity: p.severity,
        location: p.location,
        message: p.message,
        // Not having looked cannot be waived away.
        waivable: !p.incomplete,
      },
      aliases: [],
    });
  }
  const waived = applyWaivers(
    raw.map((r) => r.finding),
    waivers,
    now,
  ).map((finding, i) => {
    if (finding.waivedBy || !finding.waivable) return finding;
    // A waiver may name the vulnerability by another of its ids (the GHSA instead of the CVE).
    for (const alias of raw[i]!.aliases) {
      const [viaAlias] = applyWaivers([{ ...finding, ruleId: alias }], waivers, now);
      if (viaAlias?.waivedBy) return { ...finding, waivedBy: viaAlias.waivedBy };
    }
    return finding;
  });
  const findings = waived.sort(
    (a, b) =>
      Number(Boolean(a.waivedBy)) - Number(Boolean(b.waivedBy)) ||
      SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] ||
      a.ruleId.localeCompare(b.ruleId) ||
      a.location.localeCompare(b.location),
  );
  const incomplete = report.problems.some((p) => p.incomplete);
  const verdict = verdictFor({ findings, failOn: policy.failOn, warnOn: policy.warnOn, incomplete });
  const counts = severityCounts(findings);
  const vulnFindings = findings.filter((f) => report.vulnerabilities.some((v) => v.id === f.ruleId));
  const countText = (['critical', 'high', 'medium', 'low'] as const)
    .filter((s) => (counts[s] ?? 0) > 0)
    .map((s) => `${counts[s]} ${s}`)
    .join(', ');
  const reasons: string[] = [];
  if (incomplete) {
    const what = [...new Set(report.problems.filter((p) => p.incomplete).map((p) => p.ruleId))].join(', ');
    reasons.push(`scan incomplete (${what})`);
  }
  const summary =
    `${report.image.pinned}: ${report.packages.length} packages, ${vulnFindings.length} vulnerabilities` +
    `${countText ? ` — unwaived findings: ${countText}` : ''}${counts.waived ? `, ${counts.waived} waived` : ''}` +
    `${ignoredUnfixed ? `, ${ignoredUnfixed} unfixed ignored` : ''}${reasons.length ? `; ${reasons.join('; ')}` : ''}` +
    `; fails at ${policy.failOn}`;
  const metrics: GateResult['metrics'] = {
    imageDigest: report.image.digest,
    imageRef: report.image.pinned,
    manifestDigest: report.image.manifestDigest,
    packages: report.packages.length,
    vulnerabilities: report.vulnerabilities.length,
    ignoredUnfixed,
    layers: report.layers.length,
    advisoriesLoaded: report.advisories.loaded,
    runsAsRoot: report.config.runsAsRoot,
    incomplete,
    inventoryMs: Math.round(report.timings.inventoryMs),
    matchMs: Math.round(report.timings.matchMs),
    findingsTotal: findings.length,
    findingsOmitted: Math.max(0, findings.length - MAX_RESULT_FINDINGS),
    ...counts,
  };
  return {
    verdict,
    summary,
    findings,
    metrics,
    annotations: { 'image-digest': report.image.digest, 'image-ref': report.image.pinned },
  };
}
