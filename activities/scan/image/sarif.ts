/** SARIF 2.1.0 output of a scan, for code-scanning dashboards: one rule per finding id, one result per finding. */
import { SARIF_LEVEL } from '../../common/gate-kit';
import type { Finding } from '../../../contract/types';
import type { ImageScanReport } from './scan';

const LEVEL = SARIF_LEVEL;

/** Builds a SARIF log from the gate's findings (waived ones carry a suppression). */
export function toSarif(report: ImageScanReport, findings: Finding[], toolVersion: string): Record<string, unknown> {
  const scores = new Map(report.vulnerabilities.map((v) => [v.id, v.score] as const));
  const rules = [...new Map(findings.map((f) => [f.ruleId, f] as const)).values()].map((f) => ({
    id: f.ruleId,
    shortDescription: { text: f.ruleId },
    ...(f.ruleId.startsWith('CVE-') || f.ruleId.includes('-')
      ? { helpUri: `https://osv.dev/vulnerability/${encodeURIComponent(f.ruleId)}` }
      : {}),
    properties: {
      ...(scores.get(f.ruleId) !== undefined ? { 'security-severity': String(scores.get(f.ruleId)) } : {}),
      severity: f.severity,
    },
  }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'mrel scan-image', version: toolVersion, rules } },
        properties: { image: report.image.pinned },
        results: findings.map((f) => {
          const [where, pkg] = f.location.split('#');
          const uri = (where ?? f.location).replace(/^(image|model|image-config|advisories):/, '');
          return {
            ruleId: f.ruleId,
            level: LEVEL[f.severity],
            message: { text: f.message },
            locations: [
              {
                physicalLocation: { artifactLocation: { uri: uri || report.image.pinned } },
                ...(pkg ? { logicalLocations: [{ name: pkg, kind: 'package' }] } : {}),
              },
            ],
            ...(f.waivedBy
              ? {
                  suppressions: [
                    { kind: 'external', justification: `${f.waivedBy.approver}: ${f.waivedBy.justification}` },
                  ],
                }
              : {}),
          };
        }),
      },
    ],
  };
}
