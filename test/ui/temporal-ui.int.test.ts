/**
 * What a release manager sees in the Temporal UI, in a real browser: Debian's Chromium driven by playwright-core
 * (nothing downloaded), against a dev server of its own with the UI on (the run's shared server is headless) and a
 * real release worker. Screenshots of every step are kept under .artifacts/ui/.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { chromium, type Browser, type FrameLocator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { getRelease, startRelease, type StartedRelease } from '../../client/release-client';
import { freePort, startDevServer, type DevServer } from '../../scripts/dev-server';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';
import { createReleaseWorker } from '../../workers/release-worker';
import type { ReleaseStatus } from '../../contract/types';
import { writeSmallModel } from '../helpers/release-env';

const exec = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(PROJECT_ROOT, '.artifacts', 'ui');
/** Every wait in the browser is bounded by this; the UI polls the server, so a state shows within a few seconds. */
const UI_TIMEOUT_MS = 15_000;
const APPROVAL_FILTER = 'ReleaseStage = "approval" AND ModelName = "credit-risk"';

let dir: string;
let server: DevServer;
let native: NativeConnection;
let client: Client;
let worker: Worker;
let workerDone: Promise<void>;
let browser: Browser;
let page: Page;
/** credit-risk@1.0.0 → staging, waiting for one approval: the release the UI is used on. */
let waiting: StartedRelease;
/** churn-score@1.0.0 → staging, waiting too: another model, which the filter must leave out. */
let otherModel: StartedRelease;
/** credit-risk@0.9.0 → staging, stopped by the scan gate: a pickle that runs a shell command when loaded. */
let failed: StartedRelease;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  dir = await mkdtemp(join(tmpdir(), 'mrel-ui-'));
  await mkdir(SCREENSHOTS, { recursive: true });
  server = await startDevServer({ uiPort: await freePort(), logFile: join(dir, 'temporal.log') });
  const gitopsRepo = join(dir, 'gitops.git');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo]);
  const settings = {
    address: server.address,
    namespace: 'default',
    taskQueue: 'ui-test',
    dataDir: dir,
    storeRoot: join(dir, 'store'),
    gitopsRepo,
    gitopsBranch: 'main',
    gitopsWorkRoot: join(dir, 'gitops-work'),
  };
  native = await NativeConnection.connect({ address: server.address });
  worker = await createReleaseWorker(settings, {
    connection: native,
    workflowBundle: { codePath: inject('workflowBundlePath') },
  });
  workerDone = worker.run();
  client = new Client({ connection: await Connection.connect({ address: server.address }) });

  const start = async (name: string, version: string) =>
    startRelease(client, await writeModel(name, version), { taskQueue: settings.taskQueue });
  waiting = await start('credit-risk', '1.0.0');
  otherModel = await start('churn-score', '1.0.0');
  const trojan = await writeModel('credit-risk', '0.9.0');
  await exec(join(PROJECT_ROOT, '.venv', 'bin', 'python'), [
    '-c',
    'import os, pickle, sys\nclass P:\n    def __reduce__(self):\n        return (os.system, ("id",))\nopen(sys.argv[1], "wb").write(pickle.dumps({"w": P()}, protocol=4))',
    join(trojan.model.source.slice('file://'.length), 'weights.pkl'),
  ]);
  failed = await startRelease(client, trojan, { taskQueue: settings.taskQueue });

  await waitForStage(waiting.releaseId, 'approval');
  await waitForStage(otherModel.releaseId, 'approval');
  await waitForStage(failed.releaseId, 'failed');
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(UI_TIMEOUT_MS);
});

afterAll(async () => {
  await browser?.close();
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await workerDone;
  await native?.close();
  await client?.connection.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the Temporal UI, as a release manager uses it', () => {
  it('lists the release, and the search-attribute filter finds it and nothing else', async () => {
    await page.goto(`${server.uiUrl}/namespaces/default/workflows`);
    const list = page.getByRole('table', { name: 'Workflows' });
    await poll(() => list.getByRole('link', { name: waiting.releaseId }).count()).toBe(1);
    await poll(() => list.getByRole('link', { name: failed.releaseId }).count()).toBe(1);
    await shot('list');

    await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(APPROVAL_FILTER)}`);
    await page.getByRole('button', { name: 'ReleaseStage = "approval"' }).waitFor();
    await page.getByRole('button', { name: 'ModelName = "credit-risk"' }).waitFor();
    await list.getByRole('link', { name: waiting.releaseId }).waitFor();
    await shot('filtered');
    // Same model but failed, and waiting but another model: the filter leaves both out.
    expect(await list.getByRole('link', { name: failed.releaseId }).count()).toBe(0);
    expect(await list.getByRole('link', { name: otherModel.releaseId }).count()).toBe(0);
    await poll(() => list.getByRole('row').count()).toBe(2);
  });

  it("shows the release's summary and a details table with every gate, and what is awaited from whom", async () => {
    await openMetadata(waiting);
    await poll(() => panel('Summary').locator('body').innerText()).toContain('credit-risk@1.0.0 → staging');
    const details = panel('Current Details');
    await poll(() => details.locator('body').innerText()).toContain('stage approval');
    expect(await gateRows(details)).toEqual({
      acquire: expect.stringMatching(/^✅ pass/),
      scan: expect.stringMatching(/^✅ pass/),
      license: expect.stringMatching(/^✅ pass/),
      cost: expect.stringMatching(/^✅ pass/),
      approval: expect.stringMatching(/^⏳ awaiting\s+awaiting 1 more .*from: amara, boris, delia/),
      gitops: expect.stringMatching(/^· pending/),
    });
    await shot('awaiting-approval');
  });

  it('counts an approval sent with "Send a Signal", and the page then shows the release released', async () => {
    await page.goto(workflowUrl(waiting, 'history'));
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
    const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
    await dialog.getByRole('button', { name: 'Select a signal' }).click();
    // The worker describes its signals, so the UI offers approve with what its input must be.
    const approve = dialog.getByRole('option', { name: /^approve \S/ });
    expect(await approve.innerText()).toContain('approver');
    await approve.click();
    await dialog.getByRole('textbox', { name: 'Data' }).click();
    await page.keyboard.insertText('{"approver":"amara"}');
    await shot('send-signal');
    await dialog.getByRole('button', { name: 'Submit' }).click();
    await page.getByText('Workflow signaled.').first().waitFor();

    const details = panel('Current Details');
    await reloadUntil(async () => {
      await openMetadata(waiting);
      return (await details.locator('body').innerText()).includes('stage released');
    });
    expect(await gateRows(details)).toMatchObject({
      approval: expect.stringMatching(/^✅ approved\s+approved by amara \(release-manager\)/),
      gitops: expect.stringMatching(/^✅ committed\s+[0-9a-f]{12} on main/),
    });
    await shot('released');
    await releaseState(/completed/i).waitFor();
    const status = await getRelease(client, waiting.releaseId);
    expect(status.stage).toBe('released');
    expect(status.approvals.map((a) => a.approver)).toEqual(['amara']);
  });

  it('shows why a release failed on its page', async () => {
    await openMetadata(failed);
    const details = panel('Current Details');
    await poll(() => details.locator('body').innerText()).toMatch(/Outcome: failed: scan fail: /);
    expect(await gateRows(details)).toMatchObject({
      scan: expect.stringMatching(/^❌ fail/),
      approval: expect.stringMatching(/^· not run/),
      gitops: expect.stringMatching(/^· not run/),
    });
    await shot('failed-details');
    await releaseState(/failed/i).waitFor();
    await page.goto(workflowUrl(failed, 'history'));
    await page
      .getByText(/scan fail: /)
      .first()
      .waitFor();
    await shot('failed-history');
  });
});

/** A small TensorFlow.js layers model with an Apache-2.0 model card, and a staging request for it. */
async function writeModel(name: string, version: string) {
  const modelDir = join(dir, 'models', name, version);
  await writeSmallModel(modelDir, name, version);
  return {
    model: { name, version, source: `file://${modelDir}` },
    environment: 'staging',
    policy: 'default',
    requestedBy: 'ci',
    team: 'risk',
    traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
  };
}

async function waitForStage(releaseId: string, stage: ReleaseStatus['stage']): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const status = await getRelease(client, releaseId).catch(() => undefined);
    if (status?.stage === stage) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${releaseId} did not reach stage ${stage} within 30 s`);
}

/** expect.poll with the UI's bound: the UI loads its data after the page, so assertions retry for a while. */
function poll<T>(probe: () => Promise<T>) {
  return expect.poll(probe, { timeout: UI_TIMEOUT_MS, interval: 250 });
}

function workflowUrl(release: StartedRelease, tab: string): string {
  return `${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(release.releaseId)}/${release.runId}/${tab}`;
}

async function openMetadata(release: StartedRelease): Promise<void> {
  await page.goto(workflowUrl(release, 'user-metadata'));
  await page.getByRole('heading', { name: 'Current Details', exact: true }).waitFor();
}

/** The UI renders each markdown field (summary, details, current details) in an iframe below its heading. */
function panel(heading: string): FrameLocator {
  return page.getByRole('heading', { name: heading, exact: true }).locator('xpath=following::iframe[1]').contentFrame();
}

/** The workflow's state badge next to its id (Running, Completed, Failed). */
function releaseState(state: RegExp) {
  return page.getByRole('main').getByRole('status').filter({ hasText: state }).first();
}

/** The details table as { stage: "verdict detail" }. */
async function gateRows(details: FrameLocator): Promise<Record<string, string>> {
  const table: Record<string, string> = {};
  for (const row of await details.getByRole('row').all()) {
    const cells = (await row.getByRole('cell').allInnerTexts()).map((c) => c.replace(/\s+/g, ' ').trim());
    if (cells.length === 3 && cells[0]) table[cells[0]] = `${cells[1]} ${cells[2]}`;
  }
  return table;
}

/** Reloads until the page shows what the probe waits for; bounded, since the UI reads the status when it loads. */
async function reloadUntil(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 10; i++) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  throw new Error('the page did not show the expected state after 10 reloads');
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  // The accessibility tree beside the picture: what the locators above saw, for reading a failure without a browser.
  await writeFile(join(SCREENSHOTS, `${name}.aria.yml`), await page.locator('body').ariaSnapshot());
}
