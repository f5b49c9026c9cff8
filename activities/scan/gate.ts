/**
 * The scan gate on the gate contract: every manifest file is scanned for code in disguise (pickles, Keras Lambdas,
 * TF Python ops), malformed headers, archive tricks and secrets, and judged by the policy's `scan:` section.
 * A file that could not be examined makes the verdict `error`, never `pass`.
 */
import type { Finding } from '../../contract/types';
import { severityCounts } from '../common/gate-kit';
import { defineGate } from '../gate/gate';
import { isIncomplete } from './findings';
import { parseScanPolicy, type ScanPolicy } from './policy';
import { bySeverity, GATE, gateFindings, scanVerdict } from './report';
import { scanTargets, type ScanProgress, type ScanReport } from './scan';

export const scanGate = defineGate<ScanPolicy, ScanReport & { sha256: string[] }>({
  name: GATE,
  section: 'scan',
  activity: 'scanModel',
  queue: 'release',
  parsePolicy: (section, file) => parseScanPolicy(section, file),
  async run(ctx) {
    const targets = await Promise.all(
      ctx.manifest.files.map(async (f) => ({ path: f.path, file: await ctx.localFile(f.sha256), size: f.size })),
    );
    const report = await scanTargets(targets, {
      policy: ctx.policy,
      signal: ctx.signal,
      onProgress: (p: ScanProgress) => ctx.progress({ ...p, step: p.file }),
    });
    return { ...report, sha256: ctx.manifest.files.map((f) => f.sha256) };
  },
  judge(report, policy, ctx) {
    const findings: Finding[] = gateFindings(report.findings, ctx.waivers, ctx.now).sort(bySeverity);
    const verdict = scanVerdict(findings, policy.failOn, policy.warnOn);
    const counts = severityCounts(findings);
    const notExamined = findings.filter((f) => !f.waivedBy && isIncomplete(f.ruleId)).length;
    const formats = new Map<string, number>();
    for (const f of report.files) formats.set(f.format, (formats.get(f.format) ?? 0) + 1);
    return {
      verdict,
      summary: summarize(verdict, report.files.length, counts, notExamined, policy.failOn),
      findings,
      metrics: {
        files: report.files.length,
        bytes: report.bytes,
        findings: findings.length,
        ...counts,
        notExamined,
        formats: [...formats].map(([k, v]) => `${k}:${v}`).join(','),
      },
      evidence: { files: report.files.map((f, i) => ({ ...f, sha256: report.sha256[i] })) },
      annotations: { 'scan-verdict': verdict },
    };
  },
});

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
