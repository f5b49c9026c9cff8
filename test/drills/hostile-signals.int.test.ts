/**
 * Drill: hostile signal and update payloads against a real release awaiting approval (fast-check, fixed seed and
 * budget). Whatever arrives, the release keeps running, answers its status, stays under the status size bound,
 * counts nothing it should not, and never fails a workflow task (which would leave it retrying forever).
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import {
  approveSignal,
  decideUpdate,
  keepSignal,
  rejectSignal,
  retrySignal,
  rollbackSignal,
} from '../../contract/definitions';
import { MAX_REFUSED, MAX_STATUS_BYTES } from '../../contract/limits';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let releaseId: string;

beforeAll(async () => {
  env = await createReleaseEnv('hostile-signals');
  await env.startWorker();
  const request = await env.model('hostile', '1.0.0', { environment: 'production' });
  ({ releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue }));
  await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.stage === 'approval',
    60_000,
  );
});
afterAll(async () => env?.close());

/** Payloads an attacker or a careless script might send: anything, near-valid shapes, oversized and odd strings. */
const oddString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', '__proto__', 'constructor', '| --- |', '<script>', '](http://x)', '\n\n# h'),
  fc.integer({ min: 1, max: 200_000 }).map((n) => 'a'.repeat(n)),
);
const payload = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.record(
    {
      approver: fc.oneof(oddString, fc.anything({ maxDepth: 1 })),
      decision: fc.oneof(fc.constantFrom('approve', 'reject'), oddString),
      comment: fc.oneof(oddString, fc.anything({ maxDepth: 1 })),
      validUntil: fc.oneof(
        oddString,
        fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'x' : d.toISOString())),
      ),
      requestedBy: oddString,
    },
    { requiredKeys: [] },
  ),
);
/** Approvers that may count: hostile payloads must not carry them by chance. */
const REAL = ['amara', 'boris', 'cyril', 'delia', 'enzo', 'fabian'];
const harmless = (p: unknown): boolean =>
  !(typeof p === 'object' && p !== null && REAL.includes((p as { approver?: unknown }).approver as string));

it('survives hostile signal payloads', async () => {
  const handle = env.client.workflow.getHandle(releaseId);
  // rollback and keep too: a release that is not watching a stalled rollout records them as refused.
  const signals = [approveSignal, rejectSignal, retrySignal, rollbackSignal, keepSignal];
  await fc.assert(
    fc.asyncProperty(fc.nat(signals.length - 1), payload.filter(harmless), async (which, p) => {
      await handle.signal(signals[which] as typeof approveSignal, p as never);
    }),
    { seed: 14, numRuns: 80 },
  );
  const status = await eventually(
    () => getRelease(env.client, releaseId),
    (s) => s.refused.length > 0,
  );
  expect(status.stage).toBe('approval');
  expect(status.approvals).toEqual([]);
  expect(status.refused.length).toBeLessThanOrEqual(MAX_REFUSED);
  expect(Buffer.byteLength(JSON.stringify(status))).toBeLessThan(MAX_STATUS_BYTES);
});

it('answers hostile update payloads with a validation error or a refusal, never a stuck release', async () => {
  const handle = env.client.workflow.getHandle(releaseId);
  await fc.assert(
    fc.asyncProperty(payload.filter(harmless), async (p) => {
      try {
        const answer = await handle.executeUpdate(decideUpdate, { args: [p as never] });
        expect(answer.accepted).toBe(false);
        expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThan(MAX_STATUS_BYTES);
      } catch (err) {
        expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
        expect((err as WorkflowUpdateFailedError).cause?.message.length ?? 0).toBeLessThan(4_000);
      }
    }),
    { seed: 15, numRuns: 60 },
  );
  const status = await getRelease(env.client, releaseId);
  expect(status.stage).toBe('approval');
  expect(status.approvals).toEqual([]);
  expect(Buffer.byteLength(JSON.stringify(status))).toBeLessThan(MAX_STATUS_BYTES);
});

it('never failed a workflow task on the way', async () => {
  const history = await env.client.workflow.getHandle(releaseId).fetchHistory();
  const failedTasks = (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes);
  expect(failedTasks).toEqual([]);
});
