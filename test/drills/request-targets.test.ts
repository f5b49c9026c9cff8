/**
 * Drill: every other place a request names on the network or on the worker's disk — the image's registry, the
 * traffic history as a CSV path or a Prometheus URL — obeys config/sources.yaml like model sources do, at the door
 * and in the gate that reads it, and nothing read from such a place is echoed into an error. Each test passes its own
 * policy (the run's environment would allow the temp directory and 127.0.0.0/8).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ApplicationFailure, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { stringify } from 'yaml';
import { requestSourceProblems, type SourcePolicy } from '../../activities/common/source-policy';
import { createCostActivities } from '../../activities/cost';
import { createImageScanActivities } from '../../activities/scan/image';
import { FilesystemStore } from '../../activities/store';
import { FailureType } from '../../contract/definitions';
import type { GateResult } from '../../contract/types';
import { gateInput, referenceWeights, request, smallCatalog, storeModel, test } from '../cost/fixtures';
import { readEvidenceBytes } from '../helpers/evidence';

const silent: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const SECRET = 'MREL_SECRET_TOKEN=s3cr3t-value-never-echoed';

let internal: Server;
let internalUrl: string;
const hits: string[] = [];

beforeAll(async () => {
  // An internal service that answers anything with a secret-bearing body.
  internal = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(500).end(SECRET);
  });
  await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
  internalUrl = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => internal.close(resolve)));

/** Every host listed, no private network: refusals come from the address ranges and the file roots. */
const strict = (tmp: string): SourcePolicy => ({
  roots: [join(tmp, 'models')],
  hosts: ['127.0.0.1', 'localhost', '169.254.169.254'],
  networks: [],
});

async function storedModel(tmp: string) {
  const dir = join(tmp, 'models', 'm');
  await mkdir(dir, { recursive: true });
  await referenceWeights('safetensors', join(dir, 'model.safetensors'));
  return storeModel(join(tmp, 'store'), dir, ['model.safetensors']);
}

describe('the door', () => {
  test('names the image registry, the history file and the Prometheus URL it refuses', async ({ tmp }) => {
    await mkdir(join(tmp, 'models', 'm'), { recursive: true });
    const problems = await requestSourceProblems(
      {
        model: { source: `file://${join(tmp, 'models', 'm')}` },
        image: { ref: '169.254.169.254/ml/serve:1.0' },
        traffic: {
          history: { csv: '/proc/self/environ', prometheus: { url: `${internalUrl}/` } },
        },
      },
      strict(tmp),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^image\.ref: 169\.254\.169\.254 is a link-local address, refused unless/),
      expect.stringMatching(/^traffic\.history\.csv: \/proc\/self\/environ is under \/proc, which is never a source/),
      expect.stringMatching(/^traffic\.history\.prometheus\.url: 127\.0\.0\.1 is a loopback address/),
    ]);
    const hosts = await requestSourceProblems(
      { model: { source: `file://${join(tmp, 'models', 'm')}` }, image: { ref: 'ghcr.io/org/serve:1' } },
      strict(tmp),
    );
    expect(hosts).toEqual([expect.stringMatching(/^image\.ref: host ghcr\.io is not an allowed source host/)]);
  });
});

describe('the cost gate', () => {
  /** The gate's result and its stored evidence, both as text: what reaches the history and the Git bundle. */
  async function estimate(tmp: string, history: unknown): Promise<{ result: GateResult; text: string }> {
    const pricingFile = join(tmp, 'pricing.yaml');
    const { file: _f, digest: _d, ...catalog } = smallCatalog() as { file?: string; digest?: string };
    await writeFile(pricingFile, stringify(catalog));
    const store = new FilesystemStore(join(tmp, 'store'));
    const activities = createCostActivities({ store, pricingFile, sourcePolicy: strict(tmp) });
    const declared = {
      averageRequestsPerSecond: 40,
      peakRequestsPerSecond: 100,
      compute: { msPerRequest: 4 },
      history,
    };
    const input = gateInput(await storedModel(tmp), request(declared as never));
    const result = (await new MockActivityEnvironment(undefined, { logger: silent }).run(
      activities.estimateCost,
      input,
    )) as GateResult;
    const evidence = (await readEvidenceBytes(store, result.evidence)).toString('utf8');
    return { result, text: `${JSON.stringify(result)}\n${evidence}` };
  }

  test('does not read a history file outside the roots, and says why', async ({ tmp }) => {
    const { result, text } = await estimate(tmp, { csv: '/proc/self/environ' });
    expect(text).toMatch(/traffic\.history\.csv: \/proc\/self\/environ is under \/proc/);
    expect(text).not.toContain('PATH=');
    expect(result.findings.map((f) => f.ruleId)).toContain('history-unusable');
  });

  test('does not query a Prometheus on a loopback address, and echoes nothing it could have said', async ({ tmp }) => {
    const before = hits.length;
    const { text } = await estimate(tmp, { prometheus: { url: `${internalUrl}/`, query: 'up' } });
    expect(text).toMatch(/traffic\.history\.prometheus\.url: 127\.0\.0\.1 is a loopback address/);
    expect(hits.length).toBe(before);
    expect(text).not.toContain('s3cr3t');
  });

  test('a history CSV inside the roots names lines, never their content', async ({ tmp }) => {
    await mkdir(join(tmp, 'models'), { recursive: true });
    const csv = join(tmp, 'models', 'history.csv');
    await writeFile(csv, `timestamp,requests\n2026-11-01T00:00:00Z,5\n${SECRET},7\n`);
    const { text } = await estimate(tmp, { csv });
    expect(text).toMatch(/line 3 needs a timestamp and a non-negative number/);
    expect(text).not.toContain('s3cr3t');
  });
});

describe('the image gate', () => {
  test('refuses a registry on a loopback address before any request, permanently', async ({ tmp }) => {
    const activities = createImageScanActivities({
      store: new FilesystemStore(join(tmp, 'store')),
      sourcePolicy: strict(tmp),
    });
    const before = hits.length;
    const input = gateInput(await storedModel(tmp), {
      ...request({ averageRequestsPerSecond: 1, peakRequestsPerSecond: 2 }),
      image: { ref: `${new URL(internalUrl).host}/ml/serve:1.0` },
    });
    const error = await new MockActivityEnvironment(undefined, { logger: silent })
      .run(activities.scanImage, input)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect((error as ApplicationFailure).type).toBe(FailureType.SourceNotAllowed);
    expect((error as ApplicationFailure).nonRetryable).toBe(true);
    expect((error as Error).message).toMatch(/^image\.ref: 127\.0\.0\.1 is a loopback address/);
    expect(hits.length).toBe(before);
  });
});
