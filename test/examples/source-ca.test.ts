/**
 * MREL_SOURCE_CA_FILE: an https model source whose certificate is signed by a company CA fails without that CA as a
 * permanent certificate error, and is acquired with it; a file that is not a CA bundle stops the worker at start,
 * naming the variable.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAcquireActivities } from '../../activities/acquire';
import { FilesystemStore, loadManifest } from '../../activities/store';
import { loadSourcePolicy } from '../../config/loader';
import {
  ensureCertificates,
  MIRROR_ROOT,
  startModelMirror,
  type MirrorCertificates,
  type ModelMirror,
} from '../../scripts/example-mirror';
import { loadSettings, loadSourceCa } from '../../workers/settings';
import { FailureType } from '../../contract/definitions';
import type { ManifestRef, ModelRef } from '../../contract/types';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

let dir: string;
let certs: MirrorCertificates;
let mirror: ModelMirror;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-source-ca-'));
  certs = await ensureCertificates(join(dir, 'tls'));
  await cp(MIRROR_ROOT, join(dir, 'mirror'), { recursive: true });
  mirror = await startModelMirror({ root: join(dir, 'mirror'), certs, port: 0 });
});
afterAll(async () => {
  await mirror?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function model(): ModelRef {
  return {
    name: 'credit-risk',
    version: '1.1.0',
    source: `${mirror.url}/credit-risk/1.1.0/`,
    files: ['README.md', 'group1-shard1of1.bin', 'model.json'],
  };
}

describe('MREL_SOURCE_CA_FILE', () => {
  it('an https source signed by an unknown CA fails permanently; with the CA it is acquired', async () => {
    const store = new FilesystemStore(join(dir, 'store'));
    // The test run's policy: config/sources.yaml plus localhost and 127.0.0.0/8 (vitest.config.ts).
    const sourcePolicy = await loadSourcePolicy();

    const untrusted = createAcquireActivities({ store, sourcePolicy });
    const failure = await new MockActivityEnvironment(undefined, { logger: silent })
      .run(untrusted.acquireModel, { model: model() })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.SourceRejected });
    expect((failure as Error).message).toMatch(/cannot succeed: .*certificate.*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);

    const sourceCa = await loadSourceCa(loadSettings({ MREL_SOURCE_CA_FILE: certs.caFile }));
    const trusted = createAcquireActivities({ store, sourcePolicy, sourceCa });
    const ref = (await new MockActivityEnvironment(undefined, { logger: silent }).run(trusted.acquireModel, {
      model: model(),
    })) as ManifestRef;
    const manifest = await loadManifest(store, ref);
    expect(manifest.files.map((f) => f.path)).toEqual(['README.md', 'group1-shard1of1.bin', 'model.json']);
    expect(ref).toMatchObject({ fileCount: 3, totalSize: manifest.totalSize });
    expect(manifest.totalSize).toBeGreaterThan(0);
  });

  it('refuses a missing file or one without a certificate, naming the variable and never the content', async () => {
    const missing = join(dir, 'missing.pem');
    await expect(loadSourceCa({ sourceCaFile: missing })).rejects.toThrow(
      `environment variable MREL_SOURCE_CA_FILE: ${missing} cannot be read (ENOENT)`,
    );
    const notPem = join(dir, 'not-a-bundle.pem');
    await writeFile(notPem, 'secret-token-1234\n');
    const error = (await loadSourceCa({ sourceCaFile: notPem }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/^environment variable MREL_SOURCE_CA_FILE: .* holds no PEM certificate/);
    expect(error.message).not.toContain('secret-token');
    const broken = join(dir, 'broken.pem');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await expect(loadSourceCa({ sourceCaFile: broken })).rejects.toThrow(/cannot be parsed \(certificate 1 of 1\)/);
    expect(() => loadSettings({ MREL_SOURCE_CA_FILE: '' })).toThrow(/environment variable MREL_SOURCE_CA_FILE: /);
  });

  it('keeps only the certificates of a bundle', async () => {
    const bundle = join(dir, 'bundle.pem');
    const [ca, key] = await Promise.all([readFile(certs.caFile, 'utf8'), readFile(certs.keyFile, 'utf8')]);
    await writeFile(bundle, `${key}\n${ca}`);
    const pem = await loadSourceCa({ sourceCaFile: bundle });
    expect(pem).toBe(`${ca.trim()}\n`);
  });
});
