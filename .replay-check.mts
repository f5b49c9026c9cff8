// scratch: bundle workflows and replay histories (not part of the product; deleted before finishing)
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker, bundleWorkflowCode, Runtime, DefaultLogger } from '@temporalio/worker';
Runtime.install({ logger: new DefaultLogger('ERROR') });
const dir = 'test/histories';
const noop = () => {};
const { code } = await bundleWorkflowCode({ workflowsPath: join(process.cwd(), 'workflows/index.ts'), logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop } as never });
const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
const histories = await Promise.all(files.map(async (f) => ({ workflowId: f, history: historyFromJSON(JSON.parse(await readFile(join(dir, f), 'utf8'))) })));
let bad = 0;
for await (const r of Worker.runReplayHistories({ workflowBundle: { code } }, histories)) {
  if (r.error) { bad++; console.log('FAIL', r.workflowId, String((r.error as Error).message).slice(0, 400)); } else console.log('ok', r.workflowId);
}
console.log(bad ? `${bad} failed` : 'all replay');
