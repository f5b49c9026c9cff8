/**
 * Advisories and image contents for the image-gate tests. The advisories copy real records' facts (ids, aliases,
 * affected ranges, CVSS vectors) in the OSV schema as osv.dev publishes them; the images carry package databases in
 * their real on-disk formats.
 */
import { OS_RELEASE_DEBIAN_12 } from '../../scripts/example-mirror';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStore, manifestDigest, storeManifest, type ArtifactStore } from '../../activities/store';
import type { OsvAdvisory } from '../../activities/scan/image/osv';
import type { ArtifactManifest, GateInput, ManifestRef, Waiver } from '../../contract/types';
import type { ImageFile } from './images';

/** Debian's record of CVE-2023-5363 (openssl: incorrect cipher key and IV length processing), fixed by DSA-5532-1. */
export const DEBIAN_OPENSSL: OsvAdvisory = {
  id: 'DEBIAN-CVE-2023-5363',
  modified: '2024-09-18T03:26:27Z',
  published: '2023-10-25T18:17:43Z',
  upstream: ['CVE-2023-5363'],
  details: 'Issue summary: A bug has been identified in the processing of key and initialisation vector (IV) lengths.',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N' }],
  affected: [
    {
      package: { ecosystem: 'Debian:12', name: 'openssl' },
      ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }] }],
    },
    {
      package: { ecosystem: 'Debian:11', name: 'openssl' },
      ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.1.1w-0+deb11u1' }] }],
    },
  ],
};

/** GHSA-j7hp-h8jx-5ppr: libwebp heap overflow (CVE-2023-4863) in Pillow's bundled libwebp, fixed in 10.0.1. */
export const GHSA_PILLOW: OsvAdvisory = {
  id: 'GHSA-j7hp-h8jx-5ppr',
  modified: '2024-02-16T08:10:41Z',
  published: '2023-09-12T18:30:52Z',
  aliases: ['CVE-2023-4863'],
  summary: 'libwebp: OOB write in BuildHuffmanTable',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H' }],
  affected: [
    {
      package: { ecosystem: 'PyPI', name: 'pillow', purl: 'pkg:pypi/pillow' },
      ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '10.0.1' }] }],
      database_specific: { source: 'https://github.com/github/advisory-database' },
    },
  ],
  database_specific: { severity: 'HIGH', cwe_ids: ['CWE-787'] },
};

/** GHSA-35jh-r3h4-6jhm: command injection in lodash's template (CVE-2021-23337), fixed in 4.17.21. */
export const GHSA_LODASH: OsvAdvisory = {
  id: 'GHSA-35jh-r3h4-6jhm',
  modified: '2024-03-01T13:20:10Z',
  published: '2021-05-06T16:05:51Z',
  aliases: ['CVE-2021-23337'],
  summary: 'Command Injection in lodash',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H' }],
  affected: [
    {
      package: { ecosystem: 'npm', name: 'lodash', purl: 'pkg:npm/lodash' },
      ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '4.17.21' }] }],
    },
  ],
  database_specific: { severity: 'HIGH', cwe_ids: ['CWE-77', 'CWE-94'] },
};

/** GHSA-j8r2-6x86-q33q: requests leaks Proxy-Authorization headers (CVE-2023-32681), 2.3.0 ≤ v < 2.31.0. */
export const GHSA_REQUESTS: OsvAdvisory = {
  id: 'GHSA-j8r2-6x86-q33q',
  modified: '2024-03-01T13:20:10Z',
  published: '2023-05-22T20:36:32Z',
  aliases: ['CVE-2023-32681', 'PYSEC-2023-74'],
  summary: 'Unintended leak of Proxy-Authorization header in requests',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N' }],
  affected: [
    {
      package: { ecosystem: 'PyPI', name: 'requests' },
      ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.3.0' }, { fixed: '2.31.0' }] }],
    },
  ],
};

/** Writes advisories as osv.dev's dumps lay them out: `<dir>/<Ecosystem>/<ID>.json`. */
export async function writeAdvisoryDir(advisories: OsvAdvisory[], dir?: string): Promise<string> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'mrel-osv-')));
  for (const a of advisories) {
    const ecosystem = (a.affected?.[0]?.package?.ecosystem ?? 'unknown').split(':')[0]!;
    await mkdir(join(root, ecosystem), { recursive: true });
    await writeFile(join(root, ecosystem, `${a.id}.json`), JSON.stringify(a, null, 2));
  }
  return root;
}

/** A dpkg status stanza as dpkg writes it. */
export function dpkgStanza(p: { name: string; version: string; source?: string; status?: string }): string {
  return [
    `Package: ${p.name}`,
    `Status: ${p.status ?? 'install ok installed'}`,
    'Priority: optional',
    'Section: libs',
    'Installed-Size: 6149',
    'Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>',
    'Architecture: amd64',
    ...(p.source ? [`Source: ${p.source}`] : []),
    `Version: ${p.version}`,
    'Depends: libc6 (>= 2.34)',
    'Description: Secure Sockets Layer toolkit - shared libraries',
    " This package is part of the OpenSSL project's implementation of the SSL and TLS",
    ' cryptographic protocols for secure communication over the Internet.',
    '',
  ].join('\n');
}

export { OS_RELEASE_DEBIAN_12 };

export function pythonMetadata(name: string, version: string): string {
  return `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\nSummary: Python Imaging Library (Fork)\nLicense: HPND\nRequires-Python: >=3.8\n\nLong description body: Name: not-a-header\n`;
}

export function nodePackageJson(name: string, version: string): string {
  return JSON.stringify({ name, version, license: 'MIT', main: 'lodash.js' }, null, 2);
}

/** An image's files: Debian 12 with libssl3 (from openssl), Pillow and lodash at the given versions. */
export function runtimeFiles(v: { openssl: string; pillow: string; lodash: string }): ImageFile[] {
  return [
    { path: 'etc/os-release', content: OS_RELEASE_DEBIAN_12 },
    { path: 'etc/debian_version', content: '12.2\n' },
    {
      path: 'var/lib/dpkg/status',
      content: [
        dpkgStanza({ name: 'libssl3', version: v.openssl, source: 'openssl' }),
        dpkgStanza({ name: 'openssl', version: v.openssl }),
        dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u3', source: 'glibc' }),
        // Removed but not purged: dpkg keeps the record, nothing is installed.
        dpkgStanza({
          name: 'libssl1.1',
          version: '1.1.1n-0+deb11u5',
          source: 'openssl',
          status: 'deinstall ok config-files',
        }),
      ].join('\n'),
    },
    {
      path: `usr/local/lib/python3.11/site-packages/Pillow-${v.pillow}.dist-info/METADATA`,
      content: pythonMetadata('Pillow', v.pillow),
    },
    { path: 'srv/app/node_modules/lodash/package.json', content: nodePackageJson('lodash', v.lodash) },
  ];
}

export const VULNERABLE = { openssl: '3.0.11-1~deb12u1', pillow: '10.0.0', lodash: '4.17.20' };
export const FIXED = { openssl: '3.0.11-1~deb12u2', pillow: '10.0.1', lodash: '4.17.21' };

/** Instructions of a well-behaved image: non-root, labelled. */
export const GOOD_CONFIG = [
  'LABEL org.opencontainers.image.source="https://git.example.com/ml/model-server" org.opencontainers.image.revision="4f1c2e9"',
  'EXPOSE 8080/tcp',
  'ENV MODEL_DIR=/models',
  'USER 10001:10001',
];

/** A model in the artifact store: the store and the manifest reference a gate receives. */
export interface StoredModel {
  store: ArtifactStore;
  manifest: ManifestRef;
}

/** A fresh filesystem store holding the given model files, and the manifest for them stored by digest. */
export async function modelManifest(files: Record<string, string>): Promise<StoredModel> {
  const store = new FilesystemStore(await mkdtemp(join(tmpdir(), 'mrel-store-')));
  const entries = [];
  for (const [path, content] of Object.entries(files)) {
    const blob = await store.putBytes(content, { path });
    entries.push({ path, ...blob });
  }
  const manifest = await storeManifest(store, {
    model: 'credit-risk',
    version: '1.0.0',
    source: 'file:///models/credit-risk',
    resolvedRevision: 'file:///models/credit-risk',
    files: entries,
    totalSize: entries.reduce((n, e) => n + e.size, 0),
    manifestDigest: manifestDigest(entries),
  });
  return { store, manifest };
}

/** A GateInput for the image gate. */
export function gateInput(
  manifest: ManifestRef | ArtifactManifest,
  imageRef: string | undefined,
  policy: Record<string, unknown>,
  waivers: Waiver[] = [],
): GateInput {
  return {
    releaseId: 'release/credit-risk/1.0.0/production',
    request: {
      model: { name: 'credit-risk', version: '1.0.0', source: 'file:///models/credit-risk' },
      ...(imageRef ? { image: { ref: imageRef } } : {}),
      environment: 'production',
      policy: 'default',
      requestedBy: 'ci@example.com',
    },
    manifest,
    policy,
    waivers,
    earlier: [],
  };
}
