/**
 * The HTTP start endpoint against the real dev server and a real release worker, spoken to with fetch. The door is
 * open for local use here (loopback, no auth: the body names the approver); http-auth.int.test.ts covers tokens.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer, MAX_BODY_BYTES } from '../../client/http-server';
import type { StartedRelease } from '../../client/release-client';
import type { DecideOutcome, ReleaseStatus } from '../../contract/types';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let server: Server;
let base: string;
const logged: unknown[] = [];

beforeAll(async () => {
  env = await createReleaseEnv('http');
  await env.startWorker();
  server = createHttpServer({
    client: env.client,
    taskQueue: env.settings.taskQueue,
    // The polls below ask far more often than a caller would.
    ratePerMinute: 100_000,
    logError: (_message, err) => logged.push(err),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  await env?.close();
  expect(logged).toEqual([]);
});

interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

async function call<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

interface ErrorBody {
  error: string;
  code: string;
  problems: string[];
}

const statusPath = (id: string) => `/releases/${encodeURIComponent(id)}`;
const decisionsPath = (id: string) => `${statusPath(id)}/decisions`;

async function startAndAwaitApproval(name: string, version: string, environment: string) {
  const request = await env.model(name, version, { environment });
  const started = await call<StartedRelease>('POST', '/releases', request);
  expect(started.status).toBe(201);
  await eventually(
    () => call<ReleaseStatus>('GET', statusPath(started.body.releaseId)),
    (r) => r.body.stage === 'approval',
  );
  return { request, releaseId: started.body.releaseId };
}

describe('HTTP start endpoint', () => {
  it('starts a release (201), answers the same start with the existing one (200), and counts an approval', async () => {
    const request = await env.model('http-credit', '1.0.0');
    const first = await call<StartedRelease>('POST', '/releases', request);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ releaseId: 'release/http-credit/1.0.0/production', started: true });
    expect(first.headers.get('location')).toBe(statusPath(first.body.releaseId));

    const again = await call<StartedRelease>('POST', '/releases', request);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ ...first.body, started: false });

    const { releaseId } = first.body;
    const waiting = await eventually(
      () => call<ReleaseStatus>('GET', statusPath(releaseId)),
      (r) => r.status === 200 && r.body.stage === 'approval',
    );
    expect(waiting.body).toMatchObject({ releaseId, model: 'http-credit', environment: 'production' });
    expect(waiting.body.awaiting?.approvalsMissing).toBe(2);
    // The id may also be sent raw, slashes and all.
    const raw = await call<ReleaseStatus>('GET', `/releases/${releaseId}`);
    expect(raw.body.releaseId).toBe(releaseId);

    const approved = await call<DecideOutcome>('POST', decisionsPath(releaseId), {
      approver: 'boris',
      decision: 'approve',
      comment: 'metrics ok',
    });
    expect(approved.status).toBe(200);
    expect(approved.body.accepted).toBe(true);
    expect(approved.body.status.approvals.map((a) => `${a.approver}:${a.role}`)).toEqual(['boris:ml-lead']);
    expect(approved.body.status.awaiting?.from).toEqual(['amara']);

    const listed = await eventually(
      () => call<{ releaseId: string; stage?: string }[]>('GET', '/releases?model=http-credit&environment=production'),
      (r) => r.body.length === 1,
    );
    expect(listed.status).toBe(200);
    expect(listed.body[0]).toMatchObject({ releaseId, stage: 'approval' });
    await env.client.workflow.getHandle(releaseId).terminate('test cleanup');
  });

  it('answers a refused decision with 200, accepted false and why', async () => {
    const { releaseId } = await startAndAwaitApproval('http-refusals', '0.1.0', 'production');
    const stranger = await call<DecideOutcome>('POST', `/releases/${releaseId}/decisions`, {
      approver: 'mallory',
      decision: 'approve',
    });
    expect(stranger.status).toBe(200);
    expect(stranger.body).toMatchObject({ accepted: false, reason: expect.stringContaining('not an approver') });
    expect(stranger.body.status.approvals).toEqual([]);

    const malformed = await call<ErrorBody>('POST', decisionsPath(releaseId), { approver: '', decision: 'maybe' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.problems).toEqual([
      expect.stringMatching(/^approver: approver is required/),
      expect.stringMatching(/^decision: /),
    ]);
    await env.client.workflow.getHandle(releaseId).terminate('test cleanup');
  });

  it('answers a decision on a release that ended with 409', async () => {
    const { releaseId } = await startAndAwaitApproval('http-rejected', '2.0.0', 'staging');
    const rejected = await call<DecideOutcome>('POST', decisionsPath(releaseId), {
      approver: 'boris',
      decision: 'reject',
      comment: 'not this one',
    });
    expect(rejected.body.accepted).toBe(true);
    await env.client.workflow.getHandle(releaseId).result();

    const late = await call<ErrorBody>('POST', decisionsPath(releaseId), { approver: 'amara', decision: 'approve' });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'RELEASE_ENDED', error: expect.stringContaining('rejected') });
    const final = await call<ReleaseStatus>('GET', statusPath(releaseId));
    expect(final.body).toMatchObject({ stage: 'rejected', reason: expect.stringContaining('not this one') });
  });

  it('refuses a bad request body with 400 and one problem per field, starting nothing', async () => {
    const request = await env.model('Bad Name', '1.0.0');
    const bad = await call<ErrorBody>('POST', '/releases', { ...request, requestedBy: undefined, extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('INVALID_REQUEST');
    expect(bad.body.problems).toHaveLength(3);
    expect(bad.body.problems.join('\n')).toMatch(/^model\.name: /m);
    expect(bad.body.problems.join('\n')).toMatch(/^requestedBy: /m);
    expect(bad.body.problems.join('\n')).toMatch(/extra/);

    const unknownEnv = await call<ErrorBody>(
      'POST',
      '/releases',
      await env.model('http-moon', '1.0.0', { environment: 'moon' }),
    );
    expect(unknownEnv.status).toBe(400);
    expect(unknownEnv.body.problems.join('\n')).toMatch(/no rule for environment "moon"/);

    const notJson = await call<ErrorBody>('POST', '/releases', '{"model": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toMatch(/not valid JSON/);
    expect(notJson.body.problems[0]).toMatch(/^body: /);

    const tooLarge = await call<ErrorBody>('POST', '/releases', JSON.stringify({ pad: 'x'.repeat(MAX_BODY_BYTES) }));
    expect(tooLarge.status).toBe(413);
    // Without a Content-Length (chunked), the limit holds while the body streams in.
    const chunk = new TextEncoder().encode(' '.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => (sent++ < 20 ? controller.enqueue(chunk) : controller.close()),
    });
    const chunked = await fetch(`${base}/releases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as ErrorBody).code).toBe('PAYLOAD_TOO_LARGE');

    const wrongType = await call<ErrorBody>('POST', '/releases', undefined, { 'content-type': 'text/plain' });
    expect(wrongType.status).toBe(415);

    const none = await call('GET', '/releases?model=http-moon');
    expect(none).toMatchObject({ status: 200, body: [] });
  });

  it('answers 404 for an unknown release, on status and on decisions', async () => {
    const status = await call<ErrorBody>('GET', statusPath('release/nobody/9.9.9/production'));
    expect(status.status).toBe(404);
    expect(status.body.code).toBe('NOT_FOUND');
    const decision = await call<ErrorBody>('POST', decisionsPath('release/nobody/9.9.9/production'), {
      approver: 'amara',
      decision: 'approve',
    });
    expect(decision.status).toBe(404);
    expect((await call('GET', '/nowhere')).status).toBe(404);
    expect((await call('DELETE', '/releases')).status).toBe(405);
  });
});
