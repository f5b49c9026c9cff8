/**
 * Registry credentials the way `docker login` leaves them: `$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`. A registry's entry in `credHelpers`, else the `credsStore`, names a credential helper
 * (`docker-credential-<name> get`); otherwise `auths[host]` holds `auth` (base64 `user:password`), or `username` and
 * `password`, or an `identitytoken` (an OAuth2 refresh token). Nothing read here is ever put in a message.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { RegistryError } from './errors';

export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token for the registry's token service (`docker login` with an identity provider). */
  identityToken?: string;
}

/** Finds the credentials for a registry host (`host[:port]`), or undefined for anonymous access. */
export type CredentialLookup = (registry: string) => Promise<RegistryCredentials | undefined>;

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Where the Docker CLI keeps its configuration for this environment. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG?.trim() ? env.DOCKER_CONFIG : join(env.HOME?.trim() ? env.HOME : homedir(), '.docker');
  return join(dir, 'config.json');
}

export interface DockerCredentialOptions {
  env?: NodeJS.ProcessEnv;
  /** How long a credential helper may take (default 15 s). */
  helperTimeoutMs?: number;
}

/**
 * Credentials from the Docker config file, read on every lookup so that a `docker login` takes effect without a
 * restart. A missing file means anonymous access; a broken one is an error naming the file.
 */
export function dockerCredentialLookup(options: DockerCredentialOptions = {}): CredentialLookup {
  const env = options.env ?? process.env;
  return async (registry) => {
    const path = dockerConfigPath(env);
    const config = await readDockerConfig(path);
    if (!config) return undefined;
    const host = configHostname(registry);
    const helper = config.credHelpers?.[host] ?? findByHost(config.credHelpers, host) ?? config.credsStore;
    if (helper) {
      const fromHelper = await runCredentialHelper(helper, registry, path, options.helperTimeoutMs ?? 15_000);
      if (fromHelper) return fromHelper;
      // A credsStore that knows nothing of this host leaves the file's own entry in charge, as the Docker CLI does.
    }
    const entry = config.auths?.[host] ?? findByHost(config.auths, host);
    if (!entry) return undefined;
    return fromAuthEntry(entry, host, path);
  };
}

async function readDockerConfig(path: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError('RegistryConfigInvalid', `the Docker config file ${path} cannot be read: ${errCode(err)}`, {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message may quote the file, and the file holds secrets: say only where to look.
    throw new RegistryError(
      'RegistryConfigInvalid',
      `the Docker config file ${path} is not valid JSON: fix it or run "docker login" again`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new RegistryError('RegistryConfigInvalid', `the Docker config file ${path} must hold a JSON object`);
  }
  return parsed as DockerConfigFile;
}

/** The key Docker files a registry's credentials under: Docker Hub's historical index URL, else `host[:port]`. */
function configHostname(registry: string): string {
  return registry === 'docker.io' || registry === 'registry-1.docker.io' ? 'index.docker.io' : registry;
}

/** Keys may be written as URLs (`https://host/v1/`); the Docker CLI compares only their host part. */
function findByHost<T>(map: Record<string, T> | undefined, host: string): T | undefined {
  if (!map) return undefined;
  for (const [key, value] of Object.entries(map)) {
    const keyHost = key.replace(/^https?:\/\//, '').split('/')[0];
    if (keyHost === host) return value;
  }
  return undefined;
}

function fromAuthEntry(
  entry: NonNullable<DockerConfigFile['auths']>[string],
  host: string,
  path: string,
): RegistryCredentials | undefined {
  if (entry === null || typeof entry !== 'object') {
    throw new RegistryError('RegistryConfigInvalid', `${path}: auths["${host}"] must be an object`);
  }
  const creds: RegistryCredentials = {};
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new RegistryError(
        'RegistryConfigInvalid',
        `${path}: auths["${host}"].auth must be base64 of "user:password"; run "docker login ${host}" again`,
      );
    }
    creds.username = decoded.slice(0, colon);
    creds.password = decoded.slice(colon + 1);
  } else if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    creds.username = entry.username;
    creds.password = entry.password;
  }
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') creds.identityToken = entry.identitytoken;
  return creds.username !== undefined || creds.identityToken !== undefined ? creds : undefined;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Runs `docker-credential-<name> get`; undefined when the helper holds nothing for this registry. */
async function runCredentialHelper(
  name: string,
  registry: string,
  configPath: string,
  timeoutMs: number,
): Promise<RegistryCredentials | undefined> {
  if (!HELPER_NAME.test(name)) {
    throw new RegistryError(
      'RegistryConfigInvalid',
      `${configPath}: credential helper name ${JSON.stringify(name.slice(0, 40))} is not a plain name`,
    );
  }
  const program = `docker-credential-${name}`;
  const serverUrl = configHostname(registry) === 'index.docker.io' ? 'https://index.docker.io/v1/' : registry;
  const result = await new Promise<{ code: number | string | null; stdout: string }>((resolve) => {
    const child = execFile(
      program,
      ['get'],
      { timeout: timeoutMs, maxBuffer: 1024 * 1024, encoding: 'utf8' },
      (err, stdout) => resolve({ code: err ? ((err as { code?: number | string }).code ?? 1) : 0, stdout }),
    );
    child.stdin?.end(serverUrl);
  });
  if (result.code === 'ENOENT') {
    throw new RegistryError(
      'RegistryConfigInvalid',
      `${configPath} names the credential helper ${program} for ${registry}, but it is not on PATH: install it or ` +
        'remove it from credHelpers/credsStore',
    );
  }
  if (result.code !== 0) {
    // Helpers report a missing entry on stdout; anything else they print may carry secrets and is not repeated.
    if (/credentials not found/i.test(result.stdout)) return undefined;
    throw new RegistryError(
      'RegistryConfigInvalid',
      `credential helper ${program} failed for ${registry} (exit ${String(result.code)}): run "docker login ${registry}" again`,
    );
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(result.stdout) as typeof parsed;
  } catch {
    throw new RegistryError('RegistryConfigInvalid', `credential helper ${program} answered something other than JSON`);
  }
  if (typeof parsed.Secret !== 'string' || parsed.Secret === '') return undefined;
  // The helper protocol marks an identity token with the user name "<token>".
  if (parsed.Username === '<token>') return { identityToken: parsed.Secret };
  return { username: typeof parsed.Username === 'string' ? parsed.Username : '', password: parsed.Secret };
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'unknown error';
}
