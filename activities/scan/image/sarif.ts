/** SARIF 2.1.0 output of an image scan, for code-scanning dashboards: one rule per finding id, one result per finding. */
import type { Finding } from '../../../contract/types';
import { sarifLog, type SarifLog, type SarifRuleInput } from '../../common/sarif';
import type { ImageScanReport } from './scan';

/** Builds a SARIF log from the gate's findings (waived ones carry a suppression). */
export function toSarif(report: ImageScanReport, findings: Finding[], toolVersion: string): SarifLog {
  const scores = new Map(report.vulnerabilities.map((v) => [v.id, v.score] as const));
  const rules = [...new Map(findings.map((f) => [f.ruleId, f] as const)).values()].map((f): SarifRuleInput => {
    const score = scores.get(f.ruleId);
    return {
      id: f.ruleId,
      shortDescription: f.ruleId,
      ...(f.ruleId.startsWith('CVE-') || f.ruleId.includes('-')
        ? { helpUri: `https://osv.dev/vulnerability/${encodeURIComponent(f.ruleId)}` }
        : {}),
      ...(score === undefined ? {} : { securitySeverity: String(score) }),
      properties: { severity: f.severity },
    };
  });
  const results = findings.map((f) => {
    const [where, pkg] = f.location.split('#');
    const path = (where ?? f.location).replace(/^(image|model|image-config|advisories):/, '');
    return {
      ruleId: f.ruleId,
      severity: f.severity,
      message: f.message,
      path: path || report.image.pinned,
      ...(pkg ? { logicalLocation: { name: pkg, kind: 'package' } } : {}),
      ...(f.waivedBy ? { suppression: `${f.waivedBy.approver}: ${f.waivedBy.justification}` } : {}),
    };
  });
  return sarifLog({ name: 'mrel scan-image', version: toolVersion }, rules, results, { image: report.image.pinned });
}
