/**
 * Small images built by the real dockerd (scripts/docker-test-env.ts): FROM scratch with Debian's static busybox as
 * /bin/busybox and whatever files the caller gives (package databases in their real formats), built from a tar
 * context through the Engine API (no network, no base image pulls) and pushed to the loopback registry. The image
 * gate's tests and its benchmark build their images with it.
 */
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

export interface ImageFile {
  path: string;
  content: string | Buffer;
  mode?: number;
}

export interface BuildSpec {
  /** `registry/repo:tag`. */
  tag: string;
  files: ImageFile[];
  /** Dockerfile instructions after `FROM scratch` and `COPY rootfs/ /` (USER, ENV, LABEL, EXPOSE, RUN …). */
  instructions?: string[];
}

let busybox: Buffer | undefined;

/** Debian's busybox-static binary (package busybox-static). */
export async function busyboxBinary(): Promise<Buffer> {
  busybox ??= await readFile('/bin/busybox').catch(() => {
    throw new Error('/bin/busybox is missing: apt-get install -y busybox-static');
  });
  return busybox;
}

async function buildContext(spec: BuildSpec): Promise<Readable> {
  const pack = tar.pack();
  const dockerfile = ['FROM scratch', 'COPY rootfs/ /', ...(spec.instructions ?? [])].join('\n') + '\n';
  pack.entry({ name: 'Dockerfile', mode: 0o644 }, dockerfile);
  pack.entry({ name: 'rootfs/bin/busybox', mode: 0o755 }, await busyboxBinary());
  for (const f of spec.files) {
    pack.entry({ name: `rootfs/${f.path.replace(/^\/+/, '')}`, mode: f.mode ?? 0o644 }, f.content);
  }
  pack.finalize();
  // tar-stream's packer is a streamx stream; dockerode wants a Node.js one.
  return Readable.from(pack);
}

async function follow(docker: Docker, stream: NodeJS.ReadableStream): Promise<Record<string, unknown>[]> {
  const events = await new Promise<Record<string, unknown>[]>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, out: Record<string, unknown>[]) =>
      err ? reject(err) : resolve(out),
    );
  });
  const failed = events.find((e) => e.error || e.errorDetail);
  if (failed) throw new Error(String(failed.error ?? JSON.stringify(failed.errorDetail)));
  return events;
}

/** Builds the image with the Engine API (classic builder, network none). */
export async function buildImage(docker: Docker, spec: BuildSpec): Promise<void> {
  const stream = await docker.buildImage(await buildContext(spec), {
    t: spec.tag,
    networkmode: 'none',
    forcerm: true,
  });
  await follow(docker, stream);
}

/** Pushes a tag to its (loopback) registry and returns the manifest digest the registry stored. */
export async function pushImage(docker: Docker, tag: string): Promise<string> {
  const stream = (await docker
    .getImage(tag)
    .push({ authconfig: { serveraddress: tag.split('/')[0]! } })) as NodeJS.ReadableStream;
  const events = await follow(docker, stream);
  const aux = events.find((e) => (e.aux as { Digest?: string } | undefined)?.Digest)?.aux as { Digest: string };
  if (!aux) throw new Error(`push of ${tag} reported no digest`);
  return aux.Digest;
}

/** Builds and pushes; returns the pushed digest. */
export async function buildAndPush(docker: Docker, spec: BuildSpec): Promise<string> {
  await buildImage(docker, spec);
  return pushImage(docker, spec.tag);
}
