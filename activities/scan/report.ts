/**
 * What a scan looks like to its readers: gate findings (with waivers and the verdict), the JSON and SARIF 2.1.0
 * documents of `mrel scan`, and a plain-text report.
 */
import { SARIF_LEVEL } from '../common/gate-kit';
import { createHash } from 'node:crypto';
import type { Finding, Severity, Verdict, Waiver } from '../../contract/types';
import { location } from '../../contract/location';
import { applyWaivers, SEVERITY_RANK, verdictFor } from '../common/gate-kit';
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

const LEVEL = SARIF_LEVEL;
/** GitHub ranks alerts by `security-severity` (0–10). */
const SECURITY_SEVERITY: Record<Severity, string> = {
  critical: '9.5',
  high: '8.0',
  medium: '5.5',
  low: '3.0',
  info: '0.0',
};

/**
 * The `--format sarif` document: SARIF 2.1.0 as GitHub code scanning accepts it (rules with ids, results with
 * ruleId, level, a location with a relative artifact URI and a region with startLine; byteOffset where known).
 * Entries inside archives point at the archive file; the entry is named in the message.
 */
export function scanSarif(report: ScanReport, toolVersion = '0.1.0') {
  const ruleIds = [...new Set(report.findings.map((f) => f.ruleId))].sort();
  const rules = ruleIds.map((id) => {
    const info = (RULES as Record<string, RuleInfo>)[id] as RuleInfo;
    return {
      id,
      name: id.replace(/[^A-Za-z0-9]+(.)/g, (_, c: string) => c.toUpperCase()).replace(/^./, (c) => c.toUpperCase()),
      shortDescription: { text: info.title },
      fullDescription: { text: `${info.title}.${info.incomplete ? ' The file was not fully examined.' : ''}` },
      defaultConfiguration: { level: LEVEL[info.severity] },
      properties: { tags: ['security', 'ml-model'], 'security-severity': SECURITY_SEVERITY[info.severity] },
    };
  });
  const results = report.findings.map((f) => {
    const bang = f.path.indexOf('!');
    const file = bang < 0 ? f.path : f.path.slice(0, bang);
    const entry = bang < 0 ? undefined : f.path.slice(bang + 1);
    const region: Record<string, number> = { startLine: 1 };
    if (f.offset !== undefined && entry === undefined) region.byteOffset = f.offset;
    return {
      ruleId: f.ruleId,
      ruleIndex: ruleIds.indexOf(f.ruleId),
      level: LEVEL[f.severity],
      message: {
        text:
          entry === undefined
            ? f.message
            : `${entry}${f.offset === undefined ? '' : ` (byte ${f.offset})`}: ${f.message}`,
      },
      locations: [{ physicalLocation: { artifactLocation: { uri: toUri(file) }, region } }],
      partialFingerprints: {
        'modelreleaseScan/v1': createHash('sha256')
          .update(`${f.ruleId}\0${f.path}\0${f.offset ?? ''}\0${f.message}`)
          .digest('hex'),
      },
      properties: { severity: f.severity },
    };
  });
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'modelrelease-scan',
            semanticVersion: toolVersion,
            rules,
          },
        },
        results,
      },
    ],
  };
}

/** Relative paths as URI references (each segment percent-encoded, slashes kept). */
function toUri(path: string): string {
  return path
    .replace(/\\/g, '/')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
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
