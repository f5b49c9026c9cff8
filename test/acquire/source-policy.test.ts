/**
 * Sources come only from the roots, hosts and networks that config/sources.yaml allows: the door refuses the rest
 * with field-named problems, and the acquire activity refuses it again (non-retryable, nothing stored) for
 * whatever reaches its task queue past the door. Each test passes its own policy; the test run's environment
 * (vitest.config.ts) would otherwise allow the temp directory and 127.0.0.0/8.
 */
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, vi } from 'vitest';
import { stringify } from 'yaml';
import { createAcquireActivities, SourceNotAllowedError, acquireArtifacts } from '../../activities/acquire';
import { checkUrl, refusedRange, type SourcePolicy } from '../../activities/common/source-policy';
import { FilesystemStore } from '../../activities/store';
import { ReleaseClientError, validateRequest } from '../../client/release-client';
import { ConfigError, DEFAULT_CONFIG_DIR, loadSourcePolicy } from '../../config/loader';
import { FailureType } from '../../contract/definitions';
import type { ModelRef } from '../../contract/types';
import { listFiles, startServer, test, writeTree, type LocalServer } from './fixtures';

let server: LocalServer;
let port: number;

beforeAll(async () => {
  server = await startServer((_req, res) => {
    res.writeHead(200);
    res.end('weights from an internal service');
  });
  port = Number(new URL(server.origin).port);
});
afterAll(() => server.close());

/** Hosts are listed so that the refusals below come from the address ranges, not from the host allowlist. */
function policyFor(tmp: string): SourcePolicy {
  return {
    roots: [join(tmp, 'models')],
    hosts: ['localhost', '127.0.0.1', '169.254.169.254', '::1'],
    networks: [],
  };
}

/** A model directory inside the root with a symlink that leads out of it, and a secret outside. */
async function escapingSymlink(tmp: string): Promise<string> {
  await writeTree(join(tmp, 'outside'), { 'secret.txt': 'SECRET_TOKEN=abc123' });
  await mkdir(join(tmp, 'models'), { recursive: true });
  await symlink(join(tmp, 'outside'), join(tmp, 'models', 'escape'));
  return pathToFileURL(join(tmp, 'models', 'escape')).href;
}

const refusedSources = (tmp: string, symlinkSource: string) => [
  { source: 'file:///etc', problem: /^model\.source: \/etc is outside the allowed file roots \(.*models\)/ },
  {
    source: 'file:///proc/self/environ',
    problem: /^model\.source: \/proc\/self\/environ is under \/proc, which is never/,
  },
  { source: symlinkSource, problem: /is outside the allowed file roots .*\(its real path, with symlinks resolved\)/ },
  { source: `http://127.0.0.1:${port}/model.bin`, problem: /^model\.source: 127\.0\.0\.1 is a loopback address/ },
  { source: 'http://169.254.169.254/latest/meta-data/', problem: /^model\.source: 169\.254\.169\.254 is a link-local/ },
  { source: 'http://[::1]/model.bin', problem: /^model\.source: ::1 is a loopback address/ },
  {
    source: `http://localhost:${port}/model.bin`,
    problem: /^model\.source: localhost resolves to (127\.0\.0\.1|::1), a loopback/,
  },
  {
    source: 'https://example.org/model.bin',
    problem: /^model\.source: host example\.org is not an allowed source host/,
  },
  { source: pathToFileURL(join(tmp, 'elsewhere')).href, problem: /is outside the allowed file roots/ },
];

describe('the door', () => {
  test('refuses sources outside config/sources.yaml with one field-named problem each', async ({ tmp }) => {
    const configDir = join(tmp, 'config');
    await cp(DEFAULT_CONFIG_DIR, configDir, { recursive: true });
    await writeFile(join(configDir, 'sources.yaml'), stringify(policyFor(tmp)));
    // Only the file counts here: the test run's additions for the other tests are taken away.
    for (const name of ['MREL_SOURCE_ROOTS', 'MREL_SOURCE_HOSTS', 'MREL_SOURCE_NETWORKS']) vi.stubEnv(name, '');
    try {
      const symlinkSource = await escapingSymlink(tmp);
      const before = server.requests.length;
      for (const { source, problem } of refusedSources(tmp, symlinkSource)) {
        const error = await validateRequest(request(source), configDir).catch((e: unknown) => e);
        expect(error, source).toBeInstanceOf(ReleaseClientError);
        expect((error as ReleaseClientError).code).toBe('INVALID_REQUEST');
        expect((error as ReleaseClientError).problems, source).toEqual([expect.stringMatching(problem)]);
      }
      expect(server.requests.length).toBe(before);

      await writeTree(join(tmp, 'models', 'ok'), { 'model.bin': 'weights' });
      const dataset = join(tmp, 'outside', 'secret.txt');
      const ok = request(pathToFileURL(join(tmp, 'models', 'ok')).href, pathToFileURL(dataset).href);
      const error = (await validateRequest(ok, configDir).catch((e: unknown) => e)) as ReleaseClientError;
      expect(error.problems).toEqual([expect.stringMatching(/^evaluation\.dataset: .*secret\.txt is outside/)]);
      const proc = request(pathToFileURL(join(tmp, 'models', 'ok')).href, 'file:///proc/self/environ');
      const procError = (await validateRequest(proc, configDir).catch((e: unknown) => e)) as ReleaseClientError;
      expect(procError.problems).toEqual([
        expect.stringMatching(/^evaluation\.dataset: \/proc\/self\/environ is under/),
      ]);

      const accepted = await validateRequest(request(pathToFileURL(join(tmp, 'models', 'ok')).href), configDir);
      expect(accepted.model.source).toBe(pathToFileURL(join(tmp, 'models', 'ok')).href);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  test('the shipped policy allows the examples and the Hub, nothing private', async () => {
    for (const name of ['MREL_SOURCE_ROOTS', 'MREL_SOURCE_HOSTS', 'MREL_SOURCE_NETWORKS']) vi.stubEnv(name, '');
    try {
      const policy = await loadSourcePolicy();
      expect(policy.roots).toEqual([join(DEFAULT_CONFIG_DIR, '..', 'examples')]);
      expect(policy.networks).toEqual([]);
      const noLookup = async () => ['18.164.174.118'];
      for (const url of [
        'https://huggingface.co/api/models/x',
        'https://cdn-lfs.hf.co/x',
        'https://cdn-lfs-us-1.huggingface.co/x',
      ]) {
        await expect(checkUrl(url, policy, 'model.source', { lookup: noLookup })).resolves.toBeUndefined();
      }
      await expect(
        checkUrl('https://evilhuggingface.co/x', policy, 'model.source', { lookup: noLookup }),
      ).rejects.toThrow(SourceNotAllowedError);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  test('environment additions are validated, naming the variable', async () => {
    await expect(loadSourcePolicy(DEFAULT_CONFIG_DIR, { MREL_SOURCE_NETWORKS: '10.0.0.0/33' })).rejects.toThrow(
      /environment variable MREL_SOURCE_NETWORKS \(item 1\): must be a CIDR/,
    );
    await expect(loadSourcePolicy(DEFAULT_CONFIG_DIR, { MREL_SOURCE_ROOTS: 'relative/dir' })).rejects.toThrow(
      ConfigError,
    );
    const added = await loadSourcePolicy(DEFAULT_CONFIG_DIR, {
      MREL_SOURCE_ROOTS: '/srv/models:/srv/data',
      MREL_SOURCE_HOSTS: 'models.internal, *.mirror.internal',
      MREL_SOURCE_NETWORKS: '10.20.0.0/16',
    });
    expect(added.roots).toEqual(expect.arrayContaining(['/srv/models', '/srv/data']));
    expect(added.hosts).toEqual(expect.arrayContaining(['huggingface.co', 'models.internal', '*.mirror.internal']));
    expect(added.networks).toEqual(['10.20.0.0/16']);
  });
});

describe('the acquire activity', () => {
  test('refuses the same sources itself: non-retryable SourceNotAllowed, nothing stored', async ({
    tmp,
    storeRoot,
  }) => {
    const symlinkSource = await escapingSymlink(tmp);
    const { acquireModel } = createAcquireActivities({
      store: new FilesystemStore(storeRoot),
      sourcePolicy: policyFor(tmp),
    });
    const before = server.requests.length;
    for (const { source, problem } of refusedSources(tmp, symlinkSource)) {
      const failure = await new MockActivityEnvironment()
        .run(acquireModel, { model: modelRef(source) })
        .catch((e: unknown) => e);
      expect(failure, source).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.SourceNotAllowed });
      expect((failure as Error).message).toMatch(problem);
      expect((failure as Error).message).not.toContain('abc123');
    }
    expect(server.requests.length).toBe(before);
    expect(await listFiles(storeRoot)).toEqual([]);
  });

  test('the Hugging Face endpoint is checked like any other host', async ({ tmp, storeRoot }) => {
    const error = await acquireArtifacts(modelRef('hf://acme/model@main'), {
      storeRoot,
      hfEndpoint: server.origin,
      sourcePolicy: { ...policyFor(tmp), hosts: ['huggingface.co'] },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceNotAllowedError);
    expect((error as Error).message).toMatch(/^model\.source: host 127\.0\.0\.1 is not an allowed source host/);
    expect(await listFiles(storeRoot)).toEqual([]);
  });
});

describe('redirects', () => {
  let internal: LocalServer;
  let front: LocalServer;

  beforeAll(async () => {
    // 127.0.0.2 is loopback too (all of 127/8 on Linux): the internal service the redirect tries to reach.
    internal = await startServer((_req, res) => {
      res.writeHead(200);
      res.end('internal secret');
    }, '127.0.0.2');
    front = await startServer((req, res) => {
      if (req.url === '/direct.bin') {
        res.writeHead(200);
        res.end('public weights');
        return;
      }
      res.writeHead(302, { location: `${internal.origin}/model.bin` });
      res.end();
    });
  });
  afterAll(async () => {
    await internal.close();
    await front.close();
  });

  /** localhost (127.0.0.1) is allowed by name and network; 127.0.0.2 by name only, so its address is refused. */
  const policy: SourcePolicy = {
    roots: [],
    hosts: ['localhost', '127.0.0.2'],
    networks: ['127.0.0.1/32', '::1/128'],
  };
  const viaLocalhost = (url: string) => url.replace('127.0.0.1', 'localhost');

  test('an allowed host is fetched; its redirect to a disallowed address is refused before it is followed', async ({
    storeRoot,
  }) => {
    const direct = await acquireArtifacts(modelRef(viaLocalhost(`${front.origin}/direct.bin`)), {
      storeRoot,
      sourcePolicy: policy,
    });
    expect(direct.files.map((f) => f.path)).toEqual(['direct.bin']);

    const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot), sourcePolicy: policy });
    const failure = await new MockActivityEnvironment()
      .run(acquireModel, { model: modelRef(viaLocalhost(`${front.origin}/model.bin`)) })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.SourceNotAllowed });
    expect((failure as Error).message).toMatch(
      /^model\.source: http:\/\/localhost:\d+\/model\.bin redirected to http:\/\/127\.0\.0\.2:\d+, which is refused: 127\.0\.0\.2 is a loopback address/,
    );
    expect(internal.requests).toEqual([]);
    expect(front.requests.map((r) => r.url)).toEqual(['/direct.bin', '/model.bin']);
  });
});

describe('address ranges', () => {
  test.for([
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fd00::1', 'private (unique local)'],
    ['::ffff:127.0.0.1', 'IPv4-mapped IPv6'],
    ['::ffff:10.0.0.1', 'IPv4-mapped IPv6'],
  ] as const)('%s is refused as %s unless a network covers it', ([address, range]) => {
    expect(refusedRange(address, [])).toBe(range);
    expect(refusedRange(address, ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'])).toBe(
      ['10.', '172.', '192.', '100.', '::ffff:10.'].some((p) => address.startsWith(p)) ? undefined : range,
    );
  });

  test('public addresses pass', () => {
    expect(refusedRange('18.164.174.118', [])).toBeUndefined();
    expect(refusedRange('2600:9000:2000::1', [])).toBeUndefined();
  });
});

function modelRef(source: string): ModelRef {
  return { name: 'policy-model', version: '1.0.0', source };
}

function request(source: string, dataset?: string) {
  return {
    model: { name: 'policy-model', version: '1.0.0', source },
    environment: 'production',
    policy: 'default',
    requestedBy: 'ci',
    team: 'risk',
    traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
    ...(dataset ? { evaluation: { dataset, label: 'approved', protected: ['group'], favorable: 1 } } : {}),
  };
}
