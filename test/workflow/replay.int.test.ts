/**
 * Replay gate: every committed history in test/histories/ must replay against the current workflow code without
 * nondeterminism. A change that breaks this would break releases already running; it goes through patched().
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { expect, inject, it } from 'vitest';
import { HISTORIES_DIR } from '../helpers/histories';

it('replays every committed release history without nondeterminism', async () => {
  const files = (await readdir(HISTORIES_DIR)).filter((f) => f.endsWith('.json')).sort();
  expect(files.length).toBeGreaterThanOrEqual(4);
  const histories = await Promise.all(
    files.map(async (file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(await readFile(join(HISTORIES_DIR, file), 'utf8'))),
    })),
  );
  const results: { workflowId: string; error?: unknown }[] = [];
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: { codePath: inject('workflowBundlePath') } },
    histories,
  )) {
    results.push({ workflowId: result.workflowId, error: result.error });
  }
  expect(results.map((r) => r.workflowId).sort()).toEqual(files.map((f) => f.replace(/\.json$/, '')));
  for (const r of results) expect(r.error, `${r.workflowId} replays`).toBeUndefined();
});

it('fails the replay of a history whose commands the workflow would not issue (the gate is not blind)', async () => {
  const recorded = JSON.parse(await readFile(join(HISTORIES_DIR, 'released.json'), 'utf8')) as {
    events: { activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[];
  };
  const acquire = recorded.events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType.name === 'acquireModel',
  );
  expect(acquire, 'released.json schedules acquireModel').toBeDefined();
  (acquire?.activityTaskScheduledEventAttributes as { activityType: { name: string } }).activityType.name =
    'fetchModel';
  const replay = Worker.runReplayHistory(
    { workflowBundle: { codePath: inject('workflowBundlePath') } },
    historyFromJSON(recorded),
    'released-altered',
  );
  await expect(replay).rejects.toBeInstanceOf(DeterminismViolationError);
  await expect(replay).rejects.toThrow(/nondetermin/i);
});
