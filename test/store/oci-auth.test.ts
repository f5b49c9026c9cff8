/**
 * Registry credentials as users keep them (the Docker config file named by DOCKER_CONFIG) against real registries
 * that demand them: htpasswd (Basic) and token auth through a token service. Wrong credentials fail with a message
 * that says what to do and never holds the password.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCredentialLookup, dockerConfigPath, RegistryError } from '../../activities/registry';
import { OciStore } from '../../activities/store/oci-store';
import { artifactStoreFromEnv } from '../../activities/store/select';
import { basicAuthEntry, dockerConfigDir, startTestRegistry, type TestRegistry } from './oci-registry';

const USER = 'release-bot';
const PASSWORD = 'Sup3r-Secret-Pa55word';
const WRONG = 'Wr0ng-Pa55word-Never-Shown';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mrel-oci-auth-'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function storeWith(registry: TestRegistry, dockerConfig: string, name: string): OciStore {
  return new OciStore(
    { registry: registry.registry, repository: 'modelrelease/store' },
    { cacheDir: join(work, name), credentials: dockerCredentialLookup({ env: { DOCKER_CONFIG: dockerConfig } }) },
  );
}

async function roundTrip(store: OciStore, content: string): Promise<string> {
  const blob = await store.put(Readable.from([Buffer.from(content)]), { path: 'weights.bin' });
  return (await store.read(blob.sha256, 1024)).toString('utf8');
}

function expectDeniedWithoutSecret(error: unknown, registry: string): void {
  expect(error).toBeInstanceOf(RegistryError);
  expect((error as RegistryError).code).toBe('RegistryAccessDenied');
  const message = (error as Error).message;
  expect(message).toContain(registry);
  expect(message).toMatch(/docker login/);
  expect(message).not.toContain(WRONG);
  expect(message).not.toContain(PASSWORD);
  expect(message).not.toContain(Buffer.from(`${USER}:${WRONG}`).toString('base64'));
}

describe('registry with htpasswd (Basic) auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startTestRegistry({ auth: { kind: 'htpasswd', username: USER, password: PASSWORD } });
  });
  afterAll(async () => registry?.stop());

  it('pushes and pulls with the auths entry of the Docker config file', async () => {
    const config = await dockerConfigDir({ auths: { [registry.registry]: basicAuthEntry(USER, PASSWORD) } });
    expect(await roundTrip(storeWith(registry, config, 'basic-ok'), 'basic auth blob')).toBe('basic auth blob');
  });

  it('takes username and password fields, and keys written as URLs', async () => {
    const config = await dockerConfigDir({
      auths: { [`https://${registry.registry}/v1/`]: { username: USER, password: PASSWORD } },
    });
    expect(await roundTrip(storeWith(registry, config, 'basic-fields'), 'fields')).toBe('fields');
  });

  it('runs the credential helper the config names for the registry', async () => {
    const bin = join(work, 'bin');
    await rm(bin, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(bin));
    const helper = join(bin, 'docker-credential-mrel-test');
    await writeFile(
      helper,
      [
        '#!/bin/sh',
        'read server',
        `if [ "$server" = "${registry.registry}" ]; then`,
        `  printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASSWORD}"}' "$server"`,
        'else echo "credentials not found in native keychain"; exit 1; fi',
        '',
      ].join('\n'),
    );
    await chmod(helper, 0o755);
    const config = await dockerConfigDir({ credHelpers: { [registry.registry]: 'mrel-test' } });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path ?? ''}`;
    try {
      expect(await roundTrip(storeWith(registry, config, 'basic-helper'), 'from helper')).toBe('from helper');
    } finally {
      process.env.PATH = path;
    }
  });

  it('fails with wrong credentials, naming the registry and never the password', async () => {
    const config = await dockerConfigDir({ auths: { [registry.registry]: basicAuthEntry(USER, WRONG) } });
    const error = await roundTrip(storeWith(registry, config, 'basic-wrong'), 'x').catch((e) => e);
    expectDeniedWithoutSecret(error, registry.registry);
  });

  it('fails without credentials, saying to log in', async () => {
    const config = await dockerConfigDir({});
    const error = await storeWith(registry, config, 'basic-none')
      .size('0'.repeat(64))
      .catch((e) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toMatch(/docker login/);
  });

  it('is what a worker gets from MREL_ARTIFACT_STORE and DOCKER_CONFIG', async () => {
    const config = await dockerConfigDir({ auths: { [registry.registry]: basicAuthEntry(USER, PASSWORD) } });
    const store = artifactStoreFromEnv(
      { MREL_ARTIFACT_STORE: `oci://${registry.registry}/modelrelease/store`, DOCKER_CONFIG: config },
      join(work, 'data'),
    );
    expect(store).toBeInstanceOf(OciStore);
    const blob = await store.putBytes('through the environment');
    expect((await store.read(blob.sha256, 100)).toString()).toBe('through the environment');
  });
});

describe('registry with token auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startTestRegistry({ auth: { kind: 'token', username: USER, password: PASSWORD } });
  });
  afterAll(async () => registry?.stop());

  it('gets a pull,push token from the token service with the configured credentials', async () => {
    const config = await dockerConfigDir({ auths: { [registry.registry]: basicAuthEntry(USER, PASSWORD) } });
    const store = storeWith(registry, config, 'token-ok');
    const large = 'x'.repeat(3 * 1024 * 1024);
    expect(await roundTrip(store, 'token auth blob')).toBe('token auth blob');
    const blob = await store.put(Readable.from([Buffer.from(large)]), { path: 'big.bin' });
    expect(await store.size(blob.sha256)).toBe(large.length);
    expect(registry.tokenRequests.length).toBeGreaterThan(0);
    expect(registry.tokenRequests.at(-1)).toMatchObject({
      user: USER,
      scopes: expect.arrayContaining(['repository:modelrelease/store:pull,push']),
    });
  });

  it('fails with wrong credentials, naming the registry and never the password', async () => {
    const config = await dockerConfigDir({ auths: { [registry.registry]: basicAuthEntry(USER, WRONG) } });
    const error = await roundTrip(storeWith(registry, config, 'token-wrong'), 'x').catch((e) => e);
    expectDeniedWithoutSecret(error, registry.registry);
  });
});

describe('Docker config file', () => {
  it('is $DOCKER_CONFIG/config.json, else ~/.docker/config.json', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/mrel/docker', HOME: '/home/x' })).toBe(
      '/etc/mrel/docker/config.json',
    );
    expect(dockerConfigPath({ HOME: '/home/x' })).toBe('/home/x/.docker/config.json');
  });

  it('names a broken file without repeating what it holds', async () => {
    const dir = await mkdtemp(join(work, 'broken-'));
    await writeFile(join(dir, 'config.json'), `{"auths": {"h": {"auth": "${PASSWORD}"`);
    const error = await dockerCredentialLookup({ env: { DOCKER_CONFIG: dir } })('h').catch((e) => e);
    expect((error as Error).message).toContain(join(dir, 'config.json'));
    expect((error as Error).message).not.toContain(PASSWORD);
  });

  it('means anonymous access when it does not exist', async () => {
    expect(await dockerCredentialLookup({ env: { DOCKER_CONFIG: join(work, 'nowhere') } })('h')).toBeUndefined();
  });
});
