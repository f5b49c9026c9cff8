/**
 * The OSV schema (https://ossf.github.io/osv-schema/) and its affected-range semantics: events `introduced`, `fixed`,
 * `last_affected` (and `limit`) ordered by the ecosystem's version rules, plus explicit `versions` lists.
 */
import { ecosystemBase, versionScheme, type VersionScheme } from './versions';

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface OsvRange {
  type: 'ECOSYSTEM' | 'SEMVER' | 'GIT' | string;
  repo?: string;
  events: OsvEvent[];
}

export interface OsvSeverity {
  type: 'CVSS_V2' | 'CVSS_V3' | 'CVSS_V4' | 'Ubuntu' | string;
  score: string;
}

export interface OsvAffected {
  package?: { ecosystem: string; name: string; purl?: string };
  severity?: OsvSeverity[];
  ranges?: OsvRange[];
  versions?: string[];
  ecosystem_specific?: Record<string, unknown>;
  database_specific?: Record<string, unknown>;
}

export interface OsvAdvisory {
  schema_version?: string;
  id: string;
  modified: string;
  published?: string;
  withdrawn?: string;
  aliases?: string[];
  related?: string[];
  upstream?: string[];
  summary?: string;
  details?: string;
  severity?: OsvSeverity[];
  affected?: OsvAffected[];
  references?: { type: string; url: string }[];
  database_specific?: Record<string, unknown>;
}

/** Whether a version is affected by one `affected` entry, and the fix that ends the range it is in. */
export interface RangeVerdict {
  affected: boolean;
  /** The lowest fixed version above the installed one (undefined: no fix published). */
  fixed?: string;
  /** Why the entry could not be evaluated (an unparsable version): the caller decides how to count it. */
  error?: string;
}

/** True when an advisory's ecosystem covers a package's: `Debian` covers `Debian:12`; `Debian:11` does not. */
export function ecosystemMatches(advisoryEcosystem: string, packageEcosystem: string): boolean {
  if (advisoryEcosystem === packageEcosystem) return true;
  // A package whose release is unknown is checked against every release (fail closed).
  if (!packageEcosystem.includes(':')) return ecosystemBase(advisoryEcosystem) === packageEcosystem;
  return !advisoryEcosystem.includes(':') && ecosystemBase(packageEcosystem) === advisoryEcosystem;
}

/** Evaluates one affected entry for `version` following the OSV specification's algorithm. */
export function evaluateAffected(affected: OsvAffected, ecosystem: string, version: string): RangeVerdict {
  let isAffected = (affected.versions ?? []).includes(version);
  const fixes: string[] = [];
  let error: string | undefined;
  for (const range of affected.ranges ?? []) {
    if (range.type === 'GIT') continue;
    const scheme = versionScheme(ecosystem, range.type);
    if (!scheme) {
      error = `no version rules for ecosystem ${ecosystem}`;
      continue;
    }
    try {
      const verdict = evaluateRange(range.events, version, scheme);
      if (verdict.affected) {
        isAffected = true;
        if (verdict.fixed) fixes.push(verdict.fixed);
      }
    } catch (err) {
      error = (err as Error).message;
    }
  }
  if (!isAffected) return { affected: false, error };
  const scheme = versionScheme(ecosystem);
  const fixed = scheme ? lowest(fixes, scheme) : fixes[0];
  return { affected: true, fixed, error };
}

/**
 * One range: sort the events by version ("0" first), walk them; an `introduced` at or below the version turns it
 * affected, a `fixed` at or below turns it back, a `last_affected` below turns it back.
 */
export function evaluateRange(events: OsvEvent[], version: string, scheme: VersionScheme): RangeVerdict {
  const keyed = events
    .map((e) => {
      const v = e.introduced ?? e.fixed ?? e.last_affected ?? e.limit;
      return { e, v: v ?? '' };
    })
    .filter((x) => x.v !== '');
  const cmp = (a: string, b: string): number =>
    a === '0' ? (b === '0' ? 0 : -1) : b === '0' ? 1 : scheme.compare(a, b);
  keyed.sort((a, b) => cmp(a.v, b.v));
  let affected = false;
  let limited = false;
  for (const { e, v } of keyed) {
    if (e.limit !== undefined) {
      if (cmp(version, v) >= 0) limited = true;
    } else if (e.introduced !== undefined) {
      if (cmp(version, v) >= 0) affected = true;
    } else if (e.fixed !== undefined) {
      if (cmp(version, v) >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      if (cmp(version, v) > 0) affected = false;
    }
  }
  if (!affected || limited) return { affected: false };
  const fixes = keyed.filter(({ e, v }) => e.fixed !== undefined && cmp(v, version) > 0).map(({ v }) => v);
  return { affected: true, fixed: fixes[0] };
}

function lowest(versions: string[], scheme: VersionScheme): string | undefined {
  let best: string | undefined;
  for (const v of versions) {
    try {
      if (best === undefined || scheme.compare(v, best) < 0) best = v;
    } catch {
      // An unparsable fix version cannot be the lowest one; keep the others.
    }
  }
  return best;
}
