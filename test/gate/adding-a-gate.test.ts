/**
 * The README's "Adding a gate" example, as written there, run through the one gate adapter with a real store: if the
 * contract changes so that the example no longer works, this fails.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { zodProblems } from '../../contract/problems';
import type { ArtifactManifest, GateInput } from '../../contract/types';
import { gateActivity } from '../../activities/gate/activity';
import { evidenceDigest } from '../../activities/gate/evidence';
import { defineGate, InvalidPolicy } from '../../activities/gate/gate';
import { FilesystemStore, manifestDigest, storeManifest } from '../../activities/store';

const policySchema = z.strictObject({
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(10 * 2 ** 30),
});

const sizeGate = defineGate({
  name: 'size',
  section: 'size',
  activity: 'checkSize',
  queue: 'release',
  parsePolicy(section, file) {
    const parsed = policySchema.safeParse(section ?? {});
    if (!parsed.success) throw new InvalidPolicy(file, 'size', zodProblems(parsed.error, 'size'));
    return parsed.data;
  },
  async run(ctx) {
    return { bytes: ctx.manifest.totalSize, files: ctx.manifest.files.length };
  },
  judge(report, policy) {
    const over = report.bytes > policy.maxBytes;
    return {
      verdict: over ? 'fail' : 'pass',
      summary: `${report.bytes} bytes in ${report.files} file(s); at most ${policy.maxBytes}`,
      findings: over
        ? [
            {
              gate: 'size',
              ruleId: 'too-large',
              severity: 'high',
              location: '',
              message: 'model too large',
              waivable: true,
            },
          ]
        : [],
      evidence: report,
    };
  },
});

let root: string;
let store: FilesystemStore;
let input: Omit<GateInput, 'policy'>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mrel-size-gate-'));
  store = new FilesystemStore(root);
  const blob = await store.putBytes('weights'.repeat(100));
  const files = [{ path: 'model.bin', ...blob }];
  const manifest: ArtifactManifest = {
    model: 'demo',
    version: '1.0.0',
    source: 'file:///models/demo',
    resolvedRevision: 'file:///models/demo',
    files,
    totalSize: blob.size,
    manifestDigest: manifestDigest(files),
  };
  input = {
    releaseId: 'release/demo/1.0.0/staging',
    request: {
      model: { name: 'demo', version: '1.0.0', source: 'file:///models/demo' },
      environment: 'staging',
      policy: 'default',
      requestedBy: 'ci',
    },
    manifest: await storeManifest(store, manifest),
    waivers: [],
    earlier: [],
  };
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('the README example gate', () => {
  it('is still the code the README shows', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(
      'const policySchema = z.strictObject({ maxBytes: z.number().int().positive().default(10 * 2 ** 30) });',
    );
    expect(readme).toContain('export const sizeGate = defineGate({');
  });

  it('passes a model under the limit and fails one over it, with its evidence stored by digest', async () => {
    const checkSize = gateActivity(sizeGate, { store });
    const small = await checkSize({ ...input, policy: { maxBytes: 10_000 } });
    expect(small.verdict).toBe('pass');
    const large = await checkSize({ ...input, policy: { maxBytes: 10 } });
    expect(large.verdict).toBe('fail');
    expect(large.findings.map((f) => f.ruleId)).toEqual(['too-large']);
    const digest = evidenceDigest(large.evidence);
    expect(digest).toBeDefined();
    const evidence = JSON.parse((await store.read(digest as string, 1 << 20)).toString('utf8'));
    expect(evidence).toMatchObject({ gate: 'size', verdict: 'fail', report: { bytes: 700, files: 1 } });
  });

  it('refuses an invalid policy section by naming the field', async () => {
    const checkSize = gateActivity(sizeGate, { store });
    await expect(checkSize({ ...input, policy: { maxBytes: -1 } })).rejects.toThrow(/size\.maxBytes/);
  });
});
