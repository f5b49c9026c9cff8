/**
 * `mrel scan-image <ref>`: the image and dependency vulnerability gate without Temporal, for CI and laptops. Exit
 * codes as every gate command (client/errors.ts): 0 pass or warn, 1 an unwaived vulnerability or finding at or above
 * the threshold, 2 bad usage (an invalid reference, --format or --fail-on, an unreadable lock file), 3 could not
 * decide (part of the image went unexamined, access was refused, the image is unsupported), 4 the registry, the Docker
 * engine or the OSV API cannot be reached, 5 a policy that does not load or a DOCKER_HOST that is not on this machine,
 * 6 the image or tag does not exist (in the registry, or in the local engine for `docker-daemon:` references).
 */
import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import {
  decideImageGate,
  DockerEngineUnavailableError,
  ImageScanError,
  RegistryUnavailableError,
  scanImage,
  SCANNER_VERSION,
  toSarif,
} from '../../activities/scan/image';
import { parseImagePolicy, type ImagePolicy } from '../../activities/scan/image/policy';
import { SEVERITIES, type Finding } from '../../contract/types';
import { CommandError } from '../errors';
import { gateCommand } from './gate-command';
import type { RegisterCommands } from './index';

interface ScanImageOptions {
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
  return gateCommand<ScanImageOptions, ImagePolicy>(
    {
      name: 'scan-image',
      description: 'scan a container image and lock files for known vulnerabilities (no Temporal needed)',
      configure: (command) =>
        command
          .argument(
            '<ref>',
            "image reference: registry/repo:tag, registry/repo@sha256:…, or a local Docker engine's image: " +
              'docker-daemon:name:tag or docker-daemon:sha256:<image id> (the engine DOCKER_HOST names)',
          )
          .option('--advisories <dir>', "OSV advisory directory (overrides the policy's advisoryDir)")
          .addOption(new Option('--fail-on <severity>', 'fail at or above this severity').choices([...SEVERITIES]))
          .option('--ignore-unfixed', 'do not count vulnerabilities without a published fix')
          .option(
            '--lock <file...>',
            'lock/requirement files to check as well (requirements.txt, poetry.lock, package-lock.json)',
          )
          .option('--trivy <path>', 'merge the findings of this trivy binary')
          .option('--osv-api [url]', 'also ask the OSV API (default https://api.osv.dev)')
          .option('--insecure-registry <host...>', 'plain-HTTP registries besides loopback ones'),
      policy: { section: 'image', parse: (section) => parseImagePolicy(section) },
      sarif: true,
      documents: { cyclonedx: 'the CycloneDX 1.6 SBOM' },
      mapError: imageScanError,
      run: async ({ args, options: opts, policy: loaded }) => {
        const [ref] = args as [string];
        const policy: ImagePolicy = {
          ...loaded.policy,
          ...(opts.advisories ? { advisoryDir: opts.advisories } : {}),
          ...(opts.failOn ? { failOn: opts.failOn } : {}),
          ...(opts.ignoreUnfixed ? { ignoreUnfixed: true } : {}),
          ...(opts.trivy ? { trivy: { ...loaded.policy.trivy, path: opts.trivy } } : {}),
          ...(opts.osvApi
            ? {
                osvApi: {
                  enabled: true,
                  url: typeof opts.osvApi === 'string' ? opts.osvApi : loaded.policy.osvApi.url,
                },
              }
            : {}),
          ...(opts.insecureRegistry
            ? { insecureRegistries: [...loaded.policy.insecureRegistries, ...opts.insecureRegistry] }
            : {}),
        };
        const lockFiles = (opts.lock ?? []).map((path) => ({ path, read: () => readFile(path) }));
        for (const lock of lockFiles) {
          const readable = await lock.read().then(
            () => true,
            () => false,
          );
          if (!readable) throw new CommandError('usage', `cannot read lock file ${lock.path}`);
        }
        const report = await scanImage(ref, {
          policy,
          lockFiles,
          registry: { fetch: options.fetch },
          fetch: options.fetch,
        });
        const decision = decideImageGate(report, policy, [], new Date().toISOString());
        const { sbom, ...rest } = report;
        return {
          verdict: decision.verdict,
          report: { summary: decision.summary, findings: decision.findings, metrics: decision.metrics, report: rest },
          text: () => renderText(decision.verdict, decision.summary, decision.findings),
          sarif: () => toSarif(report, decision.findings, SCANNER_VERSION),
          documents: { cyclonedx: () => sbom },
        };
      },
    },
    options,
  );
}

/** The command as wired into mrel (config/ or MREL_CONFIG_DIR, global fetch). */
export const register: RegisterCommands = createScanImageCommand();

/** The scanner's errors as the exit-code table has them. */
function imageScanError(err: unknown): CommandError | undefined {
  if (err instanceof ImageScanError) {
    const code =
      err.code === 'InvalidImageRef'
        ? 'usage'
        : err.code === 'ImageNotFound'
          ? 'notFound'
          : err.code === 'InvalidConfig'
            ? 'config'
            : 'undecided';
    return new CommandError(code, err.message, [], { cause: err });
  }
  if (
    err instanceof RegistryUnavailableError ||
    err instanceof DockerEngineUnavailableError ||
    (err instanceof Error && err.message.startsWith('OSV API'))
  ) {
    return new CommandError('unavailable', err.message, [], { cause: err });
  }
  return undefined;
}

function renderText(verdict: string, summary: string, findings: Finding[]): string {
  const lines = [`${verdict.toUpperCase()}: ${summary}`];
  for (const f of findings) {
    const waived = f.waivedBy ? ` (waived by ${f.waivedBy.approver} until ${f.waivedBy.expiresAt})` : '';
    lines.push(`  ${f.severity.padEnd(8)} ${f.ruleId.padEnd(22)} ${f.location}${waived}`);
    lines.push(`           ${f.message}`);
  }
  return lines.join('\n');
}
