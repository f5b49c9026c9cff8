/**
 * A release through a real worker with the payload codec on: the history Temporal stores holds none of the release's
 * plaintext (search attributes excepted: the server indexes them), while `mrel status` (the query, and the memo when
 * no worker answers) shows everything; a client without the keys reads nothing; and after a key rotation a worker
 * with [new, old] carries on the release written under the old key.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../../client/cli';
import { connectClient, getRelease, startRelease, type StartedRelease } from '../../client/release-client';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA, type CodecKey } from '../../client/connection/payload-codec';
import { approveSignal } from '../../contract/definitions';
import type { ReleaseStatus } from '../../contract/types';
import { createReleaseWorker } from '../../workers/release-worker';
import type { Settings } from '../../workers/settings';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { installQuietRuntime, writeSmallModel } from '../helpers/release-env';

const exec = promisify(execFile);
const oldKey: CodecKey = { id: 'k-2025', key: randomBytes(32) };
const newKey: CodecKey = { id: 'k-2026', key: randomBytes(32) };
const keysEnv = (...keys: CodecKey[]) => keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');

/** What the release carries that no one without the keys should read in Temporal's history. */
const MODEL = 'sealed-scorer';
const VERSION = '7.3.1';
const COMMENT = 'approved after the fairness review of sealed-scorer';
const REQUESTED_BY = 'ci-bot-7f3a';

let dir: string;
let native: NativeConnection;
let settings: Settings;
let client: Client;
let plainClient: Client;
let worker: Worker | undefined;
let workerDone: Promise<void> | undefined;
let release: StartedRelease;

beforeAll(async () => {
  installQuietRuntime();
  dir = await mkdtemp(join(tmpdir(), 'mrel-codec-'));
  const address = inject('temporalAddress');
  const gitopsRepo = join(dir, 'gitops.git');
  await exec('git', ['init', '--quiet', '--bare', '--initial-branch=main', gitopsRepo]);
  settings = {
    address,
    namespace: 'default',
    taskQueue: `codec-${Math.random().toString(36).slice(2, 8)}`,
    dataDir: dir,
    storeRoot: join(dir, 'store'),
    gitopsRepo,
    gitopsBranch: 'main',
    gitopsWorkRoot: join(dir, 'gitops-work'),
    configDir: FIXTURE_CONFIG_DIR,
    codecKeys: [oldKey],
  };
  native = await NativeConnection.connect({ address });
  await startWorker([oldKey]);
  client = await connectClient({}, { TEMPORAL_ADDRESS: address, MREL_CODEC_KEYS: keysEnv(oldKey) });
  plainClient = new Client({ connection: await Connection.connect({ address }) });

  const modelDir = join(dir, 'models', MODEL, VERSION);
  await writeSmallModel(modelDir, MODEL, VERSION);
  release = await startSealedRelease(client, MODEL, modelDir);
  await waitFor('stage approval', async () => (await getRelease(client, release.releaseId)).stage === 'approval');
  const handle = client.workflow.getHandle(release.releaseId);
  await handle.signal(approveSignal, { approver: 'amara', comment: COMMENT });
  // Once the worker has handled the signal, whatever it wrote in answer (memo, details) is in the history too.
  await waitFor('the signal handled', async () => {
    const events = await historyEvents();
    const signaled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes);
    return signaled >= 0 && events.slice(signaled).some((e) => e.workflowTaskCompletedEventAttributes);
  });
});

afterAll(async () => {
  await stopWorker();
  await native?.close();
  await client?.connection.close();
  await plainClient?.connection.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a release with the payload codec on', () => {
  it("leaves none of the release's plaintext in Temporal's history: every payload is AES-GCM under the key id", async () => {
    const events = await historyEvents();
    const { payloads, searchAttributes, texts, patchMarkers } = walk(
      events.map((e) =>
        temporal.api.history.v1.HistoryEvent.toObject(e as temporal.api.history.v1.HistoryEvent, { defaults: false }),
      ),
    );
    // Inputs, results, the signal, memo, user metadata: dozens of payloads, all sealed.
    expect(payloads.length).toBeGreaterThan(10);
    for (const p of payloads) {
      expect(meta(p, 'encoding')).toBe(ENCRYPTED_ENCODING);
      expect(meta(p, KEY_ID_METADATA)).toBe(oldKey.id);
    }
    for (const marker of patchMarkers) {
      const details = Object.values(marker.details as Record<string, { payloads: Payload[] }>);
      const values = details.flatMap((d) => d.payloads.map((p) => defaultPayloadConverter.fromPayload(p)));
      expect(values).toEqual([{ id: expect.stringMatching(/^[a-z-]+-v\d+$/), deprecated: false }]);
    }
    const stored = Buffer.concat([
      ...payloads.map((p) => Buffer.from(p.data ?? new Uint8Array())),
      ...texts.filter((t) => !mentionsReleaseId(t)).map((t) => Buffer.from(t)),
    ]);
    for (const secret of [MODEL, VERSION, COMMENT, REQUESTED_BY]) expect(stored.includes(secret), secret).toBe(false);

    // The exception: search attributes are indexed by the server, so the codec leaves them readable.
    const modelNames = searchAttributes.map((fields) => fields.ModelName).filter((p) => p !== undefined);
    expect(modelNames.length).toBeGreaterThan(0);
    expect(defaultPayloadConverter.fromPayload(modelNames[0]!)).toBe(MODEL);
  });

  it('shows everything to `mrel status` with the keys, and nothing to a client without them', async () => {
    const status = await cliStatus();
    expect(status).toMatchObject({
      releaseId: release.releaseId,
      model: MODEL,
      version: VERSION,
      stage: expect.any(String),
    });
    expect(JSON.stringify(status)).toContain(COMMENT);
    await expect(getRelease(plainClient, release.releaseId, { queryTimeoutMs: 3_000 })).rejects.toThrow(
      /binary\/encrypted/,
    );
  });

  it("decodes the release's memo when no worker answers", async () => {
    await stopWorker();
    const status = await getRelease(client, release.releaseId, { queryTimeoutMs: 2_000 });
    expect(status.served?.from).toBe('memo');
    expect(status).toMatchObject({ model: MODEL, version: VERSION });
  });

  it('carries on after a key rotation: a worker with [new, old] replays the old history and writes under the new key', async () => {
    await startWorker([newKey, oldKey]);
    const rotated = await connectClient(
      {},
      { TEMPORAL_ADDRESS: settings.address, MREL_CODEC_KEYS: keysEnv(newKey, oldKey) },
    );
    try {
      const status = await getRelease(rotated, release.releaseId, { queryTimeoutMs: 20_000 });
      expect(status.served).toBeUndefined();
      expect(status).toMatchObject({ model: MODEL, version: VERSION });
      await rotated.workflow
        .getHandle(release.releaseId)
        .signal(approveSignal, { approver: 'boris', comment: 'rotated' });
      await waitFor('a payload under the new key', async () => {
        const last = (await historyEvents()).filter((e) => e.workflowExecutionSignaledEventAttributes).at(-1);
        const input = last?.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0];
        return input !== undefined && meta(input, KEY_ID_METADATA) === newKey.id;
      });
    } finally {
      await rotated.connection.close();
    }
  });

  it('encrypts a failed release\'s reason and its activity\'s error: the history says only "Encoded failure"', async () => {
    // A source that is not there: acquire fails (non-retryable), naming the path, and the release fails with that.
    const missing = join(dir, 'models', `${MODEL}-b`, 'sealed-missing-dir');
    const rotated = await connectClient(
      {},
      { TEMPORAL_ADDRESS: settings.address, MREL_CODEC_KEYS: keysEnv(newKey, oldKey) },
    );
    const failed = await startSealedRelease(rotated, `${MODEL}-b`, missing);
    await waitFor('the release failed', async () => (await getRelease(rotated, failed.releaseId)).stage === 'failed');
    const status = await getRelease(rotated, failed.releaseId);
    await rotated.connection.close();
    expect(status.reason).toContain('sealed-missing-dir does not exist');

    const events = (await historyEvents(failed)).map((e) =>
      temporal.api.history.v1.HistoryEvent.toObject(e as temporal.api.history.v1.HistoryEvent, { defaults: false }),
    );
    const failures = events.flatMap((e) => {
      const attributes = e.activityTaskFailedEventAttributes ?? e.workflowExecutionFailedEventAttributes;
      return attributes?.failure ? [attributes.failure as Record<string, unknown>] : [];
    });
    expect(failures.length).toBeGreaterThanOrEqual(2);
    for (const failure of failures) {
      expect(failure.message).toBe('Encoded failure');
      expect(failure.stackTrace ?? '').toBe('');
    }
    const { payloads, texts } = walk(events);
    for (const p of payloads) expect(meta(p, 'encoding')).toBe(ENCRYPTED_ENCODING);
    const stored = Buffer.concat([
      ...payloads.map((p) => Buffer.from(p.data ?? new Uint8Array())),
      ...texts.filter((t) => !t.includes(failed.releaseId)).map((t) => Buffer.from(t)),
    ]);
    for (const secret of [MODEL, 'sealed-missing-dir', 'does not exist', REQUESTED_BY]) {
      expect(stored.includes(secret), secret).toBe(false);
    }
  });
});

/** A staging release of `name`@VERSION from `modelDir`, requested by REQUESTED_BY. */
function startSealedRelease(through: Client, name: string, modelDir: string): Promise<StartedRelease> {
  return startRelease(
    through,
    {
      model: { name, version: VERSION, source: `file://${modelDir}` },
      environment: 'staging',
      policy: 'default',
      requestedBy: REQUESTED_BY,
      team: 'risk',
      traffic: { averageRequestsPerSecond: 2, peakRequestsPerSecond: 5, compute: { msPerRequest: 4 } },
    },
    { taskQueue: settings.taskQueue, configDir: FIXTURE_CONFIG_DIR },
  );
}

async function startWorker(keys: CodecKey[]): Promise<void> {
  worker = await createReleaseWorker(
    { ...settings, codecKeys: keys },
    { connection: native, workflowBundle: { codePath: inject('encodedFailuresBundlePath') } },
  );
  workerDone = worker.run();
}

async function stopWorker(): Promise<void> {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await workerDone;
  worker = undefined;
  workerDone = undefined;
}

/** The raw history, as the server returns it to anyone allowed to read it: nothing decoded. */
async function historyEvents(of: StartedRelease = release): Promise<temporal.api.history.v1.IHistoryEvent[]> {
  const events: temporal.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  for (let page = 0; page < 50; page++) {
    const response = await client.workflowService.getWorkflowExecutionHistory({
      namespace: 'default',
      execution: { workflowId: of.releaseId, runId: of.runId },
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    events.push(...(response.history?.events ?? []));
    if (!response.nextPageToken || response.nextPageToken.length === 0) return events;
    nextPageToken = response.nextPageToken;
  }
  throw new Error('the history has more than 50 pages');
}

/** Every payload, every search-attribute map and every other string in the events. */
function walk(root: unknown) {
  const payloads: Payload[] = [];
  const searchAttributes: Record<string, Payload>[] = [];
  const texts: string[] = [];
  const patchMarkers: Record<string, unknown>[] = [];
  const visit = (node: unknown, key: string): void => {
    if (typeof node === 'string') texts.push(node);
    else if (node instanceof Uint8Array) texts.push(Buffer.from(node).toString('latin1'));
    else if (Array.isArray(node)) node.forEach((n) => visit(n, key));
    else if (node && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      // The SDK's patch markers (`patched()`) record only the patch id, in the clear, below any codec.
      if (key === 'markerRecordedEventAttributes' && record.markerName === 'core_patch') {
        patchMarkers.push(record);
        return;
      }
      if (key === 'searchAttributes') {
        searchAttributes.push((record.indexedFields ?? {}) as Record<string, Payload>);
        return;
      }
      if ('data' in record && 'metadata' in record) {
        payloads.push(record as Payload);
        return;
      }
      for (const [k, v] of Object.entries(record)) visit(v, k);
    }
  };
  visit(root, '');
  return { payloads, searchAttributes, texts, patchMarkers };
}

/** The workflow id names the model and version by design (one release per model@version→environment). */
function mentionsReleaseId(text: string): boolean {
  return text.includes(release.releaseId) || text.includes(encodeURIComponent(release.releaseId));
}

function meta(p: Payload, key: string): string {
  return Buffer.from(p.metadata?.[key] ?? new Uint8Array()).toString();
}

async function cliStatus(): Promise<ReleaseStatus> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    ['--json', 'status', release.releaseId],
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    (o) => connectClient(o, { TEMPORAL_ADDRESS: settings.address, MREL_CODEC_KEYS: keysEnv(oldKey) }),
  );
  expect(err).toEqual([]);
  expect(code).toBe(0);
  return JSON.parse(out.join('\n')) as ReleaseStatus;
}

async function waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up waiting for ${what}`);
}
