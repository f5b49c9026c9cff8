/**
 * `hf://org/repo@revision`: the subset of the Hugging Face Hub HTTP API that huggingface_hub itself uses to
 * download a snapshot. The revision (branch, tag or commit) is resolved to a commit sha first and every file is
 * fetched by that sha, so a push to the branch during the download cannot mix two commits into one model.
 */
import { z } from 'zod';
import { formatIssues, InvalidRequestError, SourceRejectedError, SourceUnavailableError } from './errors';
import { bodyStream, httpGet } from './http-get';
import { assertSafeRelativePath } from './paths';
import type { ResolvedSource, SourceOptions } from './source';

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

const revisionInfoSchema = z.object({
  // Git commit ids (sha1, or sha256 repositories); it goes into URLs, so nothing else is accepted.
  sha: z.string().regex(/^[0-9a-f]{40,64}$/),
  siblings: z.array(z.object({ rfilename: z.string() })),
});

export interface HfRef {
  repoId: string;
  revision: string;
}

export function parseHfSource(source: string): HfRef {
  const rest = source.slice('hf://'.length);
  const at = rest.indexOf('@');
  const repoId = at === -1 ? rest : rest.slice(0, at);
  const revision = at === -1 ? 'main' : rest.slice(at + 1);
  if (!REPO_ID.test(repoId) || revision === '') {
    throw new InvalidRequestError(
      `${source} is not a Hugging Face model reference: use hf://org/repo or hf://org/repo@revision ` +
        '(revision: a branch, tag or commit; main when omitted)',
      { source },
    );
  }
  return { repoId, revision };
}

export async function resolveHfSource(source: string, options: SourceOptions): Promise<ResolvedSource> {
  const { repoId, revision } = parseHfSource(source);
  const repoPath = repoId.split('/').map(encodeURIComponent).join('/');
  const get = (url: string, signal = options.signal) =>
    httpGet(url, {
      fetch: options.fetch,
      signal,
      headers: options.hfToken ? { authorization: `Bearer ${options.hfToken}` } : {},
      authHint: options.hfToken
        ? 'the token has no access to this repository'
        : 'private or gated repository? give the worker a token (HF_TOKEN)',
      policy: options.policy,
      lookup: options.lookup,
      ca: options.ca,
      // The endpoint is the worker's (HF_ENDPOINT), but the refusal belongs to the source that led there.
      field: options.field,
    });

  const infoUrl = `${options.hfEndpoint}/api/models/${repoPath}/revision/${encodeURIComponent(revision)}`;
  const response = await get(infoUrl);
  let body: string;
  try {
    body = await response.text();
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new SourceUnavailableError(`GET ${infoUrl} broke off: ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }
  // A 200 that is not the Hub's answer (a captive proxy, a wrong endpoint) will not improve on retry.
  const notTheHub = (why: string) =>
    new SourceRejectedError(
      `${source}: GET ${infoUrl} did not answer with a commit sha and file list (is ${options.hfEndpoint} a ` +
        `Hugging Face Hub endpoint?): ${why}`,
      { source, url: infoUrl },
    );
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    // JSON.parse quotes what it could not parse, and a wrong endpoint may answer with anything: name no content.
    throw notTheHub(`the body (${Buffer.byteLength(body)} bytes) is not JSON`);
  }
  const parsed = revisionInfoSchema.safeParse(json);
  if (!parsed.success) throw notTheHub(formatIssues(parsed.error.issues, 'response'));
  const info = parsed.data;

  const { sha } = info;
  const files = info.siblings.map(({ rfilename: path }) => {
    assertSafeRelativePath(path, `${source} sibling`);
    return {
      path,
      async open(signal?: AbortSignal) {
        const fileUrl = `${options.hfEndpoint}/${repoPath}/resolve/${sha}/${path.split('/').map(encodeURIComponent).join('/')}`;
        return bodyStream(await get(fileUrl, signal ?? options.signal));
      },
    };
  });
  return { resolvedRevision: sha, files };
}
