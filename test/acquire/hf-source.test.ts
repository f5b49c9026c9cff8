/**
 * A local server speaking the Hub subset that acquire uses: the revision endpoint, and resolve/<sha>/<file>, which
 * (like the real Hub for LFS files) redirects to a CDN on another origin.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  acquireArtifacts,
  InvalidRequestError,
  SourceNotFoundError,
  SourceRejectedError,
  UnsafePathError,
} from '../../activities/acquire';
import { parseHfSource } from '../../activities/acquire/hf-source';
import type { ModelRef } from '../../contract/types';
import { listFiles, sha256, startServer, test, type LocalServer } from './fixtures';

const SHA = 'a9c0f3e1b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e1';
const TOKEN = 'hf_test_token';
const CONFIG = '{"architectures": ["TinyNet"]}';
const WEIGHTS = Buffer.alloc(200_000, 3);

let hub: LocalServer;
let cdn: LocalServer;

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  cdn = await startServer((req, res) => {
    if (req.url === '/blobs/weights') res.end(WEIGHTS);
    else json(res, 404, { error: 'no such blob' });
  });
  hub = await startServer((req, res) => {
    const url = req.url ?? '';
    const repos: Record<string, string[]> = {
      'org/tiny': ['config.json', 'weights/model.safetensors'],
      'org/evil': ['config.json', '../evil'],
    };
    const info = /^\/api\/models\/(org\/[a-z]+)\/revision\/(.+)$/.exec(url);
    if (info) {
      const siblings = repos[info[1]!];
      if (info[1] === 'org/private' && req.headers.authorization !== `Bearer ${TOKEN}`) {
        json(res, 401, { error: 'Invalid credentials' });
      } else if (info[1] === 'org/private') {
        json(res, 200, { sha: SHA, siblings: [{ rfilename: 'config.json' }] });
      } else if (siblings) {
        json(res, 200, { id: info[1], sha: SHA, siblings: siblings.map((rfilename) => ({ rfilename })) });
      } else {
        json(res, 404, { error: 'Repository not found' });
      }
      return;
    }
    if (url === `/org/tiny/resolve/${SHA}/config.json` || url === `/org/private/resolve/${SHA}/config.json`) {
      res.end(CONFIG);
    } else if (url === `/org/tiny/resolve/${SHA}/weights/model.safetensors`) {
      res.writeHead(302, { location: `${cdn.origin}/blobs/weights` });
      res.end();
    } else {
      json(res, 404, { error: 'Entry not found' });
    }
  });
});

afterAll(async () => {
  await hub.close();
  await cdn.close();
});

function modelRef(source: string, extra: Partial<ModelRef> = {}): ModelRef {
  return { name: 'tiny', version: '0.1.0', source, ...extra };
}

describe('hf:// source', () => {
  test('lists the revision, pins it to the commit sha, and follows redirects', async ({ storeRoot }) => {
    const manifest = await acquireArtifacts(modelRef('hf://org/tiny@main'), {
      storeRoot,
      hfEndpoint: `${hub.origin}/`,
      hfToken: TOKEN,
    });

    expect(manifest.resolvedRevision).toBe(SHA);
    expect(manifest.files).toEqual([
      { path: 'config.json', size: CONFIG.length, sha256: sha256(CONFIG) },
      { path: 'weights/model.safetensors', size: WEIGHTS.length, sha256: sha256(WEIGHTS) },
    ]);
    expect(hub.requests.map((r) => r.url)).toEqual(
      expect.arrayContaining([
        '/api/models/org/tiny/revision/main',
        `/org/tiny/resolve/${SHA}/config.json`,
        `/org/tiny/resolve/${SHA}/weights/model.safetensors`,
      ]),
    );
    for (const request of hub.requests) expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    // The token stays with the Hub: fetch drops it on the cross-origin redirect to the CDN.
    expect(cdn.requests.map((r) => [r.url, r.headers.authorization])).toEqual([['/blobs/weights', undefined]]);
  });

  test('revision defaults to main; a revision with "/" is sent encoded', async ({ storeRoot }) => {
    await acquireArtifacts(modelRef('hf://org/tiny'), { storeRoot, hfEndpoint: hub.origin });
    await acquireArtifacts(modelRef('hf://org/tiny@refs/pr/1'), { storeRoot, hfEndpoint: hub.origin });
    const infoRequests = hub.requests.map((r) => r.url).filter((u) => u.startsWith('/api/models/org/tiny/'));
    expect(infoRequests).toContain('/api/models/org/tiny/revision/main');
    expect(infoRequests).toContain('/api/models/org/tiny/revision/refs%2Fpr%2F1');
  });

  test('no Authorization header without a token', async ({ storeRoot }) => {
    const before = hub.requests.length;
    await acquireArtifacts(modelRef('hf://org/tiny'), { storeRoot, hfEndpoint: hub.origin });
    for (const request of hub.requests.slice(before)) expect(request.headers.authorization).toBeUndefined();
  });

  test('a sibling named ../evil is refused before any file is fetched', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef('hf://org/evil'), { storeRoot, hfEndpoint: hub.origin }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnsafePathError);
    expect((error as Error).message).toContain('"../evil"');
    expect(hub.requests.some((r) => r.url.startsWith('/org/evil/resolve/'))).toBe(false);
    expect(await listFiles(storeRoot)).toEqual([]);
  });

  test('an unknown repository is SourceNotFound', async ({ storeRoot }) => {
    await expect(acquireArtifacts(modelRef('hf://org/nothing'), { storeRoot, hfEndpoint: hub.origin })).rejects.toThrow(
      SourceNotFoundError,
    );
  });

  test('a private repository without a token is SourceRejected, with a hint', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef('hf://org/private'), { storeRoot, hfEndpoint: hub.origin }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceRejectedError);
    expect((error as Error).message).toMatch(/answered 401 Unauthorized \(.*HF_TOKEN\)/);

    const manifest = await acquireArtifacts(modelRef('hf://org/private'), {
      storeRoot,
      hfEndpoint: hub.origin,
      hfToken: TOKEN,
    });
    expect(manifest.resolvedRevision).toBe(SHA);
  });

  test('an endpoint that is not a Hub is SourceRejected', async ({ storeRoot }) => {
    const notHub = await startServer((_req, res) => json(res, 200, { hello: 'world' }));
    try {
      const error = await acquireArtifacts(modelRef('hf://org/tiny'), { storeRoot, hfEndpoint: notHub.origin }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SourceRejectedError);
      expect((error as Error).message).toMatch(/did not answer with a commit sha and file list.*response\.sha/);
    } finally {
      await notHub.close();
    }
  });

  test('malformed references are refused with the expected form', () => {
    expect(parseHfSource('hf://org/repo@v1.2')).toEqual({ repoId: 'org/repo', revision: 'v1.2' });
    expect(parseHfSource('hf://gpt2')).toEqual({ repoId: 'gpt2', revision: 'main' });
    for (const bad of ['hf://org/repo@', 'hf://a/b/c', 'hf://../x', 'hf://']) {
      expect(() => parseHfSource(bad)).toThrow(InvalidRequestError);
    }
  });
});
