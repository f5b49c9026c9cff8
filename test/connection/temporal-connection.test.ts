/**
 * How the Temporal connection is resolved from what users set: the config file's profiles, TEMPORAL_* variables, the
 * CLI's flags; the same resolution in the workers' settings; and errors that name the variable or the file and key
 * without showing a secret.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeTemporalConnection,
  loadTemporalConnectionConfig,
  TemporalConnectionConfigError,
} from '../../client/connection/temporal-connection';
import { describeWorkerConnection, loadSettings, workerConnectOptions } from '../../workers/settings';
import { makeCerts, type TestCerts } from './certs';

let dir: string;
let certs: TestCerts;
let configFile: string;
const API_KEY = 'tmprl-secret-api-key-0123456789';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-connection-'));
  certs = await makeCerts(dir);
  configFile = join(dir, 'temporal.toml');
  await writeFile(
    configFile,
    [
      '[profile.default]',
      'address = "temporal.internal:7233"',
      'namespace = "releases"',
      '',
      '[profile.prod]',
      'address = "prod.tmprl.example:7233"',
      'namespace = "releases-prod"',
      `api_key = "${API_KEY}"`,
      '[profile.prod.grpc_meta]',
      'x-team = "ml-platform"',
      '',
      '[profile.mtls]',
      'address = "127.0.0.1:7233"',
      '[profile.mtls.tls]',
      `server_ca_cert_path = "${certs.caCert}"`,
      `client_cert_path = "${certs.clientCert}"`,
      `client_key_path = "${certs.clientKey}"`,
      'server_name = "localhost"',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TemporalConnectionConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a configuration problem');
}

describe('the Temporal connection', () => {
  it('defaults to localhost:7233, namespace default, plaintext, when nothing is configured', () => {
    expect(loadTemporalConnectionConfig({})).toEqual({ address: 'localhost:7233', namespace: 'default' });
  });

  it('reads the default profile of TEMPORAL_CONFIG_FILE, and the default file under XDG_CONFIG_HOME', async () => {
    expect(loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: configFile })).toMatchObject({
      address: 'temporal.internal:7233',
      namespace: 'releases',
      profile: { name: 'default', file: configFile },
    });
    const xdg = join(dir, 'xdg');
    await import('node:fs/promises').then((fs) => fs.mkdir(join(xdg, 'temporalio'), { recursive: true }));
    await writeFile(join(xdg, 'temporalio', 'temporal.toml'), '[profile.default]\naddress = "from-xdg:7233"\n');
    expect(loadTemporalConnectionConfig({ XDG_CONFIG_HOME: xdg }).address).toBe('from-xdg:7233');
  });

  it('takes the profile TEMPORAL_PROFILE names: API key (so TLS on), gRPC metadata', () => {
    const config = loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'prod' });
    expect(config).toEqual({
      address: 'prod.tmprl.example:7233',
      namespace: 'releases-prod',
      apiKey: API_KEY,
      tls: true,
      metadata: { 'x-team': 'ml-platform' },
      profile: { name: 'prod', file: configFile },
    });
    // The startup line says how it connects, never with what.
    expect(describeTemporalConnection(config)).toBe(
      `prod.tmprl.example:7233 (namespace releases-prod, TLS, API key, profile prod of ${configFile})`,
    );
  });

  it('lets TEMPORAL_* variables override the profile, and explicit flags override both', () => {
    const env = {
      TEMPORAL_CONFIG_FILE: configFile,
      TEMPORAL_PROFILE: 'prod',
      TEMPORAL_ADDRESS: 'env.example:7233',
      TEMPORAL_TLS: 'false',
    };
    const fromEnv = loadTemporalConnectionConfig(env);
    expect(fromEnv).toMatchObject({ address: 'env.example:7233', namespace: 'releases-prod', tls: false });
    expect(loadTemporalConnectionConfig(env, { address: 'flag.example:7233', namespace: 'ns-flag' })).toMatchObject({
      address: 'flag.example:7233',
      namespace: 'ns-flag',
    });
    expect(loadTemporalConnectionConfig(env, { profile: 'default' }).namespace).toBe('releases');
  });

  it('reads the TLS files of an mTLS profile at once, as Buffers both SDK connections take', () => {
    const config = loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'mtls' });
    expect(config.tls).toEqual({
      serverNameOverride: 'localhost',
      serverRootCACertificate: readFileSync(certs.caCert),
      clientCertPair: { crt: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) },
    });
    expect(Buffer.isBuffer((config.tls as { serverRootCACertificate: unknown }).serverRootCACertificate)).toBe(true);
    expect(describeTemporalConnection(config)).toMatch(/^127\.0\.0\.1:7233 \(namespace default, mTLS, profile mtls/);
  });

  it('names the variable or the profile key of a TLS file that is missing or is not what it should be', () => {
    expect(
      problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: join(dir, 'no.pem') })),
    ).toBe(`environment variable TEMPORAL_TLS_SERVER_CA_CERT_PATH: ${join(dir, 'no.pem')} cannot be read (ENOENT)`);
    expect(
      problemOf(() =>
        loadTemporalConnectionConfig({
          TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientKey,
          TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
        }),
      ),
    ).toMatch(/^environment variable TEMPORAL_TLS_CLIENT_CERT_PATH: .* holds no PEM certificate that can be parsed$/);
    expect(problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert }))).toMatch(
      /client certificate and key come together/,
    );
    const broken = join(dir, 'broken.toml');
    const brokenText = `[profile.default.tls]\nserver_ca_cert_path = "${join(dir, 'gone.pem')}"\n`;
    return writeFile(broken, brokenText).then(() =>
      expect(problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: broken }))).toBe(
        `tls.server_ca_cert_path of profile "default" in ${broken}: ${join(dir, 'gone.pem')} cannot be read (ENOENT)`,
      ),
    );
  });

  it('refuses an unknown profile (listing those there), a named file that is missing, and a bad address', () => {
    expect(
      problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'qa' })),
    ).toBe(
      `environment variable TEMPORAL_PROFILE: profile "qa" is not in ${configFile} (profiles there: default, prod, mtls)`,
    );
    expect(
      problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: configFile }, { profile: 'qa' })),
    ).toMatch(/^--profile: profile "qa" is not in/);
    expect(problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: join(dir, 'none.toml') }))).toMatch(
      /^environment variable TEMPORAL_CONFIG_FILE: .*none\.toml cannot be read \(ENOENT\)/,
    );
    expect(problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_ADDRESS: 'temporal' }))).toBe(
      'environment variable TEMPORAL_ADDRESS: must be host:port, e.g. localhost:7233',
    );
    expect(problemOf(() => loadTemporalConnectionConfig({}, { address: 'a:b:c' }))).toBe(
      '--address: must be host:port, e.g. localhost:7233',
    );
  });

  it('reports a config file that is not TOML by position, without quoting the line (it may hold a key)', async () => {
    const bad = join(dir, 'bad.toml');
    await writeFile(bad, `[profile.default]\napi_key = "${API_KEY}\n`);
    const problem = problemOf(() => loadTemporalConnectionConfig({ TEMPORAL_CONFIG_FILE: bad }));
    expect(problem).toMatch(new RegExp(`^${bad} is not a valid Temporal config file at line 2, column \\d+`));
    expect(problem).not.toContain(API_KEY);
  });
});

describe("the workers' settings", () => {
  it('resolve the connection the same way, and keep TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE working', () => {
    const plain = loadSettings({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NAMESPACE: 'ml' });
    expect(plain).toMatchObject({ address: 'temporal:7233', namespace: 'ml' });
    expect(workerConnectOptions(plain)).toEqual({ address: 'temporal:7233' });

    const mtls = loadSettings({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'mtls' });
    expect(mtls.address).toBe('127.0.0.1:7233');
    expect(workerConnectOptions(mtls)).toMatchObject({
      address: '127.0.0.1:7233',
      tls: { serverNameOverride: 'localhost', clientCertPair: { crt: expect.any(Buffer) } },
    });
    expect(describeWorkerConnection(mtls)).toMatch(/^127\.0\.0\.1:7233 \(namespace default, mTLS, profile mtls/);
  });

  it('collect connection and codec problems with the other settings', () => {
    expect(() =>
      loadSettings({ TEMPORAL_ADDRESS: 'nope', MREL_CODEC_KEYS: 'k1:short', MREL_METRICS_ADDRESS: 'x' }),
    ).toThrow(
      /MREL_METRICS_ADDRESS: must be ip:port[\s\S]*environment variable TEMPORAL_ADDRESS: must be host:port[\s\S]*MREL_CODEC_KEYS: entry 1 \(key id k1\)/,
    );
  });

  it('turn the payload codec on from MREL_CODEC_KEYS and say so on the startup line', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const settings = loadSettings({ MREL_CODEC_KEYS: `k2026:${key}` });
    expect(settings.codecKeys?.map((k) => k.id)).toEqual(['k2026']);
    expect(describeWorkerConnection(settings)).toBe(
      'localhost:7233 (namespace default), payloads encrypted with key k2026',
    );
  });
});
