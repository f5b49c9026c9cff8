/**
 * acquireDataset: the evaluation dataset is pinned by digest in the store like the model, under the same source
 * policy, so every evaluation worker reads exactly the bytes that were acquired.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect } from 'vitest';
import { createAcquireActivities } from '../../activities/acquire';
import type { SourcePolicy } from '../../activities/common/source-policy';
import { FilesystemStore } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import { listFiles, sha256, test, writeTree } from './fixtures';

const CSV = 'age,income,group,label\n31,52000,a,1\n45,61000,b,0\n';

/** Only `<tmp>/data` is a source root. */
function policyFor(tmp: string): SourcePolicy {
  return { roots: [join(tmp, 'data')], hosts: [], networks: [] };
}

describe('acquireDataset', () => {
  test('pins a CSV by its digest and stores exactly its bytes', async ({ tmp, storeRoot }) => {
    await writeTree(join(tmp, 'data'), { 'eval.csv': CSV });
    const store = new FilesystemStore(storeRoot);
    const { acquireDataset } = createAcquireActivities({ store, sourcePolicy: policyFor(tmp) });
    const source = pathToFileURL(join(tmp, 'data', 'eval.csv')).href;

    const pinned = await acquireDataset({ source });

    expect(pinned).toEqual({ source, sha256: sha256(CSV), size: Buffer.byteLength(CSV) });
    expect((await store.read(pinned.sha256, 1024)).toString('utf8')).toBe(CSV);
    // A plain path names the same file and pins the same digest; a matching declared sha256 is accepted.
    const again = await acquireDataset({ source: join(tmp, 'data', 'eval.csv'), sha256: sha256(CSV) });
    expect(again).toEqual(pinned);
  });

  test('a declared sha256 that does not match is a non-retryable DigestMismatch and stores nothing', async ({
    tmp,
    storeRoot,
  }) => {
    await writeTree(join(tmp, 'data'), { 'eval.csv': CSV });
    const { acquireDataset } = createAcquireActivities({
      store: new FilesystemStore(storeRoot),
      sourcePolicy: policyFor(tmp),
    });
    const declared = sha256('the dataset that was reviewed');

    const failure = await acquireDataset({
      source: pathToFileURL(join(tmp, 'data', 'eval.csv')).href,
      sha256: declared,
    }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.DigestMismatch });
    expect((failure as Error).message).toContain(declared);
    expect((failure as Error).message).toContain(sha256(CSV));
    expect(await listFiles(join(storeRoot, 'sha256'))).toEqual([]);
  });

  test('a path outside the source roots is a non-retryable SourceNotAllowed naming the field', async ({
    tmp,
    storeRoot,
  }) => {
    await writeTree(join(tmp, 'elsewhere'), { 'eval.csv': CSV });
    const { acquireDataset } = createAcquireActivities({
      store: new FilesystemStore(storeRoot),
      sourcePolicy: policyFor(tmp),
    });

    const failure = await acquireDataset({ source: join(tmp, 'elsewhere', 'eval.csv') }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.SourceNotAllowed });
    expect((failure as Error).message).toMatch(/^evaluation\.dataset: /);
    expect((failure as Error).message).not.toContain('income');
    expect(await listFiles(storeRoot)).toEqual([]);
  });
});
