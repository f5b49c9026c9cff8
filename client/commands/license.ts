/**
 * `mrel license <model-dir>`: the license gate without Temporal, for pre-commit hooks and CI. Exit codes as every
 * gate command (client/errors.ts): 0 allowed, or needs review (a note says so; `--fail-on-review` makes review exit
 * 1), 1 denied, 2 bad usage (no such directory, unknown --format), 3 could not decide (a license source could not be
 * read), 5 a policy that does not load or whose license section is invalid (unknown field, license id or role).
 */
import { stat } from 'node:fs/promises';
import { checkModelLicense, type LicenseReport } from '../../activities/license/check';
import { directoryFiles } from '../../activities/license/model-files';
import { InvalidPolicy } from '../../activities/gate/gate';
import { licenseGate } from '../../activities/license/gate';
import { licensePolicyProblems } from '../../activities/license/policy-check';
import type { LicensePolicy } from '../../activities/license/policy';
import { CommandError } from '../errors';
import { gateCommand } from './gate-command';
import type { RegisterCommands } from './index';

/** Builds the `license` command; `configDir` (default: config/ or MREL_CONFIG_DIR) is where policies are loaded. */
export function createLicenseCommand(options: { configDir?: string } = {}): RegisterCommands {
  return gateCommand<{ failOnReview?: boolean }, LicensePolicy>(
    {
      name: 'license',
      description: "decide a model directory's license by a policy's license section (no Temporal needed)",
      configure: (command) =>
        command
          .argument('<model-dir>', 'the model directory (model card README.md, LICENSE files, package metadata)')
          .option('--fail-on-review', 'exit 1 when the license needs review (default: exit 0 with a note)'),
      policy: {
        section: 'license',
        approvers: true,
        // The loader's own check of the section: schema, license ids, and the review role against approvers.yaml.
        parse: (section, file, { knownRoles }) => {
          const problems = licensePolicyProblems(section, knownRoles.length > 0 ? knownRoles : undefined);
          if (problems.length > 0) throw new InvalidPolicy(file, 'license', problems);
          return licenseGate.parsePolicy(section, file);
        },
      },
      run: async ({ args, options: opts, policy }) => {
        const [dir] = args as [string];
        const isDir = await stat(dir).then(
          (s) => s.isDirectory(),
          () => false,
        );
        if (!isDir) throw new CommandError('usage', `${dir} is not a directory; give the model's directory`);
        const report = await checkModelLicense(await directoryFiles(dir), policy.policy, {
          now: new Date().toISOString(),
        });
        const failOnReview = opts.failOnReview === true;
        return {
          verdict: report.verdict,
          report,
          failOnWarn: failOnReview,
          text: () => renderReport(report, policy.source?.file ?? 'built-in defaults', failOnReview),
        };
      },
    },
    options,
  );
}

/** The `license` command with the repository's config/ directory. */
export const register: RegisterCommands = createLicenseCommand();

const OUTCOME = { pass: 'ALLOW', warn: 'REVIEW', fail: 'DENY', error: 'UNDECIDED' } as const;

/** The report as a reviewer reads it in a terminal. */
export function renderReport(report: LicenseReport, policyFile: string, failOnReview: boolean): string {
  const lines = [`${OUTCOME[report.verdict]}  ${report.summary}`, `policy: ${policyFile}`, '', 'sources:'];
  if (report.sources.length === 0) lines.push('  (none)');
  for (const s of report.sources) lines.push(`  ${s.location}: ${s.said}${s.license ? ` → ${s.license}` : ''}`);
  lines.push('', 'decision:');
  for (const step of report.trail) lines.push(`  ${step}`);
  const shown = report.findings.filter((f) => f.severity !== 'info' || f.ruleId === 'license.missing');
  const notes = report.findings.filter((f) => !shown.includes(f));
  if (shown.length > 0) lines.push('', 'findings:');
  for (const f of shown) {
    lines.push(
      `  [${f.severity}] ${f.ruleId} ${f.location}: ${f.message}${f.waivedBy ? ` (waived by ${f.waivedBy.approver})` : ''}`,
    );
  }
  if (notes.length > 0) lines.push('', 'notes:');
  for (const f of notes) lines.push(`  ${f.ruleId} ${f.location}: ${f.message}`);
  if (report.verdict === 'warn') {
    const role = report.requiredApprovals[0]?.role ?? report.policy.reviewRole;
    lines.push(
      '',
      failOnReview
        ? `needs review by ${role}: exiting 1 (--fail-on-review)`
        : `note: needs review by ${role}; a release will wait for their approval (use --fail-on-review to exit 1)`,
    );
  }
  return lines.join('\n');
}
