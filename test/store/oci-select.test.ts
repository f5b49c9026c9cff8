/**
 * Which store a worker builds from MREL_ARTIFACT_STORE: the filesystem store by default, a registry store for
 * `oci://…`, and an error naming the variable for anything else, never repeating a credential.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilesystemStore } from '../../activities/store/filesystem';
import { OciStore } from '../../activities/store/oci-store';
import { artifactStoreFromEnv, parseOciStoreUrl } from '../../activities/store/select';

describe('artifactStoreFromEnv', () => {
  it('keeps the filesystem store when unset or "file"', () => {
    expect(artifactStoreFromEnv({}, '/data')).toBeInstanceOf(FilesystemStore);
    expect(artifactStoreFromEnv({ MREL_ARTIFACT_STORE: 'file' }, '/data')).toBeInstanceOf(FilesystemStore);
  });

  it('builds a registry store for oci://host[:port]/repository', () => {
    const store = artifactStoreFromEnv({ MREL_ARTIFACT_STORE: 'oci://127.0.0.1:5000/modelrelease/store' }, '/data');
    expect(store).toBeInstanceOf(OciStore);
    expect(store.description).toBe('registry store 127.0.0.1:5000/modelrelease/store');
    expect(parseOciStoreUrl('oci://registry.example.com/team/models')).toEqual({
      registry: 'registry.example.com',
      repository: 'team/models',
    });
    expect(parseOciStoreUrl('oci://[::1]:5000/store')).toEqual({ registry: '[::1]:5000', repository: 'store' });
  });

  it.each([
    ['s3://bucket/models', /"s3" is not a known store/],
    ['oci://127.0.0.1:5000', /names no repository/],
    ['oci://127.0.0.1:5000/Models', /lower-case/],
    ['oci://127.0.0.1:5000/store:latest', /no tag, digest or query/],
    ['oci://host_name/store', /host or host:port/],
  ])('refuses %s with an error naming MREL_ARTIFACT_STORE', (value, why) => {
    expect(() => artifactStoreFromEnv({ MREL_ARTIFACT_STORE: value }, join('/data'))).toThrow(why);
    expect(() => artifactStoreFromEnv({ MREL_ARTIFACT_STORE: value }, '/data')).toThrow(/MREL_ARTIFACT_STORE/);
  });

  it('refuses credentials in the URL without repeating them', () => {
    let message = '';
    try {
      artifactStoreFromEnv({ MREL_ARTIFACT_STORE: 'oci://bot:hunter2-secret@127.0.0.1:5000/store' }, '/data');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/MREL_ARTIFACT_STORE: credentials do not belong in the store URL/);
    expect(message).not.toContain('hunter2-secret');
  });
});
