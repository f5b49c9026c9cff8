/**
 * Export layouts that this machine's dockerd (20.10) does not write: Docker 25+ saves in the OCI layout (blobs by
 * digest, config and layers named by their digests), and with the containerd image store the layers stay gzip-
 * compressed and the engine's image ID is a manifest's digest, not the config's. An engine stand-in serves such an
 * export through the two Engine API calls the reader uses (inspect, export).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanImage } from '../../activities/scan/image';
import { parseImagePolicy } from '../../activities/scan/image/policy';
import { dpkgStanza, OS_RELEASE_DEBIAN_12, writeAdvisoryDir, DEBIAN_OPENSSL } from './fixtures';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function tarOf(files: { name: string; content: Buffer | string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const f of files) pack.entry({ name: f.name, mode: 0o644 }, f.content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(pack)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** An OCI-layout export as the containerd image store writes it, and the engine stand-in that serves it. */
async function containerdExport() {
  const base = await tarOf([
    { name: 'etc/os-release', content: OS_RELEASE_DEBIAN_12 },
    { name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'openssl', version: '3.0.11-1~deb12u1' }) },
  ]);
  const upper = await tarOf([{ name: 'srv/app/.wh.readme', content: '' }]);
  const layers = [gzipSync(base), gzipSync(upper)];
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { User: '10001' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha(base)}`, `sha256:${sha(upper)}`] },
    }),
  );
  const ociManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
  const id = `sha256:${sha(ociManifest)}`;
  const exported = await tarOf([
    ...layers.map((l) => ({ name: `blobs/sha256/${sha(l)}`, content: l })),
    { name: `blobs/sha256/${sha(config)}`, content: config },
    { name: `blobs/sha256/${sha(ociManifest)}`, content: ociManifest },
    { name: 'index.json', content: '{}' },
    {
      name: 'manifest.json',
      content: JSON.stringify([
        {
          Config: `blobs/sha256/${sha(config)}`,
          RepoTags: ['ci/app:1'],
          Layers: layers.map((l) => `blobs/sha256/${sha(l)}`),
        },
      ]),
    },
  ]);
  let exports = 0;
  const engine = {
    getImage: (name: string) => ({
      inspect: async () => {
        if (name !== 'ci/app:1' && name !== id) throw Object.assign(new Error('No such image'), { statusCode: 404 });
        return { Id: id };
      },
      get: async () => {
        exports++;
        return Readable.from([exported]);
      },
    }),
    modem: { socketPath: '/run/docker.sock' },
  } as unknown as Docker;
  return { engine, id, config, layers, exports: () => exports };
}

let advisoryDir: string;
beforeAll(async () => {
  advisoryDir = await writeAdvisoryDir([DEBIAN_OPENSSL]);
});

describe('docker save layouts', () => {
  it('reads an OCI-layout export with gzip layers and a manifest-digest image ID', async () => {
    const { engine, id, config, layers, exports } = await containerdExport();
    const report = await scanImage('docker-daemon:ci/app:1', {
      policy: parseImagePolicy({ advisoryDir }),
      docker: engine,
    });

    expect(report.image).toMatchObject({
      transport: 'docker-daemon',
      digest: id,
      pinned: `docker-daemon:${id}`,
      configDigest: `sha256:${sha(config)}`,
    });
    expect(report.layers.map((l) => [l.digest, l.mediaType, l.complete])).toEqual(
      layers.map((l) => [`sha256:${sha(l)}`, 'application/vnd.oci.image.layer.v1.tar+gzip', true]),
    );
    expect(report.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['openssl@3.0.11-1~deb12u1']);
    expect(report.vulnerabilities.map((v) => v.id)).toEqual(['CVE-2023-5363']);
    // Metadata, the config (named by the manifest, not the ID) and the layers: three passes, none held whole.
    expect(exports()).toBe(3);
  });
});
