/** Streaming layers (whiteouts, compression, limits, digests) and the package database and lock file parsers. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { ImageScanError } from '../../activities/scan/image/errors';
import { collectImageFiles, type CollectedFile, type LayerSource } from '../../activities/scan/image/layers';
import { parseLockFile } from '../../activities/scan/image/lockfiles';
import {
  inventoryImage,
  parseApkInstalled,
  parseDpkgStatus,
  parseNodePackageJson,
  parseOsRelease,
  parsePythonMetadata,
} from '../../activities/scan/image/packages';
import { dpkgStanza, nodePackageJson, OS_RELEASE_DEBIAN_12, pythonMetadata } from './fixtures';

type Entry = { name: string; content?: string; type?: 'file' | 'directory' | 'symlink'; linkname?: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory' });
    else if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else pack.entry({ name: e.name }, e.content ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function layer(bytes: Buffer, digest?: string): LayerSource {
  return {
    digest: digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    size: bytes.length,
    open: async () => Readable.from([bytes.subarray(0, 3), bytes.subarray(3)]),
  };
}

const limits = { maxLayerBytes: 10 * 1024 * 1024, maxFileBytes: 1024 * 1024 };
const file = (path: string, content: string): CollectedFile => ({
  path,
  layer: 0,
  layerDigest: 'sha256:0',
  content: Buffer.from(content),
});

describe('streaming layers', () => {
  it('keeps the wanted files and applies whiteouts and opaque directories of upper layers', async () => {
    const base = gzipSync(
      await tarOf([
        { name: 'usr/', type: 'directory' },
        { name: './var/lib/dpkg/status', content: dpkgStanza({ name: 'zlib1g', version: '1:1.2.13.dfsg-1' }) },
        { name: 'usr/lib/node_modules/a/package.json', content: nodePackageJson('a', '1.0.0') },
        { name: 'usr/lib/node_modules/b/package.json', content: nodePackageJson('b', '1.0.0') },
        { name: 'usr/lib/node_modules/b/lib/package.json', content: '{"not":"a package root"}' },
        { name: 'opt/app/node_modules/@scope/c/package.json', content: nodePackageJson('@scope/c', '2.0.0') },
        { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
        { name: 'usr/lib/os-release', content: OS_RELEASE_DEBIAN_12 },
        { name: 'bin/busybox', content: 'ELF…' },
      ]),
    );
    const upper = await tarOf([
      { name: 'usr/lib/node_modules/.wh.a' },
      { name: 'opt/app/.wh..wh..opq' },
      { name: 'opt/app/node_modules/d/package.json', content: nodePackageJson('d', '3.0.0') },
    ]);

    const result = await collectImageFiles([layer(base), layer(upper)], limits);

    expect([...result.files.keys()].sort()).toEqual([
      'opt/app/node_modules/d/package.json',
      'usr/lib/node_modules/b/package.json',
      'usr/lib/os-release',
      'var/lib/dpkg/status',
    ]);
    expect(result.problems).toEqual([]);
    expect(result.layers.map((l) => [l.entries, l.whiteouts, l.complete])).toEqual([
      [9, 0, true],
      [3, 2, true],
    ]);
    const inventory = inventoryImage(result.files);
    expect(inventory.os?.ecosystem).toBe('Debian:12');
    expect(inventory.packages.map((p) => `${p.name}@${p.version}`).sort()).toEqual([
      'b@1.0.0',
      'd@3.0.0',
      'zlib1g@1:1.2.13.dfsg-1',
    ]);
  });

  it('a layer that does not hash to its digest is a permanent error', async () => {
    const bytes = gzipSync(await tarOf([{ name: 'etc/os-release', content: 'ID=debian' }]));
    const error = await collectImageFiles([layer(bytes, `sha256:${'0'.repeat(64)}`)], limits).catch((e) => e);
    expect(error).toBeInstanceOf(ImageScanError);
    expect(error).toMatchObject({ code: 'DigestMismatch' });
  });

  it('limits: a too-large layer or package database leaves the scan incomplete, with a finding', async () => {
    const dbLayer = await tarOf([
      { name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'x', version: '1' }).repeat(40) },
    ]);
    const big = await tarOf([{ name: 'bin/blob', content: 'x'.repeat(200_000) }]);
    const small = await collectImageFiles([layer(dbLayer), layer(big)], { maxLayerBytes: 100_000, maxFileBytes: 1024 });
    expect(small.problems.map((p) => [p.ruleId, p.incomplete])).toEqual([
      ['package-db-too-large', true],
      ['layer-too-large', true],
    ]);
    const declared = await collectImageFiles([{ ...layer(big), size: 10 ** 12 }], limits);
    expect(declared.problems[0]).toMatchObject({ ruleId: 'layer-too-large', incomplete: true });
    expect(declared.layers[0]!.complete).toBe(false);
  });

  it('a layer that is not a tar is reported as unreadable, not as empty', async () => {
    const result = await collectImageFiles(
      [layer(gzipSync(Buffer.from('definitely not a tar archive'.repeat(40))))],
      limits,
    );
    expect(result.problems).toEqual([expect.objectContaining({ ruleId: 'layer-unreadable', incomplete: true })]);
  });
});

describe('package databases', () => {
  it('dpkg status: installed packages only, source package names for advisories', () => {
    const status = [
      dpkgStanza({ name: 'libssl3', version: '3.0.11-1~deb12u2', source: 'openssl' }),
      dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u3', source: 'glibc (2.36-9)' }),
      dpkgStanza({ name: 'old', version: '1.0-1', status: 'deinstall ok config-files' }),
    ].join('\n');
    const { packages, problems } = parseDpkgStatus(file('var/lib/dpkg/status', status), 'Debian:12', 'debian-12');
    expect(problems).toEqual([]);
    expect(packages.map((p) => [p.name, p.advisoryName, p.version, p.purl])).toEqual([
      ['libssl3', 'openssl', '3.0.11-1~deb12u2', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12'],
      ['libc6', 'glibc', '2.36-9+deb12u3', 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u3?arch=amd64&distro=debian-12'],
    ]);
  });

  it('dpkg status: malformed records are problems that keep the scan from passing', () => {
    const text = `${dpkgStanza({ name: 'ok', version: '1.0' })}\nPackage: bad\nVersion: not/valid\n\ngarbage line\nVersion: 1\n`;
    const { packages, problems } = parseDpkgStatus(file('var/lib/dpkg/status', text), 'Debian:12');
    expect(packages.map((p) => p.name)).toEqual(['ok']);
    expect(problems.map((p) => [p.ruleId, p.location, p.incomplete])).toEqual([
      ['package-db-malformed', 'image:var/lib/dpkg/status:14', true],
      ['package-db-malformed', 'image:var/lib/dpkg/status:17', true],
    ]);
    expect(parseDpkgStatus(file('var/lib/dpkg/status', '\u0000\u0001ELF'), 'Debian').problems).toHaveLength(1);
  });

  it('apk installed db: origin names the advisory package; os-release gives Alpine:v3.18', () => {
    const db = [
      'C:Q1Wz0IDwSMb2Or6rfyNBqYcnZKmaw=',
      'P:libcrypto3',
      'V:3.1.4-r1',
      'A:x86_64',
      'S:1758291',
      'I:4403200',
      'T:Crypto library from openssl',
      'U:https://www.openssl.org/',
      'L:Apache-2.0',
      'o:openssl',
      'm:Ariadne Conill <ariadne@dereferenced.org>',
      't:1698337890',
      'F:lib',
      'R:libcrypto.so.3',
      '',
      'P:musl',
      'V:1.2.4-r2',
      'A:x86_64',
      'L:MIT',
      'o:musl',
      '',
      'P:broken',
      'V:1.0-x',
      '',
    ].join('\n');
    const os = parseOsRelease('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.18.4\n')!;
    expect(os.ecosystem).toBe('Alpine:v3.18');
    const { packages, problems } = parseApkInstalled(file('lib/apk/db/installed', db), os.ecosystem, 'alpine-3.18.4');
    expect(packages.map((p) => [p.name, p.advisoryName, p.version, p.license])).toEqual([
      ['libcrypto3', 'openssl', '3.1.4-r1', 'Apache-2.0'],
      ['musl', 'musl', '1.2.4-r2', 'MIT'],
    ]);
    expect(packages[0]!.purl).toBe('pkg:apk/alpine/libcrypto3@3.1.4-r1?arch=x86_64&distro=alpine-3.18.4');
    expect(problems.map((p) => p.message)).toEqual(['broken has no valid Alpine version ("1.0-x")']);
  });

  it('Python metadata and node_modules package.json', () => {
    const py = parsePythonMetadata(
      file('usr/lib/python3/dist-packages/PyYAML-6.0.1.dist-info/METADATA', pythonMetadata('PyYAML', '6.0.1')),
    );
    expect(py.packages[0]).toMatchObject({
      name: 'PyYAML',
      advisoryName: 'pyyaml',
      purl: 'pkg:pypi/pyyaml@6.0.1',
      license: 'HPND',
    });
    expect(
      parsePythonMetadata(file('x.egg-info/PKG-INFO', 'Metadata-Version: 1.0\nSummary: no name\n')).problems,
    ).toHaveLength(1);
    const scoped = parseNodePackageJson(
      file('node_modules/@babel/core/package.json', nodePackageJson('@babel/core', '7.23.2')),
    );
    expect(scoped.packages[0]!.purl).toBe('pkg:npm/%40babel/core@7.23.2');
    expect(parseNodePackageJson(file('node_modules/x/package.json', '{"name": "x",')).problems[0]).toMatchObject({
      ruleId: 'package-db-malformed',
      incomplete: true,
    });
  });
});

describe('lock files in the model repository', () => {
  it('requirements.txt: exact pins (with extras, markers, hashes, continuations); the rest is unpinned', () => {
    const text = [
      '# pinned by pip-compile',
      '--index-url https://pypi.org/simple',
      'requests[socks]==2.30.0 ; python_version >= "3.8" \\',
      '    --hash=sha256:58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f',
      'numpy>=1.24',
      'torch===2.1.0',
      '-e git+https://github.com/org/pkg.git#egg=pkg',
      'scipy==1.*',
    ].join('\n');
    const parsed = parseLockFile('serving/requirements-prod.txt', Buffer.from(text));
    expect(parsed.packages.map((p) => `${p.name}@${p.version} ${p.location}`)).toEqual([
      'requests@2.30.0 model:serving/requirements-prod.txt',
      'torch@2.1.0 model:serving/requirements-prod.txt',
    ]);
    expect(parsed.unpinned).toEqual(['numpy>=1.24', 'scipy==1.*']);
  });

  it('poetry.lock and package-lock.json (v3 and v1)', () => {
    const poetry = [
      '[[package]]',
      'name = "pillow"',
      'version = "10.0.0"',
      'description = "Python Imaging Library (Fork)"',
      'optional = false',
      'python-versions = ">=3.8"',
      '',
      '[[package]]',
      'name = "local-lib"',
      'version = "0.1.0"',
      '[package.source]',
      'type = "directory"',
      'url = "../local-lib"',
      '',
      '[metadata]',
      'lock-version = "2.0"',
    ].join('\n');
    expect(parseLockFile('poetry.lock', Buffer.from(poetry)).packages.map((p) => p.purl)).toEqual([
      'pkg:pypi/pillow@10.0.0',
    ]);

    const v3 = {
      name: 'app',
      lockfileVersion: 3,
      packages: {
        '': { name: 'app', version: '1.0.0' },
        'node_modules/lodash': { version: '4.17.20' },
        'node_modules/a/node_modules/@types/node': { version: '20.8.0' },
        'node_modules/linked': { resolved: 'packages/linked', link: true },
      },
    };
    expect(parseLockFile('web/package-lock.json', Buffer.from(JSON.stringify(v3))).packages.map((p) => p.purl)).toEqual(
      ['pkg:npm/lodash@4.17.20', 'pkg:npm/%40types/node@20.8.0'],
    );
    const v1 = {
      lockfileVersion: 1,
      dependencies: { lodash: { version: '4.17.20', dependencies: { x: { version: '1.0.0' } } } },
    };
    expect(parseLockFile('package-lock.json', Buffer.from(JSON.stringify(v1))).packages).toHaveLength(2);
    expect(parseLockFile('package-lock.json', Buffer.from('{')).problems[0]).toMatchObject({
      ruleId: 'lockfile-malformed',
    });
  });
});
