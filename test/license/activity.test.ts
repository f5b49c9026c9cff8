/**
 * The license gate activity in the SDK's MockActivityEnvironment, reading a model that acquire really stored:
 * GateResult shape, evidence in the store, heartbeats, cancellation, and policy errors.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, CancelledFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect } from 'vitest';
import { acquireArtifacts } from '../../activities/acquire';
import { createLicenseActivities } from '../../activities/license';
import { FilesystemStore, storeManifest, type ArtifactStore } from '../../activities/store';
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import { FailureType } from '../../contract/definitions';
import type { GateInput, GateResult, ReleaseRequest, Waiver } from '../../contract/types';
import { readEvidence } from '../helpers/evidence';
import { card, MODEL_LICENSE_TEXTS, spdxText, test, writeModel } from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Stores `files` through acquire (as the workflow does) and returns the gate's input for them. */
async function gateInput(
  tmp: string,
  files: Record<string, string>,
  extra: { policy?: unknown; waivers?: Waiver[] } = {},
): Promise<{ input: GateInput; store: ArtifactStore }> {
  const dir = await writeModel(join(tmp, 'model'), files);
  const store = new FilesystemStore(join(tmp, 'store'));
  const model = { name: 'summarizer', version: '2.0.0', source: pathToFileURL(dir).href };
  const manifest = await storeManifest(store, await acquireArtifacts(model, { store }));
  const request: ReleaseRequest = { model, environment: 'production', policy: 'default', requestedBy: 'ci' };
  return {
    store,
    input: {
      releaseId: 'release/summarizer/2.0.0/production',
      request,
      manifest,
      policy: extra.policy,
      waivers: extra.waivers ?? [],
      earlier: [],
    },
  };
}

function environment(): MockActivityEnvironment {
  return new MockActivityEnvironment(undefined, { logger: silent });
}

/** Runs the gate activity in `env` (a fresh activity context unless given), as a worker would. */
function runGate(store: ArtifactStore, input: GateInput, env = environment()): Promise<GateResult> {
  return env.run<[GateInput], GateResult, (i: GateInput) => Promise<GateResult>>(
    createLicenseActivities({ store }).checkLicense,
    input,
  );
}

describe('checkLicense activity', () => {
  test('a Llama 3 model: warn, legal approval required, license annotation, evidence in the store', async ({ tmp }) => {
    const { input, store } = await gateInput(tmp, {
      'README.md': card({ license: 'llama3' }),
      LICENSE: MODEL_LICENSE_TEXTS.llama3,
      'model.safetensors': 'weights',
    });
    const env = environment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const result = await runGate(store, input, env);

    expect(result).toMatchObject({
      gate: 'license',
      verdict: 'warn',
      summary: 'license llama3 (use-restricted): needs review by legal',
      requiredApprovals: [{ role: 'legal', count: 1, reason: 'license llama3 needs review' }],
      annotations: { license: 'llama3' },
      metrics: { license: 'llama3', category: 'use-restricted', decision: 'review', sources: 2, conflicts: 0 },
    });
    expect(result.findings.map((f) => f.ruleId)).toEqual(['license.review']);
    expect(heartbeats).toEqual([
      { step: 'README.md', file: 'README.md', done: 1, total: 2 },
      { step: 'LICENSE', file: 'LICENSE', done: 2, total: 2 },
    ]);
    expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(Date.parse(result.startedAt));

    expect(result.evidence).toMatch(/^sha256:[0-9a-f]{64}$/);
    const evidence = await readEvidence<{
      license: string;
      sources: { kind: string; location: string; match: { candidates: unknown[] } }[];
      trail: string[];
    }>(store, result.evidence);
    expect(evidence).toMatchObject({
      gate: 'license',
      releaseId: input.releaseId,
      model: 'summarizer@2.0.0',
      manifestDigest: input.manifest.manifestDigest,
      policy: {
        file: 'config/policies/default.yaml',
        section: 'license',
        value: { reviewRole: 'legal', textMatchThreshold: 0.9 },
      },
      verdict: 'warn',
      report: { license: 'llama3' },
    });
    expect(evidence.findings.map((f) => f.ruleId)).toEqual(['license.review']);
    expect(evidence.report.sources[1]).toMatchObject({
      kind: 'license-file',
      location: 'LICENSE',
      license: 'llama3',
      match: { id: 'llama3', method: 'fingerprint', phrase: 'meta llama 3 community license agreement' },
    });
    expect(evidence.report.sources[1]?.match.candidates.length).toBeGreaterThan(0);
    expect(evidence.report.trail).toEqual(['llama3 is use-restricted: review (license.categories.use-restricted)']);
  });

  test('an Apache-2.0 model passes with the match score in the metrics', async ({ tmp }) => {
    const { input, store } = await gateInput(tmp, {
      'README.md': card({ license: 'apache-2.0' }),
      LICENSE: spdxText('Apache-2.0'),
    });
    const result = await runGate(store, input);
    expect(result).toMatchObject({ verdict: 'pass', annotations: { license: 'Apache-2.0' } });
    expect(result.metrics.textMatchScore).toBe(1);
    expect(result.requiredApprovals).toBeUndefined();
  });

  test('the policy section decides: cc-by-nc-4.0 fails by default, passes when the policy allows it by id', async ({
    tmp,
  }) => {
    const files = { 'README.md': card({ license: 'cc-by-nc-4.0' }) };
    const denied = await gateInput(join(tmp, 'a'), files);
    expect((await runGate(denied.store, denied.input)).verdict).toBe('fail');
    const allowed = await gateInput(join(tmp, 'b'), files, { policy: { licenses: { 'CC-BY-NC-4.0': 'allow' } } });
    const result = await runGate(allowed.store, allowed.input);
    expect(result.verdict).toBe('pass');
  });

  test('a waiver from the input covers a denial', async ({ tmp }) => {
    const waiver: Waiver = {
      gate: 'license',
      ruleIds: ['license.deny'],
      justification: 'research-only deployment, no commercial use (legal ticket L-42)',
      approver: 'erin',
      expiresAt: '2999-01-01T00:00:00.000Z',
    };
    const { input, store } = await gateInput(
      tmp,
      { 'README.md': card({ license: 'cc-by-nc-4.0' }) },
      { waivers: [waiver] },
    );
    const result = await runGate(store, input);
    expect(result.verdict).toBe('pass');
    expect(result.metrics.waived).toBe(1);
    expect(result.summary).toBe('license CC-BY-NC-4.0 (non-commercial): allowed (1 finding waived)');
  });

  test('unreadable card front matter: verdict error, never pass', async ({ tmp }) => {
    const { input, store } = await gateInput(tmp, { 'README.md': '---\nlicense: mit\n  bad: [\n---\n' });
    const result = await runGate(store, input);
    expect(result.verdict).toBe('error');
    expect(result.summary).toMatch(/^could not decide the license: README\.md: the front matter is not valid YAML/);
  });

  test('findings in the result are capped, with a metric saying how many were left out', async ({ tmp }) => {
    const files: Record<string, string> = { 'README.md': card({ license: 'mit' }) };
    for (let i = 0; i < 250; i++) files[`vendor/part-${i}/LICENSE`] = `Terms for part ${i}: ask us first.`;
    const { input, store } = await gateInput(tmp, files);
    const result = await runGate(store, input);
    expect(result.findings).toHaveLength(MAX_RESULT_FINDINGS);
    expect(result.metrics.findingsOmitted).toBe(251 - MAX_RESULT_FINDINGS);
    expect(result.findings[0]).toMatchObject({
      ruleId: 'license.review',
      location: expect.stringMatching(/and 245 more$/),
    });
    const evidence = await readEvidence(store, result.evidence);
    expect(evidence.findings).toHaveLength(251);
  });

  test('an invalid policy section is a non-retryable InvalidConfig failure naming the field', async ({ tmp }) => {
    const { input, store } = await gateInput(
      tmp,
      { 'README.md': card({ license: 'mit' }) },
      {
        policy: { categories: { permisive: 'allow' } },
      },
    );
    const err = await runGate(store, input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.InvalidConfig, nonRetryable: true });
    expect((err as Error).message).toMatch(
      /^invalid license policy in config\/policies\/default\.yaml: license\.categories: has unknown category "permisive"; use permissive,/,
    );

    const unknownId = await runGate(store, { ...input, policy: { licenses: { lama3: 'deny' } } }).catch(
      (e: unknown) => e,
    );
    expect(unknownId).toMatchObject({ type: FailureType.InvalidConfig, nonRetryable: true });
    expect((unknownId as Error).message).toMatch(/license\.licenses\["lama3"\] is not an SPDX id/);
  });

  test('a cancelled activity stops before reading on', async ({ tmp }) => {
    const { input, store } = await gateInput(tmp, {
      'README.md': card({ license: 'mit' }),
      LICENSE: spdxText('MIT'),
      'LICENSE-2': spdxText('MIT'),
    });
    const env = environment();
    env.once('heartbeat', () => env.cancel());
    const err = await runGate(store, input, env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});
