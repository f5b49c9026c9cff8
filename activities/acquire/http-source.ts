/**
 * `https://` and `http://` from a plain file server. A URL to a file is a one-file model; a URL ending in "/" is
 * a directory, which a plain server cannot list, so its files are named by the request.
 */
import type { ModelRef } from '../../contract/types';
import { InvalidRequestError, UnsafePathError } from './errors';
import { bodyStream, httpGet } from './http-get';
import { assertSafeRelativePath } from './paths';
import type { ResolvedSource, SourceOptions } from './source';

export async function resolveHttpSource(model: ModelRef, options: SourceOptions): Promise<ResolvedSource> {
  const url = new URL(model.source);
  // The fragment never reaches the server; the resolved revision uses it for the ETag instead.
  url.hash = '';
  const base = url.href;
  if (url.pathname.endsWith('/')) return directory(model, base, options);

  const lastSegment = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  const name = decodeSegment(lastSegment, model.source);
  assertSafeRelativePath(name, `${model.source}: file name`);
  if (name.includes('/')) {
    throw new UnsafePathError(`${model.source}: the file name ${JSON.stringify(name)} contains an encoded "/"`, {
      path: name,
    });
  }
  // The ETag is only known once the server answers, so the file is requested now and streamed when opened.
  const response = await httpGet(base, {
    fetch: options.fetch,
    signal: options.signal,
    policy: options.policy,
    lookup: options.lookup,
    ca: options.ca,
    field: options.field,
  });
  const etag = response.headers.get('etag')?.replace(/^(W\/)?"(.*)"$/, '$1$2');
  return {
    resolvedRevision: etag ? `${base}#etag=${etag}` : base,
    files: [{ path: name, open: async () => bodyStream(response) }],
  };
}

function directory(model: ModelRef, base: string, options: SourceOptions): ResolvedSource {
  const names = model.files ?? Object.keys(model.digests ?? {});
  if (names.length === 0) {
    throw new InvalidRequestError(
      `${model.source} is a directory URL (it ends with "/"), and a plain HTTP server cannot list it: ` +
        'name the files in model.files (e.g. ["config.json", "model.safetensors"]) or declare them in model.digests',
      { source: model.source },
    );
  }
  const paths = [...new Set(names)];
  for (const path of paths) assertSafeRelativePath(path, `${model.source}: file`);
  return {
    resolvedRevision: base,
    files: paths.map((path) => ({
      path,
      async open(signal?: AbortSignal) {
        const fileUrl = new URL(path.split('/').map(encodeURIComponent).join('/'), base).href;
        return bodyStream(
          await httpGet(fileUrl, {
            fetch: options.fetch,
            signal: signal ?? options.signal,
            policy: options.policy,
            lookup: options.lookup,
            ca: options.ca,
            field: options.field,
          }),
        );
      },
    })),
  };
}

function decodeSegment(segment: string, source: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new InvalidRequestError(`${source}: the last path segment is not valid percent-encoding`, { source });
  }
}
