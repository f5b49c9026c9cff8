/**
 * Pushes a scanned local image (`docker-daemon:…`) to a registry by digest: its config and layer blobs exactly as
 * the engine exports them, and the manifest built from them (docker-engine.ts), so what is pushed is byte for byte
 * what the image gate scanned, and the digest returned is what the Deployment runs. Blobs and the manifest the
 * registry already holds are not sent again: pushing twice gives the same digest.
 */
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { dockerCredentialLookup, RegistryClient, type CredentialLookup } from '../../registry';
import {
  DockerEngineImages,
  dockerFromEnv,
  isDaemonRef,
  OCI_MEDIA_TYPES,
  parseDaemonRef,
  type DaemonLayer,
} from './docker-engine';
import { ImageScanError } from './errors';
import { parseImageRef } from './reference';

export interface PushImageInput {
  /** The scanned local image: `docker-daemon:<name>[:tag]` or `docker-daemon:sha256:<id>`. */
  source: string;
  /** Where it goes: `registry/repository`, optionally `:tag` (the tag is set to the pushed manifest too). */
  target: string;
  /**
   * The image ID the gate scanned (its `image-digest`); the push refuses a source that now names another image
   * (a tag moved since the scan).
   */
  imageId?: string;
}

export interface PushImageResult {
  /** `registry/repository@sha256:<manifest digest>`: what to deploy. */
  ref: string;
  /** The manifest digest. */
  digest: string;
  /** The image ID (config digest) that was pushed. */
  imageId: string;
  /** Blobs uploaded, and blobs the registry already held. */
  blobs: { pushed: number; present: number };
}

export interface PushProgress {
  step: 'inspect' | 'blobs' | 'manifest';
  blob?: string;
  bytes?: number;
}

export interface PushImageDeps {
  /** The engine the source is exported from (default: the one DOCKER_HOST names). */
  docker?: Docker;
  /** Registry credentials (default: the Docker config file, as `docker login` leaves it). */
  credentials?: CredentialLookup;
  /** Plain-HTTP registries besides loopback ones. */
  insecureRegistries?: readonly string[];
  fetch?: typeof fetch;
  signal?: AbortSignal;
  onProgress?: (progress: PushProgress) => void;
}

/** Pushes the local image `input.source` to `input.target` by digest and returns the pinned reference. */
export async function pushScannedImage(input: PushImageInput, deps: PushImageDeps = {}): Promise<PushImageResult> {
  if (!isDaemonRef(input.source)) {
    throw new ImageScanError(
      'InvalidImageRef',
      `push source "${input.source}" is not a local image: name it docker-daemon:<name>[:tag] or docker-daemon:sha256:<id>`,
    );
  }
  const source = parseDaemonRef(input.source);
  const target = parseImageRef(input.target);
  if (target.digest) {
    throw new ImageScanError(
      'InvalidImageRef',
      `push target "${input.target}" names a digest: name registry/repository[:tag]; the digest is the result`,
    );
  }
  deps.onProgress?.({ step: 'inspect' });
  const engine = new DockerEngineImages(deps.docker ?? dockerFromEnv(), { signal: deps.signal });
  const image = await engine.inspect(source);
  if (input.imageId !== undefined && image.id !== input.imageId) {
    throw new ImageScanError(
      'DigestMismatch',
      `${input.source} is now image ${image.id}, not the scanned ${input.imageId}: scan it again before pushing`,
    );
  }
  const client = new RegistryClient(
    { registry: target.registry, repository: target.repository },
    {
      credentials: deps.credentials ?? dockerCredentialLookup(),
      insecureRegistries: deps.insecureRegistries,
      fetch: deps.fetch,
      signal: deps.signal,
    },
  );
  const pinned = `${target.registry}/${target.repository}@${image.manifestDigest}`;
  const result = (pushed: number, present: number): PushImageResult => ({
    ref: pinned,
    digest: image.manifestDigest,
    imageId: image.id,
    blobs: { pushed, present },
  });
  const tagIt = async (): Promise<void> => {
    if (target.tag) await client.putManifest(target.tag, image.manifestBytes, OCI_MEDIA_TYPES.manifest);
  };

  // A registry holds a manifest only with all its blobs: the image is there already.
  const existing = await client.headManifest(image.manifestDigest);
  if (existing?.digest === image.manifestDigest) {
    await tagIt();
    return result(0, image.layers.length + 1);
  }

  deps.onProgress?.({ step: 'blobs' });
  let pushed = 0;
  let present = 0;
  if ((await client.headBlob(image.configDigest.slice(7))) === undefined) {
    await client.uploadBlob(Readable.from([image.config]), {
      signal: deps.signal,
      beforeCommit: expect(image.configDigest, image.config.length),
    });
    pushed++;
  } else present++;
  const missing = new Set<string>();
  for (const layer of new Map(image.layers.map((l) => [l.digest, l])).values()) {
    if ((await client.headBlob(layer.digest.slice(7))) === undefined) missing.add(layer.digest);
    else present++;
  }
  if (missing.size > 0) {
    await engine.streamLayers(image, async (_indexes, layer: DaemonLayer, body) => {
      if (!missing.has(layer.digest)) return;
      await client.uploadBlob(body, {
        signal: deps.signal,
        onProgress: (bytes) => deps.onProgress?.({ step: 'blobs', blob: layer.digest, bytes }),
        beforeCommit: expect(layer.digest, layer.size),
      });
      missing.delete(layer.digest);
      pushed++;
    });
  }

  deps.onProgress?.({ step: 'manifest' });
  const digest = await client.putManifest(image.manifestDigest, image.manifestBytes, OCI_MEDIA_TYPES.manifest);
  if (digest !== image.manifestDigest) {
    throw new ImageScanError(
      'DigestMismatch',
      `${client.name} stored the manifest as ${digest}, not ${image.manifestDigest}`,
    );
  }
  await tagIt();
  return result(pushed, present);
}

/** Refuses to commit a blob whose content is not what the manifest says (so the registry never holds it). */
function expect(digest: string, size: number): (sha256: string, actualSize: number) => void {
  return (sha256, actualSize) => {
    if (`sha256:${sha256}` !== digest || actualSize !== size) {
      throw new ImageScanError(
        'DigestMismatch',
        `the exported blob ${digest} (${size} bytes) read as sha256:${sha256} (${actualSize} bytes): nothing was pushed for it`,
      );
    }
  };
}
