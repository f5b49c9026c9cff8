/**
 * The package inventory: parsers for the databases package managers leave in an image (dpkg status, apk installed
 * db, Python dist-info/egg-info metadata, node_modules package.json) and for the operating system's identity. Each
 * parser returns the packages it could read and a problem for each record it could not: a malformed database is a
 * finding, never a crash and never an empty inventory that passes.
 */
import type { CollectedFile, ScanProblem } from './layers';
import { isApkVersion, isDebianVersion } from './versions';

/** One installed or locked package. */
export interface Package {
  name: string;
  version: string;
  /** OSV ecosystem: `Debian:12`, `Alpine:v3.19`, `PyPI`, `npm`. */
  ecosystem: string;
  /** The name advisories use: Debian and Alpine advisories name the source package. */
  advisoryName: string;
  purl: string;
  /** Where it was found: `image:<path>` or `model:<path>` (a lock file in the model repository). */
  location: string;
  /** Image layer that installed it. */
  layer?: number;
  license?: string;
  arch?: string;
}

/** What the operating system says it is. */
export interface OsRelease {
  id: string;
  versionId?: string;
  prettyName?: string;
  /** OSV ecosystem for its packages (`Debian:12`), or the bare family when the release is unknown. */
  ecosystem: string;
}

export interface ParseResult {
  packages: Package[];
  problems: ScanProblem[];
}

/** Reads os-release (KEY=value, optionally quoted) into the OSV ecosystem its packages belong to. */
export function parseOsRelease(text: string, debianVersion?: string, alpineRelease?: string): OsRelease | undefined {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  }
  const id = fields.ID?.toLowerCase();
  if (!id) return undefined;
  const versionId = fields.VERSION_ID;
  const prettyName = fields.PRETTY_NAME;
  if (id === 'debian') {
    const major = versionId?.split('.')[0] ?? /^(\d+)/.exec(debianVersion ?? '')?.[1];
    return { id, versionId, prettyName, ecosystem: major ? `Debian:${major}` : 'Debian' };
  }
  if (id === 'alpine') {
    const m = /^(\d+)\.(\d+)/.exec(versionId ?? alpineRelease ?? '');
    return { id, versionId, prettyName, ecosystem: m ? `Alpine:v${m[1]}.${m[2]}` : 'Alpine' };
  }
  if (id === 'ubuntu') return { id, versionId, prettyName, ecosystem: versionId ? `Ubuntu:${versionId}` : 'Ubuntu' };
  return { id, versionId, prettyName, ecosystem: id };
}

/** Splits an RFC 822-style control file into stanzas of fields (continuation lines joined with "\n"). */
function controlStanzas(text: string): { fields: Map<string, string>; line: number; bad: number[] }[] {
  const stanzas: { fields: Map<string, string>; line: number; bad: number[] }[] = [];
  let current: { fields: Map<string, string>; line: number; bad: number[] } | undefined;
  let last: string | undefined;
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') {
      current = undefined;
      last = undefined;
      continue;
    }
    if (!current) {
      current = { fields: new Map(), line: i + 1, bad: [] };
      stanzas.push(current);
    }
    if (/^[ \t]/.test(line)) {
      if (last) current.fields.set(last, `${current.fields.get(last) ?? ''}\n${line.trim()}`);
      else current.bad.push(i + 1);
      continue;
    }
    const m = /^([!-9;-~][!-9;-~]*):[ \t]*(.*)$/.exec(line);
    if (!m) {
      current.bad.push(i + 1);
      continue;
    }
    last = m[1]!.toLowerCase();
    current.fields.set(last, m[2]!.trim());
  }
  return stanzas;
}

/** dpkg's status database (`/var/lib/dpkg/status` or distroless `status.d/*`): installed packages only. */
export function parseDpkgStatus(file: CollectedFile, ecosystem: string, distro?: string): ParseResult {
  const packages: Package[] = [];
  const problems: ScanProblem[] = [];
  const location = `image:${file.path}`;
  const text = file.content.toString('utf8');
  if (text.includes('\u0000')) {
    return { packages, problems: [malformed(location, 'it is binary, not a dpkg status file')] };
  }
  for (const stanza of controlStanzas(text)) {
    const name = stanza.fields.get('package');
    const version = stanza.fields.get('version');
    const status = stanza.fields.get('status');
    if (stanza.bad.length > 0 || !name) {
      problems.push(
        malformed(`${location}:${stanza.line}`, `record at line ${stanza.line} is not a dpkg control stanza`),
      );
      continue;
    }
    // status.d files of distroless images carry no Status field: everything listed is installed.
    if (status !== undefined && status.split(/\s+/)[2] !== 'installed') continue;
    if (!version || !isDebianVersion(version)) {
      problems.push(
        malformed(`${location}:${stanza.line}`, `${name} has no valid Debian version ("${version ?? ''}")`),
      );
      continue;
    }
    const arch = stanza.fields.get('architecture');
    // "Source: glibc (2.36-9)" names the source package and, when it differs, its version.
    const source = /^(\S+)(?:\s+\((\S+)\))?/.exec(stanza.fields.get('source') ?? '');
    const qualifiers = [arch ? `arch=${arch}` : '', distro ? `distro=${distro}` : ''].filter(Boolean).join('&');
    packages.push({
      name,
      version,
      ecosystem,
      advisoryName: source?.[1] ?? name,
      purl: `pkg:deb/debian/${encodeURIComponent(name)}@${encodeURIComponent(version)}${qualifiers ? `?${qualifiers}` : ''}`,
      location,
      layer: file.layer,
      arch,
    });
  }
  return { packages, problems };
}

/** apk's installed database (`/lib/apk/db/installed`): `P:` name, `V:` version, `o:` origin, `A:` arch, `L:` license. */
export function parseApkInstalled(file: CollectedFile, ecosystem: string, distro?: string): ParseResult {
  const packages: Package[] = [];
  const problems: ScanProblem[] = [];
  const location = `image:${file.path}`;
  const text = file.content.toString('utf8');
  let record: Record<string, string> = {};
  let start = 1;
  let bad = false;
  const flush = (): void => {
    if (Object.keys(record).length === 0 && !bad) return;
    const name = record.P;
    const version = record.V;
    if (bad || !name) {
      problems.push(malformed(`${location}:${start}`, `record at line ${start} is not an apk installed-db record`));
    } else if (!version || !isApkVersion(version)) {
      problems.push(malformed(`${location}:${start}`, `${name} has no valid Alpine version ("${version ?? ''}")`));
    } else {
      const qualifiers = [record.A ? `arch=${record.A}` : '', distro ? `distro=${distro}` : ''].filter(Boolean);
      packages.push({
        name,
        version,
        ecosystem,
        advisoryName: record.o ?? name,
        purl: `pkg:apk/alpine/${encodeURIComponent(name)}@${encodeURIComponent(version)}${qualifiers.length ? `?${qualifiers.join('&')}` : ''}`,
        location,
        layer: file.layer,
        arch: record.A,
        license: record.L,
      });
    }
    record = {};
    bad = false;
  };
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '');
    if (line === '') {
      flush();
      start = i + 2;
      continue;
    }
    const m = /^([A-Za-z]):(.*)$/.exec(line);
    if (!m) bad = true;
    // Files (F:, R:, Z:...) repeat; the package fields come first and once.
    else if (!(m[1]! in record)) record[m[1]!] = m[2]!;
  }
  flush();
  return { packages, problems };
}

/** PEP 503 name normalisation: advisories and lock files spell names differently. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Core metadata (`METADATA` of a dist-info, `PKG-INFO` of an egg-info): the header block's Name and Version. */
export function parsePythonMetadata(file: CollectedFile): ParseResult {
  const location = `image:${file.path}`;
  const text = file.content.toString('utf8');
  const header = text.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const fields: Record<string, string> = {};
  for (const line of header.split(/\r?\n/)) {
    const m = /^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$/.exec(line);
    if (m && !(m[1]!.toLowerCase() in fields)) fields[m[1]!.toLowerCase()] = m[2]!.trim();
  }
  const name = fields.name;
  const version = fields.version;
  if (!name || !version || text.includes('\u0000')) {
    return { packages: [], problems: [malformed(location, 'Python metadata without Name and Version headers')] };
  }
  return {
    packages: [pypiPackage(name, version, location, file.layer, fields['license-expression'] ?? fields.license)],
    problems: [],
  };
}

/** A PyPI package record (shared with requirements.txt and poetry.lock). */
export function pypiPackage(
  name: string,
  version: string,
  location: string,
  layer?: number,
  license?: string,
): Package {
  return {
    name,
    version,
    ecosystem: 'PyPI',
    advisoryName: normalizePypiName(name),
    purl: `pkg:pypi/${normalizePypiName(name)}@${encodeURIComponent(version)}`,
    location,
    layer,
    license,
  };
}

/** A package's `package.json` under node_modules. */
export function parseNodePackageJson(file: CollectedFile): ParseResult {
  const location = `image:${file.path}`;
  let json: { name?: unknown; version?: unknown; license?: unknown };
  try {
    json = JSON.parse(file.content.toString('utf8')) as typeof json;
  } catch (err) {
    return { packages: [], problems: [malformed(location, `package.json is not JSON (${(err as Error).message})`)] };
  }
  if (typeof json !== 'object' || json === null || typeof json.name !== 'string' || typeof json.version !== 'string') {
    return { packages: [], problems: [malformed(location, 'package.json without a string name and version')] };
  }
  return { packages: [npmPackage(json.name, json.version, location, file.layer, json.license)], problems: [] };
}

/** An npm package record (shared with package-lock.json). */
export function npmPackage(
  name: string,
  version: string,
  location: string,
  layer?: number,
  license?: unknown,
): Package {
  const purlName = name.startsWith('@') ? `%40${name.slice(1)}` : name;
  return {
    name,
    version,
    ecosystem: 'npm',
    advisoryName: name,
    purl: `pkg:npm/${purlName}@${encodeURIComponent(version)}`,
    location,
    layer,
    license: typeof license === 'string' ? license : undefined,
  };
}

/** The image's package inventory from the collected files. */
export function inventoryImage(files: Map<string, CollectedFile>): {
  os?: OsRelease;
  packages: Package[];
  problems: ScanProblem[];
} {
  const text = (path: string): string | undefined => files.get(path)?.content.toString('utf8');
  const osText = text('etc/os-release') ?? text('usr/lib/os-release');
  const os = osText ? parseOsRelease(osText, text('etc/debian_version'), text('etc/alpine-release')) : undefined;
  const packages: Package[] = [];
  const problems: ScanProblem[] = [];
  const add = (r: ParseResult): void => {
    packages.push(...r.packages);
    problems.push(...r.problems);
  };
  const hasDpkg = [...files.keys()].some((p) => p === 'var/lib/dpkg/status' || p.startsWith('var/lib/dpkg/status.d/'));
  const hasApk = files.has('lib/apk/db/installed');
  if ((hasDpkg || hasApk) && !os) {
    problems.push({
      ruleId: 'os-unknown',
      severity: 'info',
      location: 'image:etc/os-release',
      message: 'no os-release: distribution packages are matched against advisories of every release',
      incomplete: false,
    });
  }
  const debianEcosystem = os?.id === 'debian' || os?.id === 'ubuntu' ? os.ecosystem : 'Debian';
  const distro = os?.versionId ? `${os.id}-${os.versionId}` : undefined;
  for (const [path, file] of [...files.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (path === 'var/lib/dpkg/status' || path.startsWith('var/lib/dpkg/status.d/')) {
      add(parseDpkgStatus(file, debianEcosystem, distro));
    } else if (path === 'lib/apk/db/installed') {
      add(parseApkInstalled(file, os?.id === 'alpine' ? os.ecosystem : 'Alpine', distro));
    } else if (path.endsWith('METADATA') || path.endsWith('PKG-INFO') || path.endsWith('.egg-info')) {
      add(parsePythonMetadata(file));
    } else if (path.endsWith('package.json')) {
      add(parseNodePackageJson(file));
    }
  }
  return { os, packages, problems };
}

function malformed(location: string, message: string): ScanProblem {
  // Unreadable records may hide vulnerable packages: the gate cannot pass on them.
  return { ruleId: 'package-db-malformed', severity: 'medium', location, message, incomplete: true };
}
