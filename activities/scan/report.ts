/**
 * What a scan looks like to its readers: gate findings (with waivers and the verdict), the JSON and SARIF 2.1.0
 * documents of `mrel scan`, and a plain-text report.
 */
import { createHash } from 'node:crypto';
import type { Finding, Severity, Verdict, Waiver } from '../../contract/types';
import { location } from '../../contract/location';
import { applyWaivers, SEVERITY_RANK, verdictFor } from '../common/gate-kit';
import {
  sarifLog,
  SECURITY_SEVERITY,
  type SarifLog,
  type SarifResultInput,
  type SarifRuleInput,
} from '../common/sarif';
import { isIncomplete, RULES, type RuleInfo, type ScanFinding } from './findings';
import type { ScanReport } from './scan';

export const GATE = 'scan';

/** Scanner findings as gate findings, waivers applied. */
export function gateFindings(findings: ScanFinding[], waivers: Waiver[], now: string): Finding[] {
  return applyWaivers(
    findings.map((f) => ({
      gate: GATE,
      ruleId: f.ruleId,
      severity: f.severity,
      location: location(f.path, f.offset),
      message: f.message,
      waivable: true,
    })),
    waivers,
    now,
  );
}

/** The verdict per the policy: fail at failOn; error while an unwaived finding says something was not examined. */
export function scanVerdict(findings: Finding[], failOn: Severity, warnOn: Severity = 'low'): Verdict {
  const incomplete = findings.some((f) => !f.waivedBy && isIncomplete(f.ruleId));
  return verdictFor({ findings, failOn, warnOn, incomplete });
}

/** Most severe first, then by location, so capped lists keep what matters. */
export function bySeverity<T extends { severity: Severity }>(a: T, b: T): number {
  return SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity];
}

/** The `--format json` document. */
export function scanJson(report: ScanReport, verdict: Verdict) {
  const plain = (f: ScanFinding) => ({
    ruleId: f.ruleId,
    severity: f.severity,
    path: f.path,
    ...(f.offset === undefined ? {} : { offset: f.offset }),
    message: f.message,
  });
  return {
    verdict,
    files: report.files.map((f) => ({ path: f.path, format: f.format, size: f.size, findings: f.findings.map(plain) })),
    findings: report.findings.map(plain),
  };
}

/**
 * The `--format sarif` document: SARIF 2.1.0 as GitHub code scanning accepts it (rules with ids, results with
 * ruleId, level, a location with a relative artifact URI and a region with startLine; byteOffset where known).
 * Entries inside archives point at the archive file; the entry is named in the message.
 */
export function scanSarif(report: ScanReport, toolVersion = '0.1.0'): SarifLog {
  const ruleIds = [...new Set(report.findings.map((f) => f.ruleId))].sort();
  const rules = ruleIds.map((id): SarifRuleInput => {
    const info = (RULES as Record<string, RuleInfo>)[id] as RuleInfo;
    return {
      id,
      name: id.replace(/[^A-Za-z0-9]+(.)/g, (_, c: string) => c.toUpperCase()).replace(/^./, (c) => c.toUpperCase()),
      shortDescription: info.title,
      fullDescription: `${info.title}.${info.incomplete ? ' The file was not fully examined.' : ''}`,
      severity: info.severity,
      securitySeverity: SECURITY_SEVERITY[info.severity],
      tags: ['security', 'ml-model'],
    };
  });
  const results = report.findings.map((f): SarifResultInput => {
    const bang = f.path.indexOf('!');
    const file = bang < 0 ? f.path : f.path.slice(0, bang);
    const entry = bang < 0 ? undefined : f.path.slice(bang + 1);
    return {
      ruleId: f.ruleId,
      severity: f.severity,
      message:
        entry === undefined
          ? f.message
          : `${entry}${f.offset === undefined ? '' : ` (byte ${f.offset})`}: ${f.message}`,
      path: file,
      region: f.offset !== undefined && entry === undefined ? { startLine: 1, byteOffset: f.offset } : { startLine: 1 },
      partialFingerprints: {
        'modelreleaseScan/v1': createHash('sha256')
          .update(`${f.ruleId}\0${f.path}\0${f.offset ?? ''}\0${f.message}`)
          .digest('hex'),
      },
      properties: { severity: f.severity },
    };
  });
  return sarifLog({ name: 'modelrelease-scan', version: toolVersion }, rules, results);
}

/** Human-readable lines: one per finding, then a summary line. */
export function scanText(report: ScanReport, verdict: Verdict): string[] {
  const lines: string[] = [];
  for (const f of [...report.findings].sort(bySeverity))
    lines.push(
      `${f.severity.toUpperCase().padEnd(8)} ${f.ruleId}  ${location(f.path, f.offset)}\n         ${f.message}`,
    );
  const formats = new Map<string, number>();
  for (const file of report.files) formats.set(file.format, (formats.get(file.format) ?? 0) + 1);
  lines.push(
    `${verdict}: ${report.files.length} file(s) scanned (${[...formats].map(([k, v]) => `${v} ${k}`).join(', ')}), ${report.findings.length} finding(s)${report.incomplete ? '; some content was not examined' : ''}`,
  );
  return lines;
}
