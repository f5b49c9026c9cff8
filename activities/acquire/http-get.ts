import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { SourceNotFoundError, SourceRejectedError, SourceUnavailableError } from './errors';

export interface HttpGetOptions {
  fetch: typeof fetch;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Appended to 401/403 messages: what the caller can do about it (e.g. set a token). */
  authHint?: string;
}

/**
 * GET that sorts failures into permanent and transient: 404/410 → SourceNotFoundError, other 4xx →
 * SourceRejectedError, while 5xx, 408, 429 and network errors → SourceUnavailableError (retried: servers recover
 * and rate limits lift). Redirects are followed; fetch drops the Authorization header on cross-origin hops, so a
 * token never reaches the CDN the Hub redirects to.
 */
export async function httpGet(url: string, options: HttpGetOptions): Promise<Response> {
  let response: Response;
  try {
    response = await options.fetch(url, {
      // Digests are declared over the bytes of the file, so ask for them as they are, not re-encoded in transit.
      headers: { 'accept-encoding': 'identity', ...options.headers },
      redirect: 'follow',
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    throw new SourceUnavailableError(`GET ${url} failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause: err,
    });
  }
  if (response.ok) return response;

  // Release the connection: nobody will read this body.
  await response.body?.cancel().catch(() => undefined);
  const { status } = response;
  const answered = `GET ${url} answered ${status}${response.statusText ? ` ${response.statusText}` : ''}`;
  const details = { url, status };
  if (status >= 500 || status === 408 || status === 429) throw new SourceUnavailableError(answered);
  if (status === 404 || status === 410) throw new SourceNotFoundError(answered, details);
  if ((status === 401 || status === 403) && options.authHint) {
    throw new SourceRejectedError(`${answered} (${options.authHint})`, details);
  }
  throw new SourceRejectedError(answered, details);
}

/** The body as a Node stream, so it can go through stream.pipeline with backpressure. */
export function bodyStream(response: Response): Readable {
  if (response.body === null) return Readable.from([]);
  return Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>);
}
