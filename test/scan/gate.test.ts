/**
 * The scan gate activity on a real artifact store (filled by acquire): verdicts per policy, waivers, the evidence
 * file, the compact result, heartbeats and the fail-closed error verdict.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { acquireArtifacts } from '../../activities/acquire';
import { createScanActivities } from '../../activities/scan';
import { FilesystemStore, storeManifest } from '../../activities/store';
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import { FailureType } from '../../contract/definitions';
import type { GateInput, GateResult, Waiver } from '../../contract/types';
import { readEvidence } from '../helpers/evidence';
import { makeFixtures, python, test } from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
let fixtures: string;

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'mrel-scan-gate-'));
  await makeFixtures(fixtures);
});
afterAll(async () => rm(fixtures, { recursive: true, force: true }));

/** Copies fixture files into a model directory, acquires it into the store, and builds the gate input. */
async function release(
  tmp: string,
  files: Record<string, string | Buffer>,
  extra: { policy?: unknown; waivers?: Waiver[] } = {},
): Promise<{ input: GateInput; store: FilesystemStore }> {
  const root = join(tmp, 'model');
  await mkdir(root, { recursive: true });
  for (const [name, from] of Object.entries(files)) {
    await mkdir(join(root, name, '..'), { recursive: true });
    if (typeof from === 'string') await copyFile(join(fixtures, from), join(root, name));
    else await writeFile(join(root, name), from);
  }
  const store = new FilesystemStore(join(tmp, 'store'));
  const model = { name: 'scan-model', version: '1.0.0', source: pathToFileURL(root).href };
  const manifest = await storeManifest(store, await acquireArtifacts(model, { store }));
  const input: GateInput = {
    releaseId: 'release/scan-model/1.0.0/production',
    request: { model, environment: 'production', policy: 'default', requestedBy: 'ci@example.com' },
    manifest,
    policy: extra.policy,
    waivers: extra.waivers ?? [],
    earlier: [],
  };
  return { input, store };
}

describe('scanModel', () => {
  test('a benign model passes, annotated, with heartbeats and an evidence file', async ({ tmp }) => {
    const { input, store } = await release(tmp, {
      'pytorch_model.bin': 'benign/torch-zip.pt',
      'model.safetensors': 'benign/model.safetensors',
      'README.md': Buffer.from('# tiny model\n'),
    });
    const env = new MockActivityEnvironment(undefined, { logger: silent });
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const { scanModel } = createScanActivities({ store });
    const result = (await env.run(scanModel, input)) as GateResult;
    expect(result).toMatchObject({
      gate: 'scan',
      verdict: 'pass',
      findings: [],
      annotations: { 'scan-verdict': 'pass' },
      metrics: { files: 3, findings: 0, notExamined: 0 },
    });
    expect(result.metrics).not.toHaveProperty('findingsOmitted');
    expect(result.summary).toBe('scanned 3 file(s): no findings; fails on high → pass');
    expect(heartbeats).toContainEqual(expect.objectContaining({ file: 'pytorch_model.bin', filesTotal: 3 }));
    const evidence = await readEvidence<{ files: { path: string; format: string }[] }>(store, result.evidence);
    expect(evidence).toMatchObject({
      gate: 'scan',
      releaseId: input.releaseId,
      model: 'scan-model@1.0.0',
      manifestDigest: input.manifest.manifestDigest,
      policy: { file: 'config/policies/default.yaml', section: 'scan' },
      verdict: 'pass',
      summary: result.summary,
      findings: [],
    });
    expect(evidence.report.files.map((f) => `${f.path}:${f.format}`)).toEqual([
      'README.md:text',
      'model.safetensors:safetensors',
      'pytorch_model.bin:torch-zip',
    ]);
  });

  test('a malicious pickle fails the release; a waiver covers it; an expired waiver does not', async ({ tmp }) => {
    const { input, store } = await release(tmp, { 'model.pkl': 'evil/os-system-p4.pkl' });
    const { scanModel } = createScanActivities({ store });
    const failed = await scanModel(input);
    expect(failed.verdict).toBe('fail');
    expect(failed.annotations).toEqual({ 'scan-verdict': 'fail' });
    expect(failed.findings).toEqual([
      expect.objectContaining({
        gate: 'scan',
        ruleId: 'pickle.dangerous-global',
        severity: 'critical',
        location: 'model.pkl:39',
      }),
    ]);
    const waiver: Waiver = {
      gate: 'scan',
      ruleIds: ['pickle.dangerous-global'],
      justification: 'sandboxed loader, reviewed by security',
      approver: 'alice',
      expiresAt: '2999-01-01',
    };
    const waived = await scanModel({ ...input, waivers: [waiver] });
    expect(waived.verdict).toBe('pass');
    expect(waived.findings[0]?.waivedBy).toMatchObject({ approver: 'alice' });
    expect(waived.metrics.waived).toBe(1);
    const expired = await scanModel({ ...input, waivers: [{ ...waiver, expiresAt: '2000-01-01' }] });
    expect(expired.verdict).toBe('fail');
  });

  test('an unknown format is an error verdict, never a pass; failOn follows the policy', async ({ tmp }) => {
    const { input, store } = await release(tmp, {
      'weights.msgpack': Buffer.from([0xde, 0x00, 0x01, 0xa1, 0x61, 0x01, 0, 0, 0, 0]),
    });
    const { scanModel } = createScanActivities({ store });
    const result = await scanModel(input);
    expect(result.verdict).toBe('error');
    expect(result.summary).toContain('1 thing(s) could not be examined');
    const strict = await scanModel({ ...input, policy: { failOn: 'medium' } });
    expect(strict.verdict).toBe('fail');
  });

  test('the result keeps 200 findings, most severe first; the evidence keeps all of them', async ({ tmp }) => {
    const code = [
      'import pickle, sys, types',
      'objs = []',
      'for i in range(260):',
      "    m = types.ModuleType(f'pkg{i}')",
      "    sys.modules[f'pkg{i}'] = m",
      "    C = type('C', (), {}); C.__module__ = f'pkg{i}'; m.C = C",
      '    objs.append(C())',
      "objs.append(__import__('posix').system)",
      "open('many.pkl', 'wb').write(pickle.dumps(objs, protocol=4))",
    ].join('\n');
    await python(code, tmp);
    const many = await readFile(join(tmp, 'many.pkl'));
    const { input, store } = await release(tmp, { 'many.pkl': many });
    const result = await createScanActivities({ store }).scanModel(input);
    expect(result.findings).toHaveLength(MAX_RESULT_FINDINGS);
    expect(result.findings[0]).toMatchObject({ severity: 'critical' });
    expect(result.metrics).toMatchObject({ findings: 261, findingsOmitted: 61, medium: 260, critical: 1 });
    const evidence = await readEvidence(store, result.evidence);
    expect(evidence.findings).toHaveLength(261);
  });

  test('a bad scan: policy section is a non-retryable InvalidConfig failure naming the field', async ({ tmp }) => {
    const { input, store } = await release(tmp, { 'README.md': Buffer.from('hi\n') });
    const failure = await createScanActivities({ store })
      .scanModel({ ...input, policy: { failOn: 'severe', allowGlobals: ['not a global'] } })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.InvalidConfig });
    expect((failure as Error).message).toContain(
      'config/policies/default.yaml: scan.failOn: must be one of critical, high, medium, low',
    );
    expect((failure as Error).message).toContain('scan.allowGlobals[0]: write pickle globals as module:name');
  });
});
