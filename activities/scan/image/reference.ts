/**
 * Image references as Docker reads them: `[registry[:port]/]repository[:tag][@sha256:digest]`. A first component
 * with a dot or a colon, or `localhost`, is a registry host; otherwise the image lives on Docker Hub, where
 * one-component names are under `library/`.
 */
import { ImageScanError } from './errors';

/** A parsed image reference. */
export interface ImageRef {
  /** As written by the user. */
  original: string;
  /** Registry host as named (`docker.io` for Hub images). */
  registry: string;
  /** Repository path inside the registry (`library/busybox`, `team/model-server`). */
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/** Parses an image reference; throws ImageScanError(InvalidImageRef) naming what is wrong. */
export function parseImageRef(ref: string): ImageRef {
  const original = ref.trim();
  const bad = (why: string): never => {
    throw new ImageScanError('InvalidImageRef', `image reference "${ref}" is not valid: ${why}`);
  };
  if (original === '') bad('it is empty');
  let rest = original;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('the digest must be sha256: followed by 64 lower-case hex characters');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag "${tag}" may contain only letters, digits, "_", "." and "-" (at most 128)`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    bad('repository names are lower-case letters and digits separated by ".", "_", "__", "-" or "/"');
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  return { original, registry, repository: parts.join('/'), tag, digest };
}

/** `registry/repository@digest`: the reference that pins exactly what was scanned. */
export function pinnedRef(ref: ImageRef, digest: string): string {
  return `${ref.registry}/${ref.repository}@${digest}`;
}

/** The reference written back in its canonical form (tag and digest as given). */
export function formatImageRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The registry host an image reference is pulled from (Docker Hub's name for `docker.io`), with its port. */
export function registryHost(ref: ImageRef): string {
  return ref.registry === 'docker.io' ? 'registry-1.docker.io' : ref.registry;
}
