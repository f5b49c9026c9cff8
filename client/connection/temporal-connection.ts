/**
 * The Temporal connection as users configure it, one resolution for the CLI, the HTTP door and every worker: the
 * SDK's environment configuration (@temporalio/envconfig): a profile from the TOML config file (TEMPORAL_CONFIG_FILE,
 * else ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE, else `default`), overlaid by TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_* and TEMPORAL_GRPC_META_*, overlaid by explicit
 * options (the CLI's --address/--namespace/--profile). Problems name the variable or the file and key, never a value
 * read from a file.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { platform } from 'node:os';
import { isAbsolute, join } from 'node:path';
import {
  loadClientConfig,
  loadClientConfigProfile,
  type ClientConfigProfile,
  type ConfigDataSource,
} from '@temporalio/envconfig';

export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** TLS settings in the shape both the client's Connection and the worker's NativeConnection take. */
export interface TemporalTls {
  serverNameOverride?: string;
  serverRootCACertificate?: Buffer;
  clientCertPair?: { crt: Buffer; key: Buffer };
}

export interface TemporalConnectionConfig {
  address: string;
  namespace: string;
  apiKey?: string;
  /** false or undefined: plaintext; true: TLS trusting the system's roots; an object: TLS as it says. */
  tls?: TemporalTls | boolean;
  /** gRPC metadata sent with every call (TEMPORAL_GRPC_META_*, or grpc_meta in the profile). */
  metadata?: Record<string, string>;
  /** The profile and file the settings came from, when a file was read: for the startup line and for errors. */
  profile?: { name: string; file: string };
}

/** What the caller sets explicitly: these win over the environment and the profile. */
export interface TemporalConnectionOverrides {
  address?: string;
  namespace?: string;
  profile?: string;
}

/** The options Connection.connect and NativeConnection.connect share. */
export interface TemporalConnectOptions {
  address: string;
  tls?: TemporalTls | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
}

export class TemporalConnectionConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'TemporalConnectionConfigError';
  }
}

const ADDRESS = /^(?:\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/;

/**
 * Resolves the connection from `env` (process.env by default), the config file it points at, and `overrides`.
 * Reads the TLS files at once, so that a missing or broken certificate stops the process at start.
 */
export function loadTemporalConnectionConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: TemporalConnectionOverrides = {},
): TemporalConnectionConfig {
  const vars = definedVars(env);
  const file = configFile(vars);
  const profileName = overrides.profile ?? vars.TEMPORAL_PROFILE;
  const profileWhere = overrides.profile !== undefined ? '--profile' : 'environment variable TEMPORAL_PROFILE';
  let data: string | undefined;
  if (file !== undefined) {
    try {
      data = readFileSync(file.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Only a file someone named must exist; the default one is optional, as for the Temporal CLI.
      if (code !== 'ENOENT' || file.named) {
        throw new TemporalConnectionConfigError([
          `${file.where}: ${file.path} cannot be read (${code ?? 'unreadable'}); point it at a Temporal config ` +
            'file (TOML with [profile.<name>] tables), or unset it',
        ]);
      }
    }
  }
  if (data === undefined && profileName !== undefined && profileName !== 'default') {
    throw new TemporalConnectionConfigError([
      `${profileWhere}: profile "${profileName}" was asked for, but there is no config file ` +
        `(${file ? file.path : 'set TEMPORAL_CONFIG_FILE'}); create it or unset the profile`,
    ]);
  }
  const source: ConfigDataSource | undefined = data === undefined ? undefined : { data };
  let profile: ClientConfigProfile;
  try {
    if (source !== undefined && profileName !== undefined) {
      const known = Object.keys(loadClientConfig({ configSource: source, overrideEnvVars: vars }).profiles);
      if (!known.includes(profileName)) {
        throw new TemporalConnectionConfigError([
          `${profileWhere}: profile "${profileName}" is not in ${file?.path}` +
            (known.length > 0 ? ` (profiles there: ${known.join(', ')})` : ' (it defines no profile)'),
        ]);
      }
    }
    profile = loadClientConfigProfile({
      ...(profileName === undefined ? {} : { profile: profileName }),
      ...(source === undefined ? { disableFile: true } : { configSource: source }),
      overrideEnvVars: vars,
    });
  } catch (err) {
    if (err instanceof TemporalConnectionConfigError) throw err;
    // smol-toml's message quotes the offending line, which may hold an API key: report the position only.
    const at = err as { line?: number; column?: number };
    const position = at.line === undefined ? '' : ` at line ${at.line}, column ${at.column ?? '?'}`;
    throw new TemporalConnectionConfigError([
      `${file?.path ?? 'the Temporal config file'} is not a valid Temporal config file${position}; fix it or point ` +
        'TEMPORAL_CONFIG_FILE elsewhere',
    ]);
  }
  const where = (envVar: string, key: string, override?: string): string =>
    override !== undefined
      ? override
      : vars[envVar] !== undefined
        ? `environment variable ${envVar}`
        : `${key} of profile "${profileName ?? 'default'}" in ${file?.path ?? 'the config file'}`;

  const problems: string[] = [];
  const address = overrides.address ?? profile.address ?? DEFAULT_TEMPORAL_ADDRESS;
  const port = ADDRESS.exec(address)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65_535) {
    problems.push(
      `${where('TEMPORAL_ADDRESS', 'address', overrides.address === undefined ? undefined : '--address')}: must be host:port, e.g. localhost:7233`,
    );
  }
  const namespace = overrides.namespace ?? profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE;
  if (namespace.trim() === '') {
    problems.push(
      `${where('TEMPORAL_NAMESPACE', 'namespace', overrides.namespace === undefined ? undefined : '--namespace')}: must not be empty`,
    );
  }
  if (profile.apiKey !== undefined && profile.apiKey.trim() === '') {
    problems.push(`${where('TEMPORAL_API_KEY', 'api_key')}: is empty; set the API key or unset it`);
  }
  if (vars.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION === 'true' || vars.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION === '1') {
    problems.push(
      'environment variable TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: the TypeScript SDK always verifies the server; ' +
        "set TEMPORAL_TLS_SERVER_NAME to the name in the server's certificate instead",
    );
  }
  const tls = resolveTls(profile, where, problems);
  if (problems.length > 0) throw new TemporalConnectionConfigError(problems);
  return {
    address,
    namespace,
    ...(profile.apiKey === undefined ? {} : { apiKey: profile.apiKey }),
    // An API key goes to a cloud endpoint over TLS unless TLS is explicitly off (the SDK's own rule).
    ...(tls !== undefined ? { tls } : profile.apiKey !== undefined ? { tls: true } : {}),
    ...(profile.grpcMeta === undefined || Object.keys(profile.grpcMeta).length === 0
      ? {}
      : { metadata: profile.grpcMeta }),
    ...(data === undefined || file === undefined
      ? {}
      : { profile: { name: profileName ?? 'default', file: file.path } }),
  };
}

/** The options for Connection.connect (client) and NativeConnection.connect (worker). */
export function temporalConnectOptions(config: TemporalConnectionConfig): TemporalConnectOptions {
  return {
    address: config.address,
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }),
    ...(config.metadata === undefined ? {} : { metadata: config.metadata }),
  };
}

/** One line for a process's startup message: where it connects and how, never a secret. */
export function describeTemporalConnection(config: TemporalConnectionConfig): string {
  const how: string[] = [`namespace ${config.namespace}`];
  if (config.tls === true || typeof config.tls === 'object') {
    how.push(typeof config.tls === 'object' && config.tls.clientCertPair ? 'mTLS' : 'TLS');
  }
  if (config.apiKey !== undefined) how.push('API key');
  if (config.profile) how.push(`profile ${config.profile.name} of ${config.profile.file}`);
  return `${config.address} (${how.join(', ')})`;
}

function resolveTls(
  profile: ClientConfigProfile,
  where: (envVar: string, key: string) => string,
  problems: string[],
): TemporalTls | boolean | undefined {
  const tls = profile.tls;
  if (tls === undefined) return undefined;
  if (tls.disabled === true) return false;
  const read = (source: ConfigDataSource | undefined, envBase: string, key: string, kind: 'certificate' | 'key') => {
    if (source === undefined) return undefined;
    const isPath = 'path' in source;
    const name = where(`${envBase}_${isPath ? 'PATH' : 'DATA'}`, `tls.${key}_${isPath ? 'path' : 'data'}`);
    let bytes: Buffer;
    try {
      bytes = isPath ? readFileSync(source.path) : Buffer.from(source.data);
    } catch (err) {
      problems.push(
        `${name}: ${isPath ? source.path : 'the data'} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
      return undefined;
    }
    try {
      if (kind === 'certificate') new X509Certificate(bytes);
      else createPrivateKey(bytes);
    } catch {
      problems.push(`${name}: ${isPath ? source.path : 'the data'} holds no PEM ${kind} that can be parsed`);
      return undefined;
    }
    return bytes;
  };
  const ca = read(tls.serverCACert, 'TEMPORAL_TLS_SERVER_CA_CERT', 'server_ca_cert', 'certificate');
  const crt = read(tls.clientCert, 'TEMPORAL_TLS_CLIENT_CERT', 'client_cert', 'certificate');
  const key = read(tls.clientKey, 'TEMPORAL_TLS_CLIENT_KEY', 'client_key', 'key');
  if ((tls.clientCert === undefined) !== (tls.clientKey === undefined)) {
    problems.push(
      'TLS client certificate and key come together: set both TEMPORAL_TLS_CLIENT_CERT_PATH and ' +
        'TEMPORAL_TLS_CLIENT_KEY_PATH (or client_cert_path and client_key_path in the profile), or neither',
    );
  }
  return {
    ...(tls.serverName === undefined ? {} : { serverNameOverride: tls.serverName }),
    ...(ca === undefined ? {} : { serverRootCACertificate: ca }),
    ...(crt !== undefined && key !== undefined ? { clientCertPair: { crt, key } } : {}),
  };
}

/** The config file to read: the one TEMPORAL_CONFIG_FILE names, else the per-user default (which may be absent). */
function configFile(vars: Record<string, string>): { path: string; named: boolean; where: string } | undefined {
  const named = vars.TEMPORAL_CONFIG_FILE;
  if (named !== undefined) return { path: named, named: true, where: 'environment variable TEMPORAL_CONFIG_FILE' };
  const dir = userConfigDir(vars);
  if (dir === undefined) return undefined;
  return { path: join(dir, 'temporalio', 'temporal.toml'), named: false, where: 'the Temporal config file' };
}

/** The same directory the Temporal CLI and SDKs look in. */
function userConfigDir(vars: Record<string, string>): string | undefined {
  switch (platform()) {
    case 'win32':
      return vars.APPDATA || undefined;
    case 'darwin':
      return vars.HOME ? join(vars.HOME, 'Library', 'Application Support') : undefined;
    default: {
      const xdg = vars.XDG_CONFIG_HOME;
      if (xdg) return isAbsolute(xdg) ? xdg : undefined;
      return vars.HOME ? join(vars.HOME, '.config') : undefined;
    }
  }
}

/** The environment without unset variables: envconfig reads `undefined` as a value. */
function definedVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) vars[name] = value;
  return vars;
}
