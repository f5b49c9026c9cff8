/**
 * `mrel scan <path...>`: the scan gate's checks without Temporal, for pre-commit hooks and CI. Exit codes:
 *   0  pass (nothing at or above --fail-on, everything examined)
 *   1  findings at or above --fail-on
 *   2  bad usage or input (unknown option, missing path, bad policy)
 *   3  something could not be examined (unknown format, parse error, a limit hit) and nothing failed outright
 */
import { readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option } from 'commander';
import { parseDocument } from 'yaml';
import { parseScanPolicy, type ScanPolicy } from '../../config/policy-scan';
import { gateFindings, scanJson, scanSarif, scanText, scanVerdict } from '../../activities/scan/report';
import { scanTargets, type ScanTarget } from '../../activities/scan/scan';
import type { RegisterCommands } from './index';

export const SCAN_EXIT = { pass: 0, findings: 1, usage: 2, notExamined: 3 } as const;

/** Where policies live: MREL_CONFIG_DIR, else the repository's config/. */
function configDir(): string {
  return process.env.MREL_CONFIG_DIR ?? fileURLToPath(new URL('../../config/', import.meta.url));
}

class UsageError extends Error {}

/** Reads config/policies/<name>.yaml and validates its `scan:` section. */
export async function loadScanPolicy(name: string, dir = configDir()): Promise<ScanPolicy> {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name))
    throw new UsageError(`--policy ${JSON.stringify(name)}: name a file in ${join(dir, 'policies')} without .yaml`);
  const file = join(dir, 'policies', `${name}.yaml`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`--policy ${name}: ${file} cannot be read`);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new UsageError(`${file} is not valid YAML: ${doc.errors[0]?.message.split('\n')[0]}`);
  const data = doc.toJS() as { scan?: unknown } | null;
  try {
    return parseScanPolicy(data?.scan, file);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Files under the given paths (directories recursively), named relative to the working directory when inside it.
 * Synchronous: a model directory has hundreds of files, and a thread-pool round trip per stat would cost more than
 * scanning them.
 */
function collectTargets(paths: string[], cwd: string): ScanTarget[] {
  const targets: ScanTarget[] = [];
  const seen = new Set<string>();
  const add = (abs: string): void => {
    let info;
    try {
      info = statSync(abs);
    } catch {
      throw new UsageError(`${relative(cwd, abs) || abs}: no such file or directory`);
    }
    if (info.isDirectory()) {
      for (const entry of readdirSync(abs).sort()) {
        if (entry === '.git') continue;
        add(join(abs, entry));
      }
      return;
    }
    if (!info.isFile() || seen.has(abs)) return;
    seen.add(abs);
    const rel = relative(cwd, abs);
    const path = rel.startsWith('..') || isAbsolute(rel) ? abs : rel.split('\\').join('/');
    targets.push({ path, file: abs, size: info.size });
  };
  for (const p of paths) add(resolve(cwd, p));
  return targets;
}

export const register: RegisterCommands = (program, ctx) => {
  program
    .command('scan')
    .description('scan model files for code in disguise, malformed headers, archive tricks and secrets')
    .argument('<path...>', 'model files or directories')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'sarif']))
    .addOption(
      new Option(
        '--fail-on <severity>',
        'fail on findings at or above this severity (default: the policy, high)',
      ).choices(['critical', 'high', 'medium', 'low']),
    )
    .option('--policy <name>', 'policy in config/policies whose scan: section applies', 'default')
    .action(async (paths: string[], opts: { format?: string; failOn?: ScanPolicy['failOn']; policy: string }) => {
      const format = opts.format ?? (ctx.json() ? 'json' : 'text');
      let policy: ScanPolicy;
      let targets: ScanTarget[];
      try {
        policy = await loadScanPolicy(opts.policy);
        targets = collectTargets(paths, process.cwd());
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        for (const line of err.message.split('\n')) ctx.io.err(`mrel scan: ${line}`);
        ctx.setExit(SCAN_EXIT.usage);
        return;
      }
      if (opts.failOn) policy = { ...policy, failOn: opts.failOn };
      const report = await scanTargets(targets, { policy });
      const findings = gateFindings(report.findings, [], new Date().toISOString());
      const verdict = scanVerdict(findings, policy.failOn, policy.warnOn);
      if (format === 'json') ctx.io.out(JSON.stringify(scanJson(report, verdict), null, 2));
      else if (format === 'sarif') ctx.io.out(JSON.stringify(scanSarif(report), null, 2));
      else for (const line of scanText(report, verdict)) ctx.io.out(line);
      ctx.setExit(
        verdict === 'fail' ? SCAN_EXIT.findings : verdict === 'error' ? SCAN_EXIT.notExamined : SCAN_EXIT.pass,
      );
    });
};
