/**
 * Matches the inventory against advisories: for each package, the advisories indexed under its ecosystem family and
 * name whose ecosystem covers the package's and whose ranges contain its version. Advisories that describe the
 * same vulnerability (an id or alias in common, e.g. a GHSA and a PYSEC for one CVE) become one match.
 */
import type { Severity } from '../../../contract/types';
import { SEVERITY_RANK } from '../../common/gate-kit';
import type { AdvisoryIndex } from './advisory-db';
import { ecosystemMatches, evaluateAffected, type OsvAdvisory } from './osv';
import { normalizePypiName, type Package } from './packages';
import { advisorySeverity } from './severity';

/** One vulnerability in one package. */
/** The fields of an inventoried package that a match carries. */
export function matchedPackage(pkg: Package): VulnerabilityMatch['package'] {
  return {
    name: pkg.name,
    version: pkg.version,
    ecosystem: pkg.ecosystem,
    purl: pkg.purl,
    location: pkg.location,
    advisoryName: pkg.advisoryName,
  };
}

export interface VulnerabilityMatch {
  /** The id findings use: the CVE when the advisories name one, else the first advisory's id. */
  id: string;
  /** Every OSV id that matched and every alias they name. */
  aliases: string[];
  advisoryIds: string[];
  package: Pick<Package, 'name' | 'version' | 'ecosystem' | 'purl' | 'location' | 'advisoryName'>;
  severity: Severity;
  score?: number;
  vector?: string;
  severitySource: string;
  /** Lowest version that fixes it; undefined when no fix is published. */
  fixed?: string;
  summary: string;
  /** Which sources reported it: `osv` (the advisory directory or API) and/or `trivy`. */
  sources: string[];
}

export interface MatchResult {
  matches: VulnerabilityMatch[];
  /** Advisory entries that name a package but could not be evaluated (a version outside the ecosystem's rules). */
  unevaluable: { advisory: string; package: string; error: string }[];
}

/** Matches every package against the index. */
export function matchPackages(
  packages: Package[],
  index: AdvisoryIndex,
  options: { unknownSeverity: Severity },
): MatchResult {
  const matches: VulnerabilityMatch[] = [];
  const unevaluable: MatchResult['unevaluable'] = [];
  for (const pkg of packages) {
    const found: VulnerabilityMatch[] = [];
    for (const advisory of index.lookup(pkg.ecosystem, pkg.advisoryName)) {
      const verdict = affectedEntry(advisory, pkg);
      if (verdict.error) {
        unevaluable.push({ advisory: advisory.id, package: `${pkg.name}@${pkg.version}`, error: verdict.error });
      }
      if (!verdict.affected) continue;
      const scored = advisorySeverity(advisory, verdict.entry, options.unknownSeverity);
      const match: VulnerabilityMatch = {
        id: canonicalId(advisory),
        aliases: [...new Set([advisory.id, ...(advisory.aliases ?? []), ...(advisory.upstream ?? [])])].sort(),
        advisoryIds: [advisory.id],
        package: matchedPackage(pkg),
        severity: scored.severity,
        score: scored.score,
        vector: scored.vector,
        severitySource: scored.source,
        fixed: verdict.fixed,
        summary: advisory.summary ?? firstLine(advisory.details) ?? advisory.id,
        sources: ['osv'],
      };
      mergeInto(found, match);
    }
    matches.push(...found);
  }
  return { matches, unevaluable };
}

function affectedEntry(
  advisory: OsvAdvisory,
  pkg: Package,
): { affected: boolean; fixed?: string; error?: string; entry?: NonNullable<OsvAdvisory['affected']>[number] } {
  let error: string | undefined;
  for (const entry of advisory.affected ?? []) {
    if (!entry.package || !ecosystemMatches(entry.package.ecosystem, pkg.ecosystem)) continue;
    if (!sameName(entry.package.ecosystem, entry.package.name, pkg.advisoryName)) continue;
    const verdict = evaluateAffected(entry, pkg.ecosystem, pkg.version);
    if (verdict.affected) return { affected: true, fixed: verdict.fixed, entry, error: verdict.error };
    error ??= verdict.error;
  }
  return { affected: false, error };
}

function sameName(ecosystem: string, a: string, b: string): boolean {
  return ecosystem.startsWith('PyPI') ? normalizePypiName(a) === normalizePypiName(b) : a === b;
}

/** Prefers the CVE id: it is what waivers, trivy and people use across databases. */
export function canonicalId(advisory: Pick<OsvAdvisory, 'id' | 'aliases' | 'upstream'>): string {
  if (advisory.id.startsWith('CVE-')) return advisory.id;
  // Debian's DEBIAN-CVE-… and Ubuntu's records name their CVE as `upstream`, GHSA and PYSEC as an alias.
  const cves = [...new Set([...(advisory.aliases ?? []), ...(advisory.upstream ?? [])])]
    .filter((a) => a.startsWith('CVE-'))
    .sort();
  return cves.length === 1 ? cves[0]! : advisory.id;
}

/** Adds a match for the same package, merging it with one that shares an id or alias (keeping the worse rating). */
export function mergeInto(list: VulnerabilityMatch[], match: VulnerabilityMatch): void {
  const ids = new Set(match.aliases);
  const same = list.find(
    (m) =>
      m.package.purl === match.package.purl &&
      m.package.location === match.package.location &&
      m.aliases.some((a) => ids.has(a)),
  );
  if (!same) {
    list.push(match);
    return;
  }
  same.aliases = [...new Set([...same.aliases, ...match.aliases])].sort();
  same.advisoryIds = [...new Set([...same.advisoryIds, ...match.advisoryIds])].sort();
  same.sources = [...new Set([...same.sources, ...match.sources])].sort();
  if (!same.id.startsWith('CVE-') && match.id.startsWith('CVE-')) same.id = match.id;
  if (SEVERITY_RANK[match.severity] > SEVERITY_RANK[same.severity]) {
    same.severity = match.severity;
    same.score = match.score;
    same.vector = match.vector;
    same.severitySource = match.severitySource;
  }
  same.fixed ??= match.fixed;
}

function firstLine(text: string | undefined): string | undefined {
  const line = text?.split('\n').find((l) => l.trim() !== '');
  return line ? line.trim().slice(0, 200) : undefined;
}
