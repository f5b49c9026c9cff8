/**
 * The license gate on the gate contract: reads the model card, LICENSE/COPYING files and package metadata, identifies
 * and categorises the license, and decides it by the policy's `license:` section. `warn` asks for the policy's review
 * role (requiredApprovals); `error` when a source could not be read (never `pass`).
 */
import { severityCounts } from '../common/gate-kit';
import { defineGate, InvalidPolicy } from '../gate/gate';
import { checkModelLicense, GATE, LicensePolicyError, type LicenseReport } from './check';
import { manifestFiles } from './model-files';
import { checkLicensePolicy, type LicensePolicy } from './policy';
import { licensePolicyProblems } from './policy-check';

export const licenseGate = defineGate<LicensePolicy, LicenseReport>({
  name: GATE,
  section: 'license',
  activity: 'checkLicense',
  queue: 'release',
  parsePolicy(section, file) {
    // The schema and the license ids the policy names (a misspelt id would never match): one check, at load.
    const problems = licensePolicyProblems(section);
    const checked = checkLicensePolicy(section);
    if (problems.length > 0 || !('policy' in checked)) throw new InvalidPolicy(file, 'license', problems);
    return checked.policy;
  },
  async run(ctx) {
    try {
      return await checkModelLicense(manifestFiles(ctx.manifest, ctx.store), ctx.policy, {
        now: ctx.now,
        waivers: ctx.waivers,
        signal: ctx.signal,
        onProgress: (p) => ctx.progress({ ...p, step: p.file }),
      });
    } catch (err) {
      if (err instanceof LicensePolicyError) throw new InvalidPolicy(ctx.policyFile, 'license', err.problems);
      throw err;
    }
  },
  judge(report) {
    const best = report.sources.filter((s) => s.match).map((s) => s.match?.score ?? 0);
    const { policy: _policy, ...evidence } = report;
    return {
      verdict: report.verdict,
      summary: report.summary,
      findings: report.findings,
      metrics: {
        license: report.license,
        category: report.category,
        decision: report.decision,
        sources: report.sources.length,
        conflicts: report.conflicts.length,
        ...(best.length > 0 ? { textMatchScore: Math.min(...best) } : {}),
        ...severityCounts(report.findings),
      },
      evidence,
      requiredApprovals: report.requiredApprovals,
      annotations: { license: report.license },
    };
  },
});
