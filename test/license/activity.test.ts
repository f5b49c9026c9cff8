/**
 * The license gate activity in the SDK's MockActivityEnvironment, reading a model that acquire really stored:
 * GateResult shape, evidence in the store, heartbeats, cancellation, and policy errors.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, CancelledFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect } from 'vitest';
import { acquireArtifacts } from '../../activities/acquire';
import { createLicenseActivities, MAX_RESULT_FINDINGS } from '../../activities/license';
import { FailureType } from '../../contract/definitions';
import type { GateInput, GateResult, ReleaseRequest, Waiver } from '../../contract/types';
import { card, MODEL_LICENSE_TEXTS, spdxText, test, writeModel } from './fixtures';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Stores `files` through acquire (as the workflow does) and returns the gate's input for them. */
async function gateInput(
  tmp: string,
  files: Record<string, string>,
  extra: { policy?: unknown; waivers?: Waiver[] } = {},
): Promise<{ input: GateInput; storeRoot: string }> {
  const dir = await writeModel(join(tmp, 'model'), files);
  const storeRoot = join(tmp, 'store');
  const model = { name: 'summarizer', version: '2.0.0', source: pathToFileURL(dir).href };
  const manifest = await acquireArtifacts(model, { storeRoot });
  const request: ReleaseRequest = { model, environment: 'production', policy: 'default', requestedBy: 'ci' };
  return {
    storeRoot,
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
function runGate(storeRoot: string, input: GateInput, env = environment()): Promise<GateResult> {
  return env.run<[GateInput], GateResult, (i: GateInput) => Promise<GateResult>>(
    createLicenseActivities({ storeRoot }).checkLicense,
    input,
  );
}

describe('checkLicense activity', () => {
  test('a Llama 3 model: warn, legal approval required, license annotation, evidence in the store', async ({ tmp }) => {
    const { input, storeRoot } = await gateInput(tmp, {
      'README.md': card({ license: 'llama3' }),
      LICENSE: MODEL_LICENSE_TEXTS.llama3,
      'model.safetensors': 'weights',
    });
    const env = environment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const result = await runGate(storeRoot, input, env);

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
      { file: 'README.md', done: 1, total: 2 },
      { file: 'LICENSE', done: 2, total: 2 },
    ]);
    expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(Date.parse(result.startedAt));

    expect(result.evidence).toBe(join(storeRoot, 'evidence', 'release_summarizer_2.0.0_production', 'license.json'));
    const evidence = JSON.parse(await readFile(result.evidence as string, 'utf8'));
    expect(evidence).toMatchObject({
      gate: 'license',
      releaseId: input.releaseId,
      model: 'summarizer@2.0.0',
      manifestDigest: input.manifest.manifestDigest,
      license: 'llama3',
      policy: { reviewRole: 'legal', textMatchThreshold: 0.9 },
    });
    expect(evidence.sources[1]).toMatchObject({
      kind: 'license-file',
      location: 'LICENSE',
      license: 'llama3',
      match: { id: 'llama3', method: 'fingerprint', phrase: 'meta llama 3 community license agreement' },
    });
    expect(evidence.sources[1].match.candidates.length).toBeGreaterThan(0);
    expect(evidence.trail).toEqual(['llama3 is use-restricted: review (license.categories.use-restricted)']);
  });

  test('an Apache-2.0 model passes with the match score in the metrics', async ({ tmp }) => {
    const { input, storeRoot } = await gateInput(tmp, {
      'README.md': card({ license: 'apache-2.0' }),
      LICENSE: spdxText('Apache-2.0'),
    });
    const result = await runGate(storeRoot, input);
    expect(result).toMatchObject({ verdict: 'pass', annotations: { license: 'Apache-2.0' } });
    expect(result.metrics.textMatchScore).toBe(1);
    expect(result.requiredApprovals).toBeUndefined();
  });

  test('the policy section decides: cc-by-nc-4.0 fails by default, passes when the policy allows it by id', async ({
    tmp,
  }) => {
    const files = { 'README.md': card({ license: 'cc-by-nc-4.0' }) };
    const denied = await gateInput(join(tmp, 'a'), files);
    expect((await runGate(denied.storeRoot, denied.input)).verdict).toBe('fail');
    const allowed = await gateInput(join(tmp, 'b'), files, { policy: { licenses: { 'CC-BY-NC-4.0': 'allow' } } });
    const result = await runGate(allowed.storeRoot, allowed.input);
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
    const { input, storeRoot } = await gateInput(
      tmp,
      { 'README.md': card({ license: 'cc-by-nc-4.0' }) },
      { waivers: [waiver] },
    );
    const result = await runGate(storeRoot, input);
    expect(result.verdict).toBe('pass');
    expect(result.metrics.waived).toBe(1);
    expect(result.summary).toBe('license CC-BY-NC-4.0 (non-commercial): allowed (1 finding waived)');
  });

  test('unreadable card front matter: verdict error, never pass', async ({ tmp }) => {
    const { input, storeRoot } = await gateInput(tmp, { 'README.md': '---\nlicense: mit\n  bad: [\n---\n' });
    const result = await runGate(storeRoot, input);
    expect(result.verdict).toBe('error');
    expect(result.summary).toMatch(/^could not decide the license: README\.md: the front matter is not valid YAML/);
  });

  test('findings in the result are capped, with a metric saying how many were left out', async ({ tmp }) => {
    const files: Record<string, string> = { 'README.md': card({ license: 'mit' }) };
    for (let i = 0; i < 250; i++) files[`vendor/part-${i}/LICENSE`] = `Terms for part ${i}: ask us first.`;
    const { input, storeRoot } = await gateInput(tmp, files);
    const result = await runGate(storeRoot, input);
    expect(result.findings).toHaveLength(MAX_RESULT_FINDINGS);
    expect(result.metrics.findingsOmitted).toBe(251 - MAX_RESULT_FINDINGS);
    expect(result.findings[0]).toMatchObject({
      ruleId: 'license.review',
      location: expect.stringMatching(/and 245 more$/),
    });
    const evidence = JSON.parse(await readFile(result.evidence as string, 'utf8'));
    expect(evidence.findings).toHaveLength(251);
  });

  test('an invalid policy section is a non-retryable InvalidConfig failure naming the field', async ({ tmp }) => {
    const { input, storeRoot } = await gateInput(
      tmp,
      { 'README.md': card({ license: 'mit' }) },
      {
        policy: { categories: { permisive: 'allow' } },
      },
    );
    const err = await runGate(storeRoot, input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.InvalidConfig, nonRetryable: true });
    expect((err as Error).message).toMatch(/license\.categories has unknown category "permisive"; use permissive,/);

    const unknownId = await runGate(storeRoot, { ...input, policy: { licenses: { lama3: 'deny' } } }).catch(
      (e: unknown) => e,
    );
    expect(unknownId).toMatchObject({ type: FailureType.InvalidConfig, nonRetryable: true });
    expect((unknownId as Error).message).toMatch(/license\.licenses\["lama3"\] is not an SPDX id/);
  });

  test('a cancelled activity stops before reading on', async ({ tmp }) => {
    const { input, storeRoot } = await gateInput(tmp, {
      'README.md': card({ license: 'mit' }),
      LICENSE: spdxText('MIT'),
      'LICENSE-2': spdxText('MIT'),
    });
    const env = environment();
    env.once('heartbeat', () => env.cancel());
    const err = await runGate(storeRoot, input, env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});
