/**
 * Records workflow histories into test/histories/ when MREL_RECORD_HISTORIES=1, so the replay test can check that
 * workflow changes stay compatible with releases already running. Recording is a deliberate act: review and
 * commit the files it writes.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';

export const HISTORIES_DIR = join(PROJECT_ROOT, 'test', 'histories');

export async function recordHistory(client: Client, workflowId: string, name: string): Promise<void> {
  if (process.env.MREL_RECORD_HISTORIES !== '1') return;
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  await writeFile(join(HISTORIES_DIR, `${name}.json`), historyToJSON(history));
}
