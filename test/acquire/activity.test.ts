/**
 * The Temporal side of acquire, run in the SDK's MockActivityEnvironment: failure mapping, heartbeats, cancellation.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, CancelledFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect } from 'vitest';
import { createAcquireActivities } from '../../activities/acquire';
import { FilesystemStore, loadManifest } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import type { ManifestRef, ModelRef } from '../../contract/types';
import { listFiles, sha256, startServer, test, writeTree } from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** The SDK logs every failed activity; here failing is the point. */
function activityEnvironment(): MockActivityEnvironment {
  return new MockActivityEnvironment(undefined, { logger: silent });
}

function modelRef(source: string, extra: Partial<ModelRef> = {}): ModelRef {
  return { name: 'tiny-model', version: '1.0.0', source, ...extra };
}

describe('acquireModel activity', () => {
  test('returns the manifest by digest and heartbeats { file, bytes } while streaming', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'a.bin': Buffer.alloc(3 << 20, 1), 'b.txt': 'b' });
    const env = activityEnvironment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => heartbeats.push(details));

    const store = new FilesystemStore(storeRoot);
    const { acquireModel } = createAcquireActivities({ store });
    const source = pathToFileURL(root).href;
    // run() cannot infer the activity's result type from its argument.
    const ref = (await env.run(acquireModel, { model: modelRef(source) })) as ManifestRef;

    expect(ref).toMatchObject({ model: 'tiny-model', version: '1.0.0', source, resolvedRevision: source });
    expect(ref).toMatchObject({ fileCount: 2, totalSize: (3 << 20) + 1 });
    expect(ref).not.toHaveProperty('files');
    const manifest = await loadManifest(store, ref);
    expect(manifest.manifestDigest).toBe(ref.manifestDigest);
    expect(manifest.files.map((f) => f.path)).toEqual(['a.bin', 'b.txt']);
    expect(heartbeats).toContainEqual({ file: 'a.bin', bytes: expect.any(Number) });
    expect(heartbeats).toContainEqual({ file: 'b.txt', bytes: 1 });
  });

  test('a digest mismatch becomes a non-retryable DigestMismatch failure', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'model.bin': 'tampered' });
    const expected = sha256('original');
    const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });
    const input = { model: modelRef(pathToFileURL(root).href, { digests: { 'model.bin': expected } }) };

    for (const run of [() => activityEnvironment().run(acquireModel, input), () => acquireModel(input)]) {
      const failure = await run().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.DigestMismatch });
      expect((failure as Error).message).toBe(
        `digest mismatch for model.bin: expected sha256 ${expected}, got ${sha256('tampered')}`,
      );
      expect((failure as ApplicationFailure).details).toEqual([
        { path: 'model.bin', expected, actual: sha256('tampered') },
      ]);
    }
  });

  test.for([
    ['s3://bucket/m', FailureType.UnsupportedSource],
    // Inside the temp directory, which the test run allows as a root: outside the roots it would be SourceNotAllowed.
    [pathToFileURL(join(tmpdir(), 'nonexistent', 'acquire-test')).href, FailureType.SourceNotFound],
    ['https://127.0.0.1:9/dir/', FailureType.InvalidRequest],
  ] as const)('%s fails non-retryably as %s', async ([source, type], { storeRoot }) => {
    const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });
    const failure = await activityEnvironment()
      .run(acquireModel, { model: modelRef(source) })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type });
  });

  test('404 is non-retryable, 500 stays a plain (retryable) error', async ({ storeRoot }) => {
    const server = await startServer((req, res) => {
      res.writeHead(req.url === '/missing.bin' ? 404 : 500);
      res.end();
    });
    try {
      const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });
      const env = activityEnvironment();
      const notFound = await env
        .run(acquireModel, { model: modelRef(`${server.origin}/missing.bin`) })
        .catch((e: unknown) => e);
      expect(notFound).toMatchObject({ nonRetryable: true, type: FailureType.SourceNotFound });

      const broken = await env
        .run(acquireModel, { model: modelRef(`${server.origin}/broken.bin`) })
        .catch((e: unknown) => e);
      expect(broken).toBeInstanceOf(Error);
      expect(broken).not.toBeInstanceOf(ApplicationFailure);
      expect((broken as Error).message).toMatch(/broken\.bin answered 500/);
    } finally {
      await server.close();
    }
  });

  test('cancellation aborts the transfer and leaves no temp file', async ({ storeRoot }) => {
    let closed: () => void = () => undefined;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    // Sends 1 MiB of a 100 MiB file, then stalls: only cancellation can end the transfer.
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': 100 << 20 });
      res.write(Buffer.alloc(1 << 20));
      res.on('close', closed);
    });
    try {
      const env = activityEnvironment();
      env.once('heartbeat', () => env.cancel());
      const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });

      const failure = await env
        .run(acquireModel, { model: modelRef(`${server.origin}/big.bin`) })
        .catch((e: unknown) => e);

      expect(failure).toBeInstanceOf(CancelledFailure);
      await connectionClosed;
      expect(await listFiles(storeRoot)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
