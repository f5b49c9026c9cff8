import { mkdir, readFile, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect } from 'vitest';
import {
  acquireArtifacts,
  createAcquireActivities,
  DigestMismatchError,
  EmptyModelError,
  InvalidRequestError,
  SourceNotFoundError,
  storePath,
  UnsafePathError,
  UnsupportedSourceError,
} from '../../activities/acquire';
import { FilesystemStore, loadManifest, storeManifest } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import type { ModelRef } from '../../contract/types';
import { listFiles, sha256, test, writeTree } from './fixtures';

const TREE = {
  'config.json': '{"hidden_size": 8}\n',
  'weights/layer-0.bin': Buffer.alloc(70_000, 7),
  'weights/deep/layer-1.bin': Buffer.from('layer one'),
  'tokenizer/vocab.txt': 'a\nb\nc\n',
  'empty.txt': '',
};

function modelRef(source: string, extra: Partial<ModelRef> = {}): ModelRef {
  return { name: 'tiny-model', version: '1.0.0', source, ...extra };
}

function fileUri(path: string): string {
  return pathToFileURL(path).href;
}

describe('file:// source', () => {
  test('stores a nested directory and describes it by digest', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, TREE);

    const manifest = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });

    const expected = Object.entries(TREE)
      .map(([path, content]) => ({ path, size: Buffer.byteLength(content), sha256: sha256(content) }))
      .sort((a, b) => (a.path < b.path ? -1 : 1));
    expect(manifest.files).toEqual(expected);
    expect(manifest.totalSize).toBe(expected.reduce((n, f) => n + f.size, 0));
    expect(manifest).toMatchObject({
      model: 'tiny-model',
      version: '1.0.0',
      source: fileUri(root),
      // The source URI, never the worker's host path (nor the store's).
      resolvedRevision: fileUri(root),
    });
    expect(manifest).not.toHaveProperty('storeRoot');
    expect(JSON.stringify(manifest)).not.toContain(storeRoot);
    expect(manifest.manifestDigest).toBe(sha256(expected.map((f) => `${f.path}\0${f.sha256}\n`).join('')));
    for (const file of expected) {
      const stored = await readFile(storePath(storeRoot, file.sha256));
      expect(sha256(stored)).toBe(file.sha256);
    }
    expect(storePath(storeRoot, expected[0]!.sha256)).toBe(
      join(storeRoot, 'sha256', expected[0]!.sha256.slice(0, 2), expected[0]!.sha256),
    );
    const store = new FilesystemStore(storeRoot);
    const ref = await storeManifest(store, manifest);
    expect(ref).toMatchObject({ manifestDigest: manifest.manifestDigest, fileCount: 5, emptyFiles: ['empty.txt'] });
    expect(await loadManifest(store, ref)).toEqual(manifest);
    expect(await listFiles(join(storeRoot, 'tmp'))).toEqual([]);
  });

  test('a second acquire reuses the store and yields the same manifest', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, TREE);
    const first = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });
    const blob = storePath(storeRoot, first.files[0]!.sha256);
    const before = await stat(blob);

    const second = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });

    expect(second).toEqual(first);
    // Same inode: the existing blob was kept, the fresh copy dropped.
    expect((await stat(blob)).ino).toBe(before.ino);
    expect(await listFiles(join(storeRoot, 'tmp'))).toEqual([]);
  });

  test('identical files are stored once', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'a.bin': 'same', 'b/a.bin': 'same' });
    const manifest = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });
    expect(manifest.files.map((f) => f.path)).toEqual(['a.bin', 'b/a.bin']);
    expect(await listFiles(join(storeRoot, 'sha256'))).toHaveLength(1);
  });

  test('a file:// URL to a single file is a one-file model', async ({ tmp, storeRoot }) => {
    const file = join(tmp, 'model.onnx');
    await writeFile(file, 'onnx bytes');
    const manifest = await acquireArtifacts(modelRef(fileUri(file)), { storeRoot });
    expect(manifest.files).toEqual([{ path: 'model.onnx', size: 10, sha256: sha256('onnx bytes') }]);
  });

  test('symlinks inside the root are stored as the content they point to', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'blobs/abc': 'weights', 'shared/notes.md': 'notes' });
    await symlink('blobs/abc', join(root, 'model.bin'));
    await symlink(join(root, 'shared'), join(root, 'docs'));

    const manifest = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });

    expect(manifest.files.map((f) => [f.path, f.sha256])).toEqual([
      ['blobs/abc', sha256('weights')],
      ['docs/notes.md', sha256('notes')],
      ['model.bin', sha256('weights')],
      ['shared/notes.md', sha256('notes')],
    ]);
  });

  test('a symlink out of the root is refused, naming the link and its target', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'config.json': '{}' });
    await writeTree(tmp, { 'secret.txt': 'do not ship' });
    await symlink('../secret.txt', join(root, 'weights.bin'));

    const error = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnsafePathError);
    expect((error as Error).message).toContain('weights.bin');
    expect((error as Error).message).toContain(await realpath(join(tmp, 'secret.txt')));
    expect(await listFiles(storeRoot)).toEqual([]);
  });

  test('a symlinked directory out of the root is refused too', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'config.json': '{}' });
    await writeTree(tmp, { 'outside/key.pem': 'key' });
    await symlink(join(tmp, 'outside'), join(root, 'certs'));
    await expect(acquireArtifacts(modelRef(fileUri(root)), { storeRoot })).rejects.toThrow(UnsafePathError);
  });

  test('a symlink loop is refused instead of walked forever', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'sub/config.json': '{}' });
    await symlink('..', join(root, 'sub', 'again'));
    await expect(acquireArtifacts(modelRef(fileUri(root)), { storeRoot })).rejects.toThrow(/symlink loop/);
  });

  test('an empty directory is an empty model', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await mkdir(join(root, 'nested'), { recursive: true });
    await expect(acquireArtifacts(modelRef(fileUri(root)), { storeRoot })).rejects.toThrow(EmptyModelError);
  });

  test('a directory of zero-byte files is an empty model', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'a.bin': '', 'b/c.bin': '' });
    await expect(acquireArtifacts(modelRef(fileUri(root)), { storeRoot })).rejects.toThrow(EmptyModelError);
    // Through the activity too: no manifest is stored, only the (empty) content it read.
    const { acquireModel } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });
    await expect(acquireModel({ model: modelRef(fileUri(root)) })).rejects.toMatchObject({
      nonRetryable: true,
      type: FailureType.EmptyModel,
    });
    const empty = sha256('');
    expect(await listFiles(join(storeRoot, 'sha256'))).toEqual([join(empty.slice(0, 2), empty)]);
  });

  test('a missing directory is SourceNotFound', async ({ tmp, storeRoot }) => {
    const missing = join(tmp, 'nope');
    const error = await acquireArtifacts(modelRef(fileUri(missing)), { storeRoot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceNotFoundError);
    expect((error as Error).message).toContain(missing);
  });

  test('an unsupported scheme is refused by name', async ({ storeRoot }) => {
    const error = await acquireArtifacts(modelRef('s3://bucket/model'), { storeRoot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedSourceError);
    expect((error as Error).message).toMatch(/scheme "s3:".*hf:\/\/org\/repo@revision/);
  });

  test('an invalid model reference names the field', async ({ tmp, storeRoot }) => {
    const error = await acquireArtifacts(modelRef(fileUri(tmp), { version: '../../etc' }), { storeRoot }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidRequestError);
    expect((error as Error).message).toMatch(/^model\.version: /);
  });
});

describe('declared digests', () => {
  test('matching digests pass', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, TREE);
    const digests = { 'config.json': sha256(TREE['config.json']) };
    const manifest = await acquireArtifacts(modelRef(fileUri(root), { digests }), { storeRoot });
    expect(manifest.files.find((f) => f.path === 'config.json')?.sha256).toBe(digests['config.json']);
  });

  test('a mismatch names the file and both digests, and stores nothing', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'model.bin': 'tampered weights' });
    const expected = sha256('original weights');
    const actual = sha256('tampered weights');

    const error = await acquireArtifacts(modelRef(fileUri(root), { digests: { 'model.bin': expected } }), {
      storeRoot,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error).toMatchObject({ code: 'DigestMismatch', path: 'model.bin', expected, actual });
    expect((error as Error).message).toBe(`digest mismatch for model.bin: expected sha256 ${expected}, got ${actual}`);
    expect(await listFiles(storeRoot)).toEqual([]);
  });

  test('a declared path that the source lacks is SourceNotFound naming the path', async ({ tmp, storeRoot }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { 'model.bin': 'weights' });
    const digests = { 'model.bin': sha256('weights'), 'tokenizer.json': sha256('{}') };
    const error = await acquireArtifacts(modelRef(fileUri(root), { digests }), { storeRoot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceNotFoundError);
    expect((error as Error).message).toContain('"tokenizer.json"');
    // Refused before any transfer.
    expect(await listFiles(storeRoot)).toEqual([]);
  });

  test('a declared path named like an Object.prototype key is not mistaken for a declaration', async ({
    tmp,
    storeRoot,
  }) => {
    const root = join(tmp, 'model');
    await writeTree(root, { constructor: 'not a function' });
    const manifest = await acquireArtifacts(modelRef(fileUri(root)), { storeRoot });
    expect(manifest.files[0]?.sha256).toBe(sha256('not a function'));
  });
});
