/**
 * `mrel scan-image <ref>`: the image and dependency vulnerability gate without Temporal, for CI and laptops.
 *
 * Exit codes:
 *   0  pass or warn
 *   1  fail: an unwaived vulnerability or finding at or above the threshold
 *   2  bad usage: an invalid reference, --format or --fail-on, a policy that does not load or an invalid image section
 *   3  the image or tag does not exist in the registry
 *   4  the registry (or the OSV API) cannot be reached
 *   5  could not decide: part of the image went unexamined, access was refused, or the image is unsupported
 */
import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { z } from 'zod';
import { ConfigError, DEFAULT_CONFIG_DIR, loadApprovers, loadPolicy } from '../../config/loader';
import { describeImagePolicyError, parseImagePolicy, type ImagePolicy } from '../../config/policy-image';
import {
  decideImageGate,
  ImageScanError,
  RegistryUnavailableError,
  scanImage,
  SCANNER_VERSION,
  toSarif,
} from '../../activities/scan/image';
import { SEVERITIES, type Finding } from '../../contract/types';
import type { RegisterCommands } from './index';

export const SCAN_IMAGE_EXIT = { pass: 0, fail: 1, usage: 2, notFound: 3, unavailable: 4, undecided: 5 } as const;

interface ScanImageOptions {
  format?: 'text' | 'json' | 'sarif' | 'cyclonedx';
  policy: string;
  advisories?: string;
  failOn?: (typeof SEVERITIES)[number];
  ignoreUnfixed?: boolean;
  lock?: string[];
  trivy?: string;
  osvApi?: string | boolean;
  insecureRegistry?: string[];
}

/** Builds the `scan-image` command; `configDir` (default: config/ or MREL_CONFIG_DIR) is where policies load from. */
export function createScanImageCommand(options: { configDir?: string; fetch?: typeof fetch } = {}): RegisterCommands {
  return (program, ctx) => {
    program
      .command('scan-image')
      .description('scan a container image and lock files for known vulnerabilities (no Temporal needed)')
      .argument('<ref>', 'image reference: registry/repo:tag or registry/repo@sha256:…')
      .addOption(
        new Option(
          '--format <format>',
          'output: text, the JSON report, SARIF 2.1.0, or the CycloneDX 1.6 SBOM',
        ).choices(['text', 'json', 'sarif', 'cyclonedx']),
      )
      .option('--policy <name>', 'policy in config/policies whose image: section applies', 'default')
      .option('--advisories <dir>', "OSV advisory directory (overrides the policy's advisoryDir)")
      .addOption(new Option('--fail-on <severity>', 'fail at or above this severity').choices([...SEVERITIES]))
      .option('--ignore-unfixed', 'do not count vulnerabilities without a published fix')
      .option(
        '--lock <file...>',
        'lock/requirement files to check as well (requirements.txt, poetry.lock, package-lock.json)',
      )
      .option('--trivy <path>', 'merge the findings of this trivy binary')
      .option('--osv-api [url]', 'also ask the OSV API (default https://api.osv.dev)')
      .option('--insecure-registry <host...>', 'plain-HTTP registries besides loopback ones')
      .action(async (ref: string, opts: ScanImageOptions) => {
        const usage = (message: string, problems: string[] = []): void => {
          ctx.io.err(`mrel scan-image: ${message}`);
          for (const p of problems) ctx.io.err(`  - ${p}`);
          ctx.setExit(SCAN_IMAGE_EXIT.usage);
        };
        const configDir = options.configDir ?? DEFAULT_CONFIG_DIR;
        let policy: ImagePolicy;
        try {
          const approvers = await loadApprovers(configDir);
          const loaded = await loadPolicy(opts.policy, approvers, configDir);
          const section = { ...(((loaded as Record<string, unknown>).image as object | undefined) ?? {}) };
          policy = parseImagePolicy(section);
        } catch (err) {
          if (err instanceof ConfigError) return usage(`policy "${opts.policy}" does not load`, err.problems);
          if (err instanceof z.ZodError)
            return usage(`policy "${opts.policy}": invalid image section`, describeImagePolicyError(err));
          throw err;
        }
        policy = {
          ...policy,
          ...(opts.advisories ? { advisoryDir: opts.advisories } : {}),
          ...(opts.failOn ? { failOn: opts.failOn } : {}),
          ...(opts.ignoreUnfixed ? { ignoreUnfixed: true } : {}),
          ...(opts.trivy ? { trivy: { ...policy.trivy, path: opts.trivy } } : {}),
          ...(opts.osvApi
            ? { osvApi: { enabled: true, url: typeof opts.osvApi === 'string' ? opts.osvApi : policy.osvApi.url } }
            : {}),
          ...(opts.insecureRegistry
            ? { insecureRegistries: [...policy.insecureRegistries, ...opts.insecureRegistry] }
            : {}),
        };
        const lockFiles = (opts.lock ?? []).map((path) => ({ path, read: () => readFile(path) }));
        for (const lock of lockFiles) {
          const readable = await lock.read().then(
            () => true,
            () => false,
          );
          if (!readable) return usage(`cannot read lock file ${lock.path}`);
        }

        let report;
        try {
          report = await scanImage(ref, {
            policy,
            lockFiles,
            registry: { fetch: options.fetch },
            fetch: options.fetch,
          });
        } catch (err) {
          if (err instanceof ImageScanError) {
            ctx.io.err(`mrel scan-image: ${err.message}`);
            const code =
              err.code === 'InvalidImageRef'
                ? SCAN_IMAGE_EXIT.usage
                : err.code === 'ImageNotFound'
                  ? SCAN_IMAGE_EXIT.notFound
                  : SCAN_IMAGE_EXIT.undecided;
            return ctx.setExit(code);
          }
          if (err instanceof RegistryUnavailableError || (err instanceof Error && err.message.startsWith('OSV API'))) {
            ctx.io.err(`mrel scan-image: ${err.message}`);
            return ctx.setExit(SCAN_IMAGE_EXIT.unavailable);
          }
          throw err;
        }
        const decision = decideImageGate(report, policy, [], new Date().toISOString());
        const code =
          decision.verdict === 'fail'
            ? SCAN_IMAGE_EXIT.fail
            : decision.verdict === 'error'
              ? SCAN_IMAGE_EXIT.undecided
              : SCAN_IMAGE_EXIT.pass;
        const format = opts.format ?? (ctx.json() ? 'json' : 'text');
        if (format === 'cyclonedx') ctx.io.out(JSON.stringify(report.sbom, null, 2));
        else if (format === 'sarif')
          ctx.io.out(JSON.stringify(toSarif(report, decision.findings, SCANNER_VERSION), null, 2));
        else if (format === 'json') {
          const { sbom: _sbom, ...rest } = report;
          ctx.io.out(
            JSON.stringify(
              {
                verdict: decision.verdict,
                summary: decision.summary,
                exitCode: code,
                findings: decision.findings,
                metrics: decision.metrics,
                report: rest,
              },
              null,
              2,
            ),
          );
        } else ctx.io.out(renderText(decision.verdict, decision.summary, decision.findings));
        ctx.setExit(code);
      });
  };
}

/** The command as wired into mrel (config/ or MREL_CONFIG_DIR, global fetch). */
export const register: RegisterCommands = createScanImageCommand();

function renderText(verdict: string, summary: string, findings: Finding[]): string {
  const lines = [`${verdict.toUpperCase()}: ${summary}`];
  for (const f of findings) {
    const waived = f.waivedBy ? ` (waived by ${f.waivedBy.approver} until ${f.waivedBy.expiresAt})` : '';
    lines.push(`  ${f.severity.padEnd(8)} ${f.ruleId.padEnd(22)} ${f.location}${waived}`);
    lines.push(`           ${f.message}`);
  }
  return lines.join('\n');
}
