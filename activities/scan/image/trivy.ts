/**
 * Trivy as a second opinion: when a trivy binary is configured, `trivy image --format json` runs against the pinned
 * digest and its vulnerabilities are merged into the gate's. A vulnerability both report (same package and version,
 * an id or alias in common) is one match listing both sources; one only trivy reports is added as trivy's.
 */
import { execFile } from 'node:child_process';
import type { Severity } from '../../../contract/types';
import { matchedPackage, mergeInto, type VulnerabilityMatch } from './match';
import { normalizePypiName, type Package } from './packages';
import { severityOfScore } from './severity';

/** The parts of trivy's JSON report (SchemaVersion 2) that are merged. */
export interface TrivyReport {
  SchemaVersion?: number;
  ArtifactName?: string;
  Results?: {
    Target: string;
    Class?: string;
    Type?: string;
    Vulnerabilities?: TrivyVulnerability[] | null;
  }[];
}

export interface TrivyVulnerability {
  VulnerabilityID: string;
  PkgName: string;
  PkgPath?: string;
  PkgIdentifier?: { PURL?: string };
  InstalledVersion: string;
  FixedVersion?: string;
  Status?: string;
  Severity?: string;
  Title?: string;
  Description?: string;
  CVSS?: Record<string, { V3Vector?: string; V3Score?: number; V40Vector?: string; V40Score?: number }>;
}

export interface TrivyRunOptions {
  /** Plain-HTTP registry (loopback or listed as insecure). */
  insecure: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Read the image from this local Docker engine (`unix://…` or `tcp://127.0.0.1:…`) instead of a registry. */
  dockerHost?: string;
}

/** Runs trivy against the pinned image and parses its report. Failures are plain errors (retried). */
export async function runTrivy(trivyPath: string, imageRef: string, options: TrivyRunOptions): Promise<TrivyReport> {
  const args = [
    'image',
    '--format',
    'json',
    '--quiet',
    '--scanners',
    'vuln',
    ...(options.insecure ? ['--insecure'] : []),
    ...(options.dockerHost ? ['--image-src', 'docker'] : []),
  ];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      trivyPath,
      [...args, imageRef],
      {
        maxBuffer: 512 * 1024 * 1024,
        timeout: options.timeoutMs,
        signal: options.signal,
        ...(options.dockerHost ? { env: { ...process.env, DOCKER_HOST: options.dockerHost } } : {}),
      },
      (err, out, errText) => {
        if (err) reject(new Error(`trivy failed (${err.message.split('\n')[0]}): ${String(errText).slice(-500)}`));
        else resolve(out);
      },
    );
  });
  try {
    return JSON.parse(stdout) as TrivyReport;
  } catch (err) {
    throw new Error(`trivy printed no JSON report (${(err as Error).message})`, { cause: err });
  }
}

const TRIVY_SEVERITY: Record<string, Severity> = {
  CRITICAL: 'critical',
  HIGH: 'high',
  MEDIUM: 'medium',
  LOW: 'low',
  UNKNOWN: 'medium',
};

function samePackage(p: Pick<Package, 'name' | 'ecosystem'>, name: string): boolean {
  return p.ecosystem === 'PyPI' ? normalizePypiName(p.name) === normalizePypiName(name) : p.name === name;
}

/**
 * Merges trivy's vulnerabilities into `matches` (returns a new list). Trivy's packages are located in the inventory
 * by name and version; one the inventory lacks keeps trivy's purl and target as its location.
 */
export function mergeTrivy(
  matches: VulnerabilityMatch[],
  report: TrivyReport,
  inventory: Package[],
  unknownSeverity: Severity,
): VulnerabilityMatch[] {
  const merged = matches.map((m) => ({ ...m, aliases: [...m.aliases], sources: [...m.sources] }));
  for (const result of report.Results ?? []) {
    for (const v of result.Vulnerabilities ?? []) {
      const pkg = inventory.find((p) => samePackage(p, v.PkgName) && p.version === v.InstalledVersion);
      const cvss = Object.values(v.CVSS ?? {});
      const vector = cvss.find((c) => c.V40Vector)?.V40Vector ?? cvss.find((c) => c.V3Vector)?.V3Vector;
      const score = cvss.find((c) => c.V40Score)?.V40Score ?? cvss.find((c) => c.V3Score)?.V3Score;
      const severity =
        TRIVY_SEVERITY[(v.Severity ?? '').toUpperCase()] ??
        (score !== undefined ? severityOfScore(score) : unknownSeverity);
      const match: VulnerabilityMatch = {
        id: v.VulnerabilityID,
        aliases: [v.VulnerabilityID],
        advisoryIds: [v.VulnerabilityID],
        package: pkg
          ? matchedPackage(pkg)
          : {
              name: v.PkgName,
              version: v.InstalledVersion,
              ecosystem: result.Type ?? 'unknown',
              purl: v.PkgIdentifier?.PURL ?? `pkg:generic/${encodeURIComponent(v.PkgName)}@${v.InstalledVersion}`,
              location: `image:${v.PkgPath ?? result.Target}`,
              advisoryName: v.PkgName,
            },
        severity,
        score,
        vector,
        severitySource: 'trivy',
        fixed: v.FixedVersion ? v.FixedVersion.split(',')[0]!.trim() : undefined,
        summary: v.Title ?? v.Description?.split('\n')[0] ?? v.VulnerabilityID,
        sources: ['trivy'],
      };
      // The same vulnerability may sit in the list under another id whose aliases name this one.
      const twin = merged.find(
        (m) =>
          m.package.purl === match.package.purl &&
          m.package.location === match.package.location &&
          m.aliases.includes(v.VulnerabilityID),
      );
      if (twin) {
        if (!twin.sources.includes('trivy')) twin.sources = [...twin.sources, 'trivy'].sort();
        continue;
      }
      mergeInto(merged, match);
    }
  }
  return merged;
}
