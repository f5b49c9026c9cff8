/**
 * Dependencies the model repository pins for its runtime: requirements*.txt (exact `==` pins), poetry.lock and
 * package-lock.json (lockfileVersion 1, 2 and 3). They are read from the acquired artifacts, through the manifest.
 */
import { posix } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { ScanProblem } from './layers';
import { npmPackage, pypiPackage, type Package, type ParseResult } from './packages';

/** True for the lock and requirement files this gate reads. */
export function isLockFile(path: string): boolean {
  const base = posix.basename(path);
  return /^requirements([-_.][\w.-]*)?\.txt$/.test(base) || base === 'poetry.lock' || base === 'package-lock.json';
}

/** Parses one lock/requirement file by its name. */
export function parseLockFile(path: string, content: Buffer): ParseResult & { unpinned: string[] } {
  const base = posix.basename(path);
  const location = `model:${path}`;
  try {
    if (base === 'poetry.lock') return { ...parsePoetryLock(content.toString('utf8'), location), unpinned: [] };
    if (base === 'package-lock.json') return { ...parsePackageLock(content.toString('utf8'), location), unpinned: [] };
    return parseRequirements(content.toString('utf8'), location);
  } catch (err) {
    return {
      packages: [],
      problems: [
        {
          ruleId: 'lockfile-malformed',
          severity: 'medium',
          location,
          message: `${path} could not be parsed (${(err as Error).message})`,
          incomplete: true,
        },
      ],
      unpinned: [],
    };
  }
}

/**
 * pip requirement files: `name[extras]==version [; marker] [--hash ...]`. Only exact pins name a version that can
 * be matched; other lines are reported as unpinned. Options (-r, -e, --index-url) are skipped.
 */
export function parseRequirements(text: string, location: string): ParseResult & { unpinned: string[] } {
  const packages: Package[] = [];
  const unpinned: string[] = [];
  const problems: ScanProblem[] = [];
  const joined = text.replace(/\\\r?\n/g, ' ');
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '' || line.startsWith('-')) continue;
    const spec = line.split(';')[0]!.split(/\s--/)[0]!.trim();
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$/.exec(spec);
    if (!m) {
      // URLs and paths (git+https://…, ./wheels/x.whl) name no version to match.
      unpinned.push(spec);
      continue;
    }
    const pin = /^===?\s*([^\s,]+)$/.exec(m[3]!.trim());
    if (pin && !pin[1]!.includes('*')) packages.push(pypiPackage(m[1]!, pin[1]!, location));
    else unpinned.push(spec);
  }
  return { packages, problems, unpinned };
}

/** poetry.lock: one `[[package]]` table per locked distribution. */
export function parsePoetryLock(text: string, location: string): ParseResult {
  const doc = parseToml(text) as { package?: { name?: unknown; version?: unknown; source?: { type?: string } }[] };
  const packages: Package[] = [];
  const problems: ScanProblem[] = [];
  for (const [i, p] of (doc.package ?? []).entries()) {
    if (typeof p.name !== 'string' || typeof p.version !== 'string') {
      problems.push({
        ruleId: 'lockfile-malformed',
        severity: 'medium',
        location,
        message: `package #${i + 1} has no name or version`,
        incomplete: true,
      });
      continue;
    }
    // Directory, file and git sources are not PyPI releases: advisories for the PyPI name do not apply.
    if (p.source?.type && p.source.type !== 'legacy') continue;
    packages.push(pypiPackage(p.name, p.version, location));
  }
  return { packages, problems };
}

interface LockV1Dependency {
  version?: string;
  dependencies?: Record<string, LockV1Dependency>;
}

/** package-lock.json v2/v3 (`packages` keyed by node_modules path) and v1 (nested `dependencies`). */
export function parsePackageLock(text: string, location: string): ParseResult {
  const lock = JSON.parse(text) as {
    lockfileVersion?: number;
    packages?: Record<string, { version?: string; name?: string; link?: boolean }>;
    dependencies?: Record<string, LockV1Dependency>;
  };
  const packages: Package[] = [];
  const seen = new Set<string>();
  const add = (name: string, version: string): void => {
    const key = `${name}@${version}`;
    if (seen.has(key)) return;
    seen.add(key);
    packages.push(npmPackage(name, version, location));
  };
  if (lock.packages) {
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (key === '' || entry.link || !entry.version) continue;
      const idx = key.lastIndexOf('node_modules/');
      if (idx < 0) continue; // workspace folders: the project's own code
      add(entry.name ?? key.slice(idx + 'node_modules/'.length), entry.version);
    }
  } else if (lock.dependencies) {
    const walk = (deps: Record<string, LockV1Dependency>): void => {
      for (const [name, dep] of Object.entries(deps)) {
        if (dep.version && !/^(file|link|git\+|https?):/.test(dep.version)) add(name, dep.version);
        if (dep.dependencies) walk(dep.dependencies);
      }
    };
    walk(lock.dependencies);
  } else {
    throw new Error('neither "packages" nor "dependencies" is present');
  }
  return { packages, problems: [] };
}
