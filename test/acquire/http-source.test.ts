import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  acquireArtifacts,
  DigestMismatchError,
  InvalidRequestError,
  SourceNotFoundError,
  SourceRejectedError,
  SourceUnavailableError,
  UnsafePathError,
} from '../../activities/acquire';
import type { ModelRef } from '../../contract/types';
import { listFiles, sha256, startServer, test, type LocalServer } from './fixtures';

const FILES: Record<string, string> = {
  '/models/tiny.onnx': 'onnx weights',
  '/models/dir/config.json': '{"layers": 2}',
  '/models/dir/weights/model%20v1.bin': 'binary weights',
};

let server: LocalServer;

beforeAll(async () => {
  server = await startServer((req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/status/')) {
      res.writeHead(Number(url.slice('/status/'.length)));
      res.end('nope');
      return;
    }
    const body = FILES[url];
    if (body === undefined) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { etag: `"${sha256(body).slice(0, 12)}"`, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

afterAll(async () => {
  await server.close();
});

function modelRef(source: string, extra: Partial<ModelRef> = {}): ModelRef {
  return { name: 'web-model', version: '2.0.0', source, ...extra };
}

describe('https:// / http:// source', () => {
  test('a URL to one file is a one-file model, pinned by its ETag', async ({ storeRoot }) => {
    const source = `${server.origin}/models/tiny.onnx`;
    const manifest = await acquireArtifacts(modelRef(source), { storeRoot });
    expect(manifest.files).toEqual([{ path: 'tiny.onnx', size: 12, sha256: sha256('onnx weights') }]);
    expect(manifest.resolvedRevision).toBe(`${source}#etag=${sha256('onnx weights').slice(0, 12)}`);
  });

  test('a directory URL takes its files from model.files', async ({ storeRoot }) => {
    const source = `${server.origin}/models/dir/`;
    const manifest = await acquireArtifacts(modelRef(source, { files: ['config.json', 'weights/model v1.bin'] }), {
      storeRoot,
    });
    expect(manifest.files).toEqual([
      { path: 'config.json', size: 13, sha256: sha256('{"layers": 2}') },
      { path: 'weights/model v1.bin', size: 14, sha256: sha256('binary weights') },
    ]);
    expect(manifest.resolvedRevision).toBe(source);
  });

  test('a directory URL takes its files from the keys of model.digests', async ({ storeRoot }) => {
    const digests = { 'config.json': sha256('{"layers": 2}') };
    const manifest = await acquireArtifacts(modelRef(`${server.origin}/models/dir/`, { digests }), { storeRoot });
    expect(manifest.files.map((f) => f.path)).toEqual(['config.json']);
  });

  test('a directory URL without a file list explains what to do', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef(`${server.origin}/models/dir/`), { storeRoot }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidRequestError);
    expect((error as Error).message).toMatch(/cannot list it: name the files in model\.files/);
    expect(server.requests.some((r) => r.url === '/models/dir/')).toBe(false);
  });

  test('a listed path that escapes the directory is refused before any request', async ({ storeRoot }) => {
    const before = server.requests.length;
    await expect(
      acquireArtifacts(modelRef(`${server.origin}/models/dir/`, { files: ['../tiny.onnx'] }), { storeRoot }),
    ).rejects.toThrow(UnsafePathError);
    expect(server.requests.length).toBe(before);
  });

  test('a digest mismatch from a web server is refused', async ({ storeRoot }) => {
    const digests = { 'config.json': sha256('something else') };
    await expect(
      acquireArtifacts(modelRef(`${server.origin}/models/dir/`, { digests }), { storeRoot }),
    ).rejects.toThrow(DigestMismatchError);
    expect(await listFiles(join(storeRoot, 'sha256'))).toEqual([]);
  });

  test('404 is SourceNotFound naming URL and status', async ({ storeRoot }) => {
    const source = `${server.origin}/models/missing.bin`;
    const error = await acquireArtifacts(modelRef(source), { storeRoot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceNotFoundError);
    expect((error as Error).message).toBe(`GET ${source} answered 404 Not Found`);
  });

  test('other 4xx is SourceRejected', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef(`${server.origin}/status/403`), { storeRoot }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceRejectedError);
    expect((error as Error).message).toMatch(/\/status\/403 answered 403 Forbidden$/);
  });

  test.for([500, 503, 429])('%i is transient (a plain error, retried)', async (status, { storeRoot }) => {
    const error = await acquireArtifacts(modelRef(`${server.origin}/status/${status}`), { storeRoot }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect((error as Error).message).toContain(`answered ${status}`);
  });

  test('a refused connection is transient', async ({ storeRoot }) => {
    const gone = await startServer(() => undefined);
    await gone.close();
    const error = await acquireArtifacts(modelRef(`${gone.origin}/model.bin`), { storeRoot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
  });

  test('a port that fetch never uses is permanent, not retried for minutes', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef('http://127.0.0.1:22/model.bin'), { storeRoot }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceRejectedError);
    expect((error as Error).message).toMatch(/cannot succeed: bad port/);
  });

  test('a transfer cut short is transient and leaves no temp file', async ({ storeRoot }) => {
    const cutter = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(100));
      setTimeout(() => res.destroy(), 20);
    });
    try {
      const error = await acquireArtifacts(modelRef(`${cutter.origin}/model.bin`), { storeRoot }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SourceUnavailableError);
      expect((error as Error).message).toMatch(/^storing model\.bin from http:\/\/127\.0\.0\.1:\d+\/model\.bin failed/);
      expect(await listFiles(storeRoot)).toEqual([]);
    } finally {
      await cutter.close();
    }
  });
});
