/**
 * `mrel license <model-dir>`: the license gate without Temporal, for pre-commit hooks and CI.
 *
 * Exit codes:
 *   0  allowed, or needs review (a note says so; `--fail-on-review` makes review exit 1)
 *   1  denied by the policy (or review with --fail-on-review)
 *   2  bad usage: no such directory, unknown --format, a policy that does not load or whose license section is
 *      invalid (unknown field, license id or review role)
 *   3  could not decide: a license source could not be read
 */
import { stat } from 'node:fs/promises';
import { Option } from 'commander';
import { ConfigError, DEFAULT_CONFIG_DIR, loadApprovers, loadPolicy } from '../../config/loader';
import { parseLicensePolicy } from '../../config/policy-license';
import { checkModelLicense, type LicenseReport } from '../../activities/license/check';
import { licensePolicyProblems } from '../../activities/license/policy-check';
import { directoryFiles } from '../../activities/license/model-files';
import type { RegisterCommands } from './index';

export const LICENSE_EXIT = { allow: 0, deny: 1, usage: 2, undecided: 3 } as const;

interface LicenseOptions {
  policy: string;
  format?: 'text' | 'json';
  failOnReview?: boolean;
}

/** Builds the `license` command; `configDir` (default: config/ or MREL_CONFIG_DIR) is where policies are loaded. */
export function createLicenseCommand(options: { configDir?: string } = {}): RegisterCommands {
  return (program, ctx) => {
    program
      .command('license')
      .description("decide a model directory's license by a policy's license section (no Temporal needed)")
      .argument('<model-dir>', 'the model directory (model card README.md, LICENSE files, package metadata)')
      .option('--policy <name>', 'policy in config/policies whose license: section applies', 'default')
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']))
      .option('--fail-on-review', 'exit 1 when the license needs review (default: exit 0 with a note)')
      .action(async (dir: string, opts: LicenseOptions) => {
        const usage = (message: string, problems: string[] = []): void => {
          ctx.io.err(`mrel license: ${message}`);
          for (const p of problems) ctx.io.err(`  - ${p}`);
          ctx.setExit(LICENSE_EXIT.usage);
        };
        const isDir = await stat(dir).then(
          (s) => s.isDirectory(),
          () => false,
        );
        if (!isDir) return usage(`${dir} is not a directory; give the model's directory`);

        const configDir = options.configDir ?? DEFAULT_CONFIG_DIR;
        let section: unknown;
        let policyFile: string;
        let roles: string[];
        try {
          const approvers = await loadApprovers(configDir);
          const policy = await loadPolicy(opts.policy, approvers, configDir);
          section = (policy as Record<string, unknown>).license;
          policyFile = policy.file;
          roles = Object.keys(approvers.roles);
        } catch (err) {
          if (err instanceof ConfigError) return usage(`policy "${opts.policy}" does not load`, err.problems);
          throw err;
        }
        const problems = licensePolicyProblems(section, roles);
        if (problems.length > 0) return usage(`${policyFile}: invalid license section`, problems);

        const report = await checkModelLicense(await directoryFiles(dir), parseLicensePolicy(section), {
          now: new Date().toISOString(),
        });

        const code = exitCode(report, opts.failOnReview === true);
        if (opts.format === 'json' || (opts.format === undefined && ctx.json())) {
          ctx.io.out(JSON.stringify({ ...report, exitCode: code }, null, 2));
        } else {
          ctx.io.out(renderReport(report, policyFile, opts.failOnReview === true));
        }
        ctx.setExit(code);
      });
  };
}

/** The `license` command with the repository's config/ directory. */
export const register: RegisterCommands = createLicenseCommand();

function exitCode(report: LicenseReport, failOnReview: boolean): number {
  switch (report.verdict) {
    case 'pass':
      return LICENSE_EXIT.allow;
    case 'warn':
      return failOnReview ? LICENSE_EXIT.deny : LICENSE_EXIT.allow;
    case 'fail':
      return LICENSE_EXIT.deny;
    case 'error':
      return LICENSE_EXIT.undecided;
  }
}

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
