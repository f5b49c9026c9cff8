/**
 * `mrel scan <path...>`: the scan gate's checks without Temporal, for pre-commit hooks, CI and GitHub code scanning
 * (`--format sarif`). Exit codes as every gate command (client/errors.ts): 0 pass or warn, 1 findings at or above
 * --fail-on, 2 bad usage or a missing path, 3 something could not be examined (unknown format, parse error, a limit
 * hit) and nothing failed outright, 5 a policy that does not load.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Option } from 'commander';
import { walkModelDirectory } from '../../activities/formats/walk';
import { parseScanPolicy, type ScanPolicy } from '../../activities/scan/policy';
import { gateFindings, scanJson, scanSarif, scanText, scanVerdict } from '../../activities/scan/report';
import { scanTargets, type ScanTarget } from '../../activities/scan/scan';
import { CommandError } from '../errors';
import { gateCommand } from './gate-command';

/**
 * Files under the given paths, named relative to the working directory when inside it. A directory is walked as
 * acquire walks a `file://` source (activities/formats/walk.ts), so `mrel scan <dir>` scans the files the scan gate
 * would: links inside followed, a link out of the directory or a special file refused (exit 2).
 */
async function collectTargets(paths: string[], cwd: string): Promise<ScanTarget[]> {
  const targets: ScanTarget[] = [];
  const seen = new Set<string>();
  const add = (abs: string, file: string, size: number): void => {
    if (seen.has(abs)) return;
    seen.add(abs);
    const rel = relative(cwd, abs);
    const path = rel.startsWith('..') || isAbsolute(rel) ? abs : rel.split('\\').join('/');
    targets.push({ path, file, size });
  };
  for (const p of paths) {
    const abs = resolve(cwd, p);
    const info = await stat(abs).catch(() => {
      throw new CommandError('usage', `${relative(cwd, abs) || abs}: no such file or directory`);
    });
    if (info.isDirectory()) {
      for (const f of (await walkModelDirectory(abs)).files) add(join(abs, ...f.path.split('/')), f.realPath, f.size);
    } else if (info.isFile()) add(abs, abs, info.size);
  }
  return targets;
}

export const register = gateCommand<{ failOn?: ScanPolicy['failOn'] }, ScanPolicy>({
  name: 'scan',
  description: 'scan model files for code in disguise, malformed headers, archive tricks and secrets',
  configure: (command) =>
    command
      .argument('<path...>', 'model files or directories')
      .addOption(
        new Option(
          '--fail-on <severity>',
          'fail on findings at or above this severity (default: the policy, high)',
        ).choices(['critical', 'high', 'medium', 'low']),
      ),
  policy: { section: 'scan', parse: parseScanPolicy },
  sarif: true,
  run: async ({ args, options, policy: loaded }) => {
    const [paths] = args as [string[]];
    const targets = await collectTargets(paths, process.cwd());
    const policy = options.failOn ? { ...loaded.policy, failOn: options.failOn } : loaded.policy;
    const report = await scanTargets(targets, { policy });
    const findings = gateFindings(report.findings, [], new Date().toISOString());
    const verdict = scanVerdict(findings, policy.failOn, policy.warnOn);
    return {
      verdict,
      report: scanJson(report, verdict),
      text: () => scanText(report, verdict).join('\n'),
      sarif: () => scanSarif(report),
    };
  },
});
