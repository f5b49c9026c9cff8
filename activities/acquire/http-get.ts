import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Agent } from 'undici';
import {
  pinnedAgent,
  checkUrl,
  MAX_REDIRECTS,
  SourceNotAllowedError,
  type Lookup,
  type SourcePolicy,
} from '../common/source-policy';
import { SourceNotFoundError, SourceRejectedError, SourceUnavailableError } from './errors';

export interface HttpGetOptions {
  fetch: typeof fetch;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Appended to 401/403 messages: what the caller can do about it (e.g. set a token). */
  authHint?: string;
  /** Every URL, redirects included, is checked against it before it is requested. */
  policy: SourcePolicy;
  /** The request field the URL came from, for refusals (e.g. `model.source`). */
  field: string;
  lookup?: Lookup;
  /**
   * PEM certificates trusted for https besides the bundled roots (MREL_SOURCE_CA_FILE): internal model mirrors are
   * signed by company CAs.
   */
  ca?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * GET that sorts failures into permanent and transient: 404/410 → SourceNotFoundError, other 4xx →
 * SourceRejectedError, while 5xx, 408, 429 and network errors → SourceUnavailableError (retried: servers recover
 * and rate limits lift). Redirects are followed here, not by fetch, so that each hop is checked against the source
 * policy (an allowed host must not bounce the worker to 127.0.0.1) and the Authorization header is dropped on a
 * cross-origin hop: a token never reaches the CDN the Hub redirects to.
 */
export async function httpGet(url: string, options: HttpGetOptions): Promise<Response> {
  let current = new URL(url);
  // Digests are declared over the bytes of the file, so ask for them as they are, not re-encoded in transit.
  let headers: Record<string, string> = { 'accept-encoding': 'identity', ...options.headers };
  for (let hop = 0; ; hop++) {
    await checkAllowedUrl(current, url, options);
    const response = await request(current.href, headers, options);
    const location = REDIRECTS.has(response.status) ? response.headers.get('location') : null;
    if (location === null) return answer(url, response, options);
    await response.body?.cancel().catch(() => undefined);
    if (hop >= MAX_REDIRECTS) {
      throw new SourceRejectedError(`GET ${url} redirected more than ${MAX_REDIRECTS} times`, { url });
    }
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new SourceRejectedError(`GET ${current.href} redirected to something that is not a URL`, { url });
    }
    if (next.origin !== current.origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
    }
    current = next;
  }
}

/**
 * Refuses a URL the source policy does not allow (SourceNotAllowedError, naming the redirect that led there);
 * a failed DNS lookup is transient.
 */
export async function checkAllowedUrl(
  target: URL,
  requested: string,
  options: Pick<HttpGetOptions, 'policy' | 'field' | 'lookup' | 'signal'>,
): Promise<void> {
  try {
    await checkUrl(target, options.policy, options.field, { lookup: options.lookup });
  } catch (err) {
    if (err instanceof SourceNotAllowedError) {
      if (target.href === new URL(requested).href) throw err;
      throw new SourceNotAllowedError(
        options.field,
        `${requested} redirected to ${target.origin}, which is refused: ${err.problem}`,
      );
    }
    if (options.signal?.aborted) throw err;
    throw new SourceUnavailableError(`looking up ${target.hostname} failed: ${(err as Error).message}`, { cause: err });
  }
}

async function request(url: string, headers: Record<string, string>, options: HttpGetOptions): Promise<Response> {
  try {
    const init: RequestInit & { dispatcher: Agent } = {
      headers,
      redirect: 'manual',
      signal: options.signal,
      dispatcher: pinnedAgent(options.policy, options.field, options.ca),
    };
    return await options.fetch(url, init);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    // The connection's own lookup refused the address (the name resolved differently than when it was checked).
    for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof SourceNotAllowedError) throw e;
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const why = cause instanceof Error ? cause.message : String(cause);
    const code = (cause as { code?: unknown } | undefined)?.code;
    if (PERMANENT_FETCH_ERROR.test(why) || (typeof code === 'string' && PERMANENT_FETCH_CODES.test(code))) {
      throw new SourceRejectedError(
        `GET ${url} cannot succeed: ${why}${typeof code === 'string' ? ` (${code})` : ''}`,
        {
          url,
        },
      );
    }
    throw new SourceUnavailableError(`GET ${url} failed: ${why}`, { cause: err });
  }
}

/**
 * Network failures that no retry changes: a port that fetch refuses to use, a URL it cannot request, a certificate
 * that does not verify. Refused connections, timeouts and unknown names stay transient: servers and DNS come back.
 */
const PERMANENT_FETCH_ERROR = /^(bad port|invalid url|unsupported protocol|redirect count exceeded)\b/i;
const PERMANENT_FETCH_CODES =
  /^(ERR_INVALID_URL|ERR_TLS_CERT_ALTNAME_INVALID|CERT_\w+|UNABLE_TO_\w+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_SSL_\w+)$/;

async function answer(url: string, response: Response, options: HttpGetOptions): Promise<Response> {
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
