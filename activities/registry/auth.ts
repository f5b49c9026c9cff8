/**
 * Answers a registry's `WWW-Authenticate` challenge: Basic with the configured credentials, or Bearer through the
 * token service the challenge names (realm, service, scope), authenticated with Basic credentials or an identity
 * (refresh) token, as the Docker CLI does. Credentials are never sent in the clear to a host other than a loopback
 * or explicitly insecure one.
 */
import type { RegistryCredentials } from './credentials';
import { describeFetchError, RegistryError, RegistryUnavailableError } from './errors';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic); undefined for schemes registries do not use. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  const scheme = match?.[1]?.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const m of (match?.[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) {
    params[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  }
  return { scheme, params };
}

export function basicAuthorization(creds: RegistryCredentials): string | undefined {
  if (creds.username === undefined || creds.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

export interface TokenRequest {
  registry: string;
  challenge: Challenge;
  /** `repository:<name>:<actions>` scopes wanted, besides the one the challenge names. */
  scopes: string[];
  credentials?: RegistryCredentials;
  fetch: typeof fetch;
  /** Whether a host may be spoken to over plain HTTP (loopback and configured insecure registries). */
  plainHttpAllowed: (host: string) => boolean;
  /** What a refused login tells the user to do about the credentials. */
  credentialsAdvice: string;
  signal?: AbortSignal;
}

/** Fetches a bearer token for the wanted scopes; the `Authorization` header value to send. */
export async function fetchBearerToken(req: TokenRequest): Promise<string> {
  const { challenge, credentials } = req;
  const realm = challenge.params.realm;
  let url: URL;
  try {
    url = new URL(realm ?? '');
  } catch {
    throw new RegistryError(
      'RegistryRejected',
      `registry ${req.registry} named no usable token service in its challenge`,
    );
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && req.plainHttpAllowed(url.host))) {
    throw new RegistryError(
      'RegistryRejected',
      `registry ${req.registry} sends logins to ${url.protocol}//${url.host}, which is neither https nor a loopback ` +
        'or insecure-listed host: credentials are not sent there',
    );
  }
  const scopes = [...new Set([...(challenge.params.scope ? challenge.params.scope.split(' ') : []), ...req.scopes])];
  const service = challenge.params.service;
  let res: Response;
  try {
    if (credentials?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.identityToken,
        client_id: 'modelrelease',
        ...(service ? { service } : {}),
        scope: scopes.join(' '),
      });
      res = await req.fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form,
        signal: req.signal ?? null,
      });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const basic = credentials ? basicAuthorization(credentials) : undefined;
      res = await req.fetch(url, { headers: basic ? { Authorization: basic } : {}, signal: req.signal ?? null });
    }
  } catch (err) {
    if (req.signal?.aborted) throw err;
    throw new RegistryUnavailableError(
      `token service ${url.host} for ${req.registry} cannot be reached (${describeFetchError(err)})`,
      {
        cause: err,
      },
    );
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new RegistryError(
      'RegistryAccessDenied',
      `the token service of ${req.registry} refused ${credentials ? 'the configured credentials' : 'anonymous access'} ` +
        `(${res.status}): ${req.credentialsAdvice}`,
    );
  }
  if (res.status === 429 || res.status >= 500) {
    await res.body?.cancel();
    throw new RegistryUnavailableError(`token service ${url.host} for ${req.registry} answered ${res.status}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new RegistryError('RegistryRejected', `token service ${url.host} for ${req.registry} answered ${res.status}`);
  }
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new RegistryError('RegistryRejected', `token service ${url.host} for ${req.registry} answered no JSON`);
  }
  const token = typeof body.access_token === 'string' ? body.access_token : body.token;
  if (typeof token !== 'string' || token === '') {
    throw new RegistryError('RegistryRejected', `token service ${url.host} for ${req.registry} issued no token`);
  }
  return `Bearer ${token}`;
}
