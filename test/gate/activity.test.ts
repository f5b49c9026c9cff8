/**
 * The one gate adapter, with a tiny gate of its own on the real gate contract and a real filesystem store: what every
 * gate gets from it without writing it (one invalid-config behaviour, fail-closed "could not decide", the findings
 * cap, evidence by digest that is byte-stable across runs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { z } from 'zod';
import { gateActivity } from '../../activities/gate/activity';
import { CannotDecide, defineGate, InvalidPolicy } from '../../activities/gate/gate';
import { FilesystemStore, manifestDigest, storeManifest } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import { zodProblems } from '../../contract/problems';
import type { Finding, GateInput, GateResult, ManifestRef, Waiver } from '../../contract/types';
import { readEvidence, readEvidenceBytes } from '../helpers/evidence';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** The toy gate's policy: each line of `notes.txt` that starts with `TODO` is a finding of this severity. */
const policySchema = z
  .object({ severity: z.enum(['high', 'medium', 'low']).default('medium'), failOn: z.number().int().min(0).default(0) })
  .strict();
type TodoPolicy = z.infer<typeof policySchema>;

/** How often `run` was called: an invalid policy must stop the gate before it reads anything. */
let runs = 0;

/**
 * Reads `notes.txt` from the store and counts its TODO lines; a file that says `undecidable` cannot be judged.
 * The judgement fails when there are more TODOs than `failOn`.
 */
const todoGate = defineGate<TodoPolicy, { todos: number[]; lines: number }>({
  name: 'todo',
  section: 'todo',
  activity: 'checkTodos',
  queue: 'release',
  parsePolicy(section, file) {
    const parsed = policySchema.safeParse(section ?? {});
    if (!parsed.success) throw new InvalidPolicy(file, 'todo', zodProblems(parsed.error, 'todo'));
    return parsed.data;
  },
  async run(ctx) {
    runs++;
    const notes = ctx.manifest.files.find((f) => f.path === 'notes.txt');
    if (!notes) throw new CannotDecide('todo.no-notes', 'the model has no notes.txt to read', 'notes.txt');
    const text = (await ctx.store.read(notes.sha256, 1 << 20)).toString('utf8');
    if (text.startsWith('undecidable')) {
      throw new CannotDecide('todo.unreadable', 'notes.txt is not in a form this gate reads', 'notes.txt:1');
    }
    const lines = text.split('\n');
    ctx.progress({ step: 'read', lines: lines.length });
    return { todos: lines.flatMap((line, i) => (line.startsWith('TODO') ? [i + 1] : [])), lines: lines.length };
  },
  judge(report, policy, ctx) {
    const findings: Finding[] = report.todos.map((line) => {
      const waiver = ctx.waivers.find((w) => w.ruleIds.includes('todo.open') && w.expiresAt > ctx.now);
      return {
        gate: 'todo',
        ruleId: 'todo.open',
        severity: policy.severity,
        location: `notes.txt:${line}`,
        message: `an open TODO on line ${line}`,
        waivable: true,
        ...(waiver
          ? {
              waivedBy: { approver: waiver.approver, justification: waiver.justification, expiresAt: waiver.expiresAt },
            }
          : {}),
      };
    });
    const open = findings.filter((f) => !f.waivedBy).length;
    const verdict = open > policy.failOn ? 'fail' : 'pass';
    return {
      verdict,
      summary: `${open} open TODO(s) in ${report.lines} line(s); fails above ${policy.failOn} → ${verdict}`,
      findings,
      metrics: { todos: report.todos.length, open },
      evidence: { lines: report.lines, todoLines: report.todos },
      annotations: { 'todo-verdict': verdict },
    };
  },
});

let dir: string;
let store: FilesystemStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gate-adapter-'));
  store = new FilesystemStore(join(dir, 'store'));
  runs = 0;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A model whose only file is `notes.txt` with `notes`, stored with its manifest as acquire does. */
async function storedModel(target: FilesystemStore, notes: string): Promise<ManifestRef> {
  const blob = await target.putBytes(notes, { path: 'notes.txt' });
  const files = [{ path: 'notes.txt', ...blob }];
  return storeManifest(target, {
    model: 'toy',
    version: '1.0.0',
    source: 'file:///models/toy',
    resolvedRevision: 'file:///models/toy',
    files,
    totalSize: blob.size,
    manifestDigest: manifestDigest(files),
  });
}

function input(manifest: ManifestRef, policy?: unknown, waivers: Waiver[] = []): GateInput {
  return {
    releaseId: 'release/toy/1.0.0/production',
    request: {
      model: { name: 'toy', version: '1.0.0', source: 'file:///models/toy' },
      environment: 'production',
      policy: 'default',
      requestedBy: 'ci@example.com',
    },
    manifest,
    policy,
    waivers,
    earlier: [],
  };
}

/** Runs the gate's activity as a worker would. */
function run(gateInput: GateInput, target: FilesystemStore = store): Promise<GateResult> {
  const activity = gateActivity(todoGate, { store: target });
  return new MockActivityEnvironment(undefined, { logger: silent }).run(activity, gateInput) as Promise<GateResult>;
}

describe('the gate adapter', () => {
  test('judges through the gate and stores the evidence by digest in the store', async () => {
    const manifest = await storedModel(store, 'ship it\nTODO: document the inputs\n');
    const result = await run(input(manifest));

    expect(result).toMatchObject({
      gate: 'todo',
      verdict: 'fail',
      summary: '1 open TODO(s) in 3 line(s); fails above 0 → fail',
      metrics: { todos: 1, open: 1 },
      annotations: { 'todo-verdict': 'fail' },
      findings: [expect.objectContaining({ ruleId: 'todo.open', location: 'notes.txt:2', severity: 'medium' })],
    });
    expect(result.evidence).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await readEvidence(store, result.evidence)).toEqual({
      gate: 'todo',
      releaseId: 'release/toy/1.0.0/production',
      model: 'toy@1.0.0',
      manifestDigest: manifest.manifestDigest,
      policy: { file: 'config/policies/default.yaml', section: 'todo', value: { severity: 'medium', failOn: 0 } },
      verdict: 'fail',
      summary: result.summary,
      report: { lines: 3, todoLines: [2] },
      findings: result.findings,
    });
  });

  test('an invalid policy section is a non-retryable InvalidConfig failure naming the field, before any work', async () => {
    const manifest = await storedModel(store, 'TODO\n');

    const failure = await run(input(manifest, { severity: 'urgent', failOn: -1 })).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: FailureType.InvalidConfig });
    const message = (failure as Error).message;
    expect(message).toMatch(/^invalid todo policy in config\/policies\/default\.yaml: /);
    expect(message).toContain('todo.severity: ');
    expect(message).toContain('todo.failOn: ');
    expect((failure as ApplicationFailure).details).toEqual([
      { problems: expect.arrayContaining([expect.stringMatching(/^todo\.severity: /)]) },
    ]);
    expect(runs).toBe(0);

    // An unknown key is a bad field too, not silently ignored.
    const typo = await run(input(manifest, { failon: 3 })).catch((e: unknown) => e);
    expect(typo).toMatchObject({ nonRetryable: true, type: FailureType.InvalidConfig });
    expect((typo as Error).message).toContain('failon');
    expect(runs).toBe(0);
  });

  test('a gate that cannot decide gives an error verdict with one unwaivable finding, never a pass', async () => {
    const manifest = await storedModel(store, 'undecidable: a format from the future\n');
    const waiver: Waiver = {
      gate: 'todo',
      ruleIds: ['todo.unreadable', 'todo.open'],
      justification: 'reviewed by hand',
      approver: 'alice',
      expiresAt: '2999-01-01T00:00:00.000Z',
    };

    const result = await run(input(manifest, undefined, [waiver]));

    expect(result.verdict).toBe('error');
    expect(result.summary).toBe('todo could not decide: notes.txt is not in a form this gate reads');
    expect(result.findings).toEqual([
      {
        gate: 'todo',
        ruleId: 'todo.unreadable',
        severity: 'high',
        location: 'notes.txt:1',
        message: 'notes.txt is not in a form this gate reads',
        waivable: false,
      },
    ]);
    expect(result.metrics).toEqual({ error: 'todo.unreadable' });
    const evidence = await readEvidence(store, result.evidence);
    expect(evidence).toMatchObject({ verdict: 'error', findings: result.findings });
  });

  test('the result keeps the first 200 findings and counts the rest; the evidence keeps every one', async () => {
    const notes = Array.from({ length: 250 }, (_, i) => `TODO item ${i}`).join('\n');
    const manifest = await storedModel(store, notes);

    const result = await run(input(manifest, { failOn: 1000 }));

    expect(result.verdict).toBe('pass');
    expect(result.findings).toHaveLength(MAX_RESULT_FINDINGS);
    expect(result.findings.at(-1)?.location).toBe(`notes.txt:${MAX_RESULT_FINDINGS}`);
    expect(result.metrics).toMatchObject({ todos: 250, findingsOmitted: 250 - MAX_RESULT_FINDINGS });
    const evidence = await readEvidence(store, result.evidence);
    expect(evidence.findings).toHaveLength(250);
    expect(evidence.findings.at(-1)?.location).toBe('notes.txt:250');
  });

  test('the same gate on the same input stores byte-identical evidence, on any worker and any attempt', async () => {
    const notes = 'TODO: one\nfine\nTODO: two\n';
    const manifest = await storedModel(store, notes);
    const waiver: Waiver = {
      gate: 'todo',
      ruleIds: ['todo.open'],
      justification: 'tracked in ML-7',
      approver: 'alice',
      expiresAt: '2999-01-01T00:00:00.000Z',
    };

    const first = await run(input(manifest, { severity: 'low' }, [waiver]));
    const second = await run(input(manifest, { severity: 'low' }, [waiver]));
    // Another worker with its own store: the same measurement gives the same digest.
    const elsewhere = new FilesystemStore(join(dir, 'other-store'));
    const third = await run(input(await storedModel(elsewhere, notes), { severity: 'low' }, [waiver]), elsewhere);

    expect(first.verdict).toBe('pass');
    expect(second.evidence).toBe(first.evidence);
    expect(third.evidence).toBe(first.evidence);
    const bytes = await readEvidenceBytes(store, first.evidence);
    expect((await readEvidenceBytes(store, second.evidence)).equals(bytes)).toBe(true);
    expect((await readEvidenceBytes(elsewhere, third.evidence)).equals(bytes)).toBe(true);
    // Neither the activity's times nor the store's place are in it.
    const text = bytes.toString('utf8');
    expect(text).not.toContain(first.startedAt.slice(0, 10));
    expect(text).not.toContain(dir);
  });
});
