/** `mrel watch` against the real dev server: it follows a release live and stops when someone must act. */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../client/cli';
import { decide, startRelease } from '../../client/release-client';
import { runMrel } from '../helpers/command';
import { createReleaseEnv, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let slow: Server;
let slowUrl: string;
let modelDir: string;

beforeAll(async () => {
  env = await createReleaseEnv('watch');
  await env.startWorker();
  // Serves a model directory's files from `modelDir`, and one more text file in 24 pieces over about 6 s, so that
  // acquire is seen in progress.
  slow = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '').replace(/^\/model\//, ''));
    if (name !== 'notes.txt') {
      readFile(join(modelDir, name)).then(
        (body) => res.writeHead(200, { 'content-length': body.length }).end(body),
        () => res.writeHead(404).end(),
      );
      return;
    }
    res.writeHead(200, { 'content-length': 24 * 65536 });
    let sent = 0;
    const timer = setInterval(() => {
      res.write(Buffer.alloc(65536, 'model card text\n'));
      if (++sent === 24) {
        clearInterval(timer);
        res.end();
      }
    }, 250);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/model/`;
});
afterAll(async () => {
  await env?.close();
  slow?.closeAllConnections();
  await new Promise((resolve) => slow?.close(resolve));
});

const mrel = (...args: string[]) => runMrel(env.settings.address, args);

describe('mrel watch', () => {
  it('shows acquire progress from its heartbeats, each gate as it lands, and stops at approval', async () => {
    const request = await env.model('watched', '1.0.0', { environment: 'staging' });
    modelDir = new URL(request.model.source).pathname;
    request.model.source = slowUrl;
    request.model.files = ['README.md', 'config.json', 'model.json', 'weights/dense.bin', 'notes.txt'];
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    const watched = await mrel('watch', releaseId, '--interval', '200');
    expect(watched.code).toBe(EXIT.ok);
    expect(watched.out).toMatch(/… acquireModel started, attempt 1 \{"file":"[\w./]+","bytes":\d+\}/);
    expect(watched.out).toMatch(/^ {2}acquire: pass — 5 file\(s\), 1\.5 MiB/m);
    expect(watched.out).toMatch(/^ {2}scan: \w+ — /m);
    expect(watched.out).toMatch(/^stage approval$/m);
    expect(watched.out).toMatch(/^ {2}awaiting \d approval\(s\) from \w+/m);
    // Each line once, however often it was seen.
    const lines = watched.out.split('\n');
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('exits 0 for a released release and 1 for a rejected one, at once', async () => {
    const request = await env.model('watched-end', '1.0.0', { environment: 'staging' });
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    await mrel('watch', releaseId, '--interval', '200');
    await decide(env.client, releaseId, { approver: 'boris', decision: 'reject', comment: 'not now' });
    await env.client.workflow.getHandle(releaseId).result();
    const rejected = await mrel('watch', releaseId);
    expect(rejected.code).toBe(EXIT.fail);
    expect(rejected.out).toMatch(/^stage rejected$/m);
    expect((await mrel('watch', releaseId, '--interval', '5')).code).toBe(EXIT.usage);
  });
});
