/**
 * The Temporal UI shows an encrypted release decrypted through `mrel codec-server`, in a real browser (Debian's
 * Chromium driven by playwright-core, as test/ui does), against a dev server with the UI of its own: without the codec
 * server the page shows ciphertext; after signing in at the codec server and setting it in the UI's codec settings
 * ("Include cross-origin credentials" on: the UI then sends the session cookie), the same page shows the request, and
 * a failed release's page shows its reason (an encoded failure: only "Encoded failure" is stored in the clear).
 * Screenshots of every step are kept under .artifacts/codec-ui/.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, getRelease, startRelease, type StartedRelease } from '../../client/release-client';
import type { CodecKey } from '../../client/connection/payload-codec';
import { freePort, startDevServer, type DevServer } from '../../scripts/dev-server';
import { PROJECT_ROOT, temporalCliPath } from '../../scripts/temporal-cli';
import { createReleaseWorker } from '../../workers/release-worker';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { installQuietRuntime, writeSmallModel } from '../helpers/release-env';

const exec = promisify(execFile);
type JsonPayload = { metadata: Record<string, string>; data: string };
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(PROJECT_ROOT, '.artifacts', 'codec-ui');
const UI_TIMEOUT_MS = 15_000;
const key: CodecKey = { id: 'k-ui', key: randomBytes(32) };
const KEYS = `${key.id}:${key.key.toString('base64')}`;
const TOKEN = randomBytes(24).toString('hex');
/** In the release's input only: the page shows it once the codec server decrypts the input. */
const REQUESTED_BY = 'ci-bot-sealed-4d2e';

let dir: string;
let server: DevServer;
let native: NativeConnection;
let client: Client;
let worker: Worker;
let workerDone: Promise<void>;
let codecServer: ChildProcess;
let codecUrl: string;
let browser: Browser;
let page: Page;
let release: StartedRelease;

beforeAll(async () => {
  installQuietRuntime();
  dir = await mkdtemp(join(tmpdir(), 'mrel-codec-ui-'));
  await mkdir(SCREENSHOTS, { recursive: true });
  server = await startDevServer({ uiPort: await freePort(), logFile: join(dir, 'temporal.log') });
  const gitopsRepo = join(dir, 'gitops.git');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo]);
  const settings = {
    address: server.address,
    namespace: 'default',
    taskQueue: 'codec-ui-test',
    dataDir: dir,
    storeRoot: join(dir, 'store'),
    gitopsRepo,
    gitopsBranch: 'main',
    gitopsWorkRoot: join(dir, 'gitops-work'),
    configDir: FIXTURE_CONFIG_DIR,
    codecKeys: [key],
  };
  native = await NativeConnection.connect({ address: server.address });
  worker = await createReleaseWorker(settings, {
    connection: native,
    workflowBundle: { codePath: inject('encodedFailuresBundlePath') },
  });
  workerDone = worker.run();
  client = await connectClient({}, { TEMPORAL_ADDRESS: server.address, MREL_CODEC_KEYS: KEYS });
  const modelDir = join(dir, 'models', 'credit-risk', '2.0.0');
  await writeSmallModel(modelDir, 'credit-risk', '2.0.0');
  release = await startCreditRisk('2.0.0', modelDir);
  for (let i = 0; i < 150; i++) {
    if ((await getRelease(client, release.releaseId).catch(() => undefined))?.stage === 'approval') break;
    await new Promise((r) => setTimeout(r, 200));
  }

  const uiOrigin = new URL(server.uiUrl as string).origin;
  const tokenFile = join(dir, 'codec.token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  codecServer = spawn(
    process.execPath,
    [
      join(PROJECT_ROOT, 'bin', 'mrel.js'),
      'codec-server',
      '--listen',
      '127.0.0.1:0',
      '--origin',
      uiOrigin,
      '--token-file',
      tokenFile,
    ],
    { env: { ...process.env, MREL_CODEC_KEYS: KEYS }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const listening = await new Promise<string>((resolve, reject) => {
    let out = '';
    codecServer.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const port = /codec server on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1];
      if (port) resolve(port);
    });
    codecServer.once('exit', (code) => reject(new Error(`the codec server exited with ${code}`)));
  });
  // Same host name as the UI (localhost), so that the session cookie is same-site for the UI's requests.
  codecUrl = `http://localhost:${listening}`;

  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(UI_TIMEOUT_MS);
});

afterAll(async () => {
  await browser?.close();
  if (codecServer?.exitCode === null) {
    const exited = new Promise((r) => codecServer.once('exit', r));
    codecServer.kill('SIGTERM');
    await exited;
  }
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await workerDone;
  await native?.close();
  await client?.connection.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the Temporal UI with the codec server', () => {
  it('shows only ciphertext for the release input without the codec server', async () => {
    await page.goto(historyUrl());
    const input = page.getByRole('textbox', { name: 'Input' });
    // The UI shows a payload it cannot decode as its raw data: the ciphertext, base64.
    await expect.poll(() => input.innerText(), { timeout: UI_TIMEOUT_MS }).toMatch(/^"[A-Za-z0-9+/]{200,}={0,2}"$/);
    expect(await page.locator('body').innerText()).not.toContain(REQUESTED_BY);
    await shot('encrypted');
  });

  it('shows the decrypted input once signed in at the codec server and set in the UI', async () => {
    await page.goto(`${codecUrl}/login`);
    await page.getByLabel('Codec server token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in.').waitFor();
    await shot('codec-login');

    await page.goto(historyUrl());
    await page.getByRole('button', { name: 'Configure Codec Server' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('radio', { name: /Use my browser setting/ }).check();
    await shot('codec-settings-empty');
    await dialog.getByRole('textbox', { name: 'Codec Server browser endpoint' }).fill(codecUrl);
    // Without it the UI's fetch carries no cookie, and the codec server answers 401.
    // The switch is a visually hidden checkbox under its label: the label is what a person clicks.
    await dialog.getByText('Include cross-origin credentials', { exact: true }).click();
    expect(await dialog.getByRole('switch', { name: 'Include cross-origin credentials' }).isChecked()).toBe(true);
    await shot('codec-settings');
    await dialog.getByRole('button', { name: /apply/i }).click();

    await page.goto(historyUrl());
    const input = page.getByRole('textbox', { name: 'Input' });
    await expect.poll(() => input.innerText(), { timeout: UI_TIMEOUT_MS }).toContain(REQUESTED_BY);
    expect(await input.innerText()).toContain('"credit-risk"');
    await shot('decrypted');
  });

  it("shows a failed release's reason, stored as an encoded failure, decrypted through the codec server", async () => {
    // A source that is not there: the release fails with a reason naming the path, which the history holds encrypted.
    const missing = join(dir, 'models', 'credit-risk', 'sealed-missing-3f9a');
    const failed = await startCreditRisk('2.0.1', missing);
    for (let i = 0; i < 150; i++) {
      if ((await getRelease(client, failed.releaseId).catch(() => undefined))?.stage === 'failed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.goto(historyUrl(failed));
    await expect
      .poll(() => page.locator('body').innerText(), { timeout: UI_TIMEOUT_MS })
      .toContain('sealed-missing-3f9a does not exist');
    await shot('failure-decrypted');
  });
});

describe('the Temporal CLI with the codec server', () => {
  it('shows the decrypted history with --codec-endpoint and --codec-auth, and refuses without the token', async () => {
    const cli = temporalCliPath();
    expect(cli, 'the Temporal CLI (npm install puts it in .venv)').toBeDefined();
    const show = (...codecArgs: string[]) =>
      exec(cli as string, [
        'workflow',
        'show',
        '--address',
        server.address,
        '--workflow-id',
        release.releaseId,
        '--output',
        'json',
        '--codec-endpoint',
        codecUrl.replace('localhost', '127.0.0.1'),
        ...codecArgs,
      ]);
    const { stdout } = await show('--codec-auth', `Bearer ${TOKEN}`);
    // JSON output keeps payloads as protobuf JSON (base64), decoded by the codec server.
    const history = JSON.parse(stdout) as {
      events: { workflowExecutionStartedEventAttributes?: { input: { payloads: JsonPayload[] } } }[];
    };
    const [input] = history.events[0]?.workflowExecutionStartedEventAttributes?.input.payloads ?? [];
    expect(Buffer.from(input?.metadata.encoding ?? '', 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(input?.data ?? '', 'base64').toString())).toMatchObject({
      requestedBy: REQUESTED_BY,
    });
    // With a wrong token the codec server answers 401; the CLI reports it, or (on a busy machine) keeps retrying until
    // its deadline. Either way it fails and shows nothing decrypted.
    const refused = await show('--codec-auth', 'Bearer not-the-token-at-all').then(
      () => undefined,
      (err: Error & { stdout?: string }) => err,
    );
    expect(refused).toBeInstanceOf(Error);
    expect(`${refused?.message}${refused?.stdout ?? ''}`).not.toContain(REQUESTED_BY);
  });
});

/** A staging release of credit-risk@`version` from `modelDir`, requested by REQUESTED_BY, on the test's queue. */
function startCreditRisk(version: string, modelDir: string): Promise<StartedRelease> {
  return startRelease(
    client,
    {
      model: { name: 'credit-risk', version, source: `file://${modelDir}` },
      environment: 'staging',
      policy: 'default',
      requestedBy: REQUESTED_BY,
      team: 'risk',
      traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
    },
    { taskQueue: 'codec-ui-test', configDir: FIXTURE_CONFIG_DIR },
  );
}

function historyUrl(of: StartedRelease = release): string {
  return `${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(of.releaseId)}/${of.runId}/history`;
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  await writeFile(join(SCREENSHOTS, `${name}.aria.yml`), await page.locator('body').ariaSnapshot());
}
