/**
 * Version ordering per ecosystem, as OSV ranges need it: dpkg's for Debian, apk-tools' for Alpine, PEP 440 for PyPI
 * and SemVer for npm (and for OSV's SEMVER ranges anywhere).
 */
import { compare as comparePep440, valid as validPep440 } from '@renovatebot/pep440';
import semver from 'semver';
import { compareApkVersions, isApkVersion } from './apk';
import { compareDebianVersions, isDebianVersion } from './debian';

export { compareApkVersions, isApkVersion } from './apk';
export { compareDebianVersions, isDebianVersion, parseDebianVersion } from './debian';

/** How one ecosystem orders its versions. `compare` throws on a version that `valid` rejects. */
export interface VersionScheme {
  name: string;
  valid(version: string): boolean;
  compare(a: string, b: string): number;
}

const debian: VersionScheme = { name: 'dpkg', valid: isDebianVersion, compare: compareDebianVersions };

const alpine: VersionScheme = {
  name: 'apk',
  valid: isApkVersion,
  compare: (a, b) => {
    if (!isApkVersion(a)) throw new Error(`"${a}" is not a valid Alpine version`);
    if (!isApkVersion(b)) throw new Error(`"${b}" is not a valid Alpine version`);
    return compareApkVersions(a, b);
  },
};

const pep440: VersionScheme = {
  name: 'pep440',
  valid: (v) => validPep440(v) !== null,
  compare: (a, b) => {
    if (validPep440(a) === null) throw new Error(`"${a}" is not a valid PEP 440 version`);
    if (validPep440(b) === null) throw new Error(`"${b}" is not a valid PEP 440 version`);
    return comparePep440(a, b);
  },
};

const semverScheme: VersionScheme = {
  name: 'semver',
  valid: (v) => semver.valid(v) !== null,
  compare: (a, b) => {
    if (semver.valid(a) === null) throw new Error(`"${a}" is not a valid SemVer version`);
    if (semver.valid(b) === null) throw new Error(`"${b}" is not a valid SemVer version`);
    return semver.compare(a, b);
  },
};

/**
 * Matching compares the same few versions (a package's, its advisories' events) over and over; parsing dominates,
 * PEP 440's especially. Results are cached per scheme, bounded so a long-lived worker does not grow without end.
 */
function memoized(scheme: VersionScheme, limit = 200_000): VersionScheme {
  const valid = new Map<string, boolean>();
  const compared = new Map<string, number>();
  return {
    name: scheme.name,
    valid(version) {
      let v = valid.get(version);
      if (v === undefined) {
        if (valid.size >= limit) valid.clear();
        v = scheme.valid(version);
        valid.set(version, v);
      }
      return v;
    },
    compare(a, b) {
      const key = `${a}\u0000${b}`;
      let c = compared.get(key);
      if (c === undefined) {
        if (compared.size >= limit) compared.clear();
        c = scheme.compare(a, b);
        compared.set(key, c);
      }
      return c;
    },
  };
}

const schemes = {
  debian: memoized(debian),
  alpine: memoized(alpine),
  pep440: memoized(pep440),
  semver: memoized(semverScheme),
};

/** The base name of an OSV ecosystem: `Debian:12` → `Debian`, `Alpine:v3.19` → `Alpine`. */
export function ecosystemBase(ecosystem: string): string {
  const colon = ecosystem.indexOf(':');
  return colon >= 0 ? ecosystem.slice(0, colon) : ecosystem;
}

/** The scheme for an OSV ecosystem (or range type SEMVER), or undefined for ecosystems this gate does not know. */
export function versionScheme(ecosystem: string, rangeType?: string): VersionScheme | undefined {
  if (rangeType === 'SEMVER') return schemes.semver;
  switch (ecosystemBase(ecosystem)) {
    case 'Debian':
    case 'Ubuntu':
      return schemes.debian;
    case 'Alpine':
      return schemes.alpine;
    case 'PyPI':
      return schemes.pep440;
    case 'npm':
      return schemes.semver;
    default:
      return undefined;
  }
}
