/**
 * Notifications: the policy's webhooks hear when a release awaits approval (who may approve, until when, a link),
 * when a gate fails and when the release ends; an undeliverable one is recorded in the status, never fatal. Against a
 * real HTTP receiver on 127.0.0.1, the real dev server, worker and git.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { notificationBody, releaseLink } from '../../activities/notify/message';
import { decide, getRelease, startRelease } from '../../client/release-client';
import { ConfigError, resolveReleaseConfig } from '../../config/loader';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import type { NotifyInput, ReleaseStatus } from '../../contract/types';
import { recordHistory } from '../helpers/histories';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

interface Received {
  path: string;
  body: { text?: string; summary?: string; '@type'?: string; potentialAction?: unknown };
}

let env: ReleaseEnv;
let receiver: Server;
let origin: string;
const received: Received[] = [];
const configDir = (): string => join(env.dir, 'config');

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/broken') {
        res.writeHead(400).end('no such hook');
        return;
      }
      received.push({
        path: req.url ?? '',
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'],
      });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  env = await createReleaseEnv('notify');
  // The repository's config, plus a policy whose staging releases notify three webhooks.
  await cp(FIXTURE_CONFIG_DIR, configDir(), { recursive: true });
  const policy = parseDocument(await readFile(join(configDir(), 'policies', 'default.yaml'), 'utf8'));
  policy.set('notifications', {
    webhooks: [
      { name: 'slack-ml', format: 'slack', url: `${origin}/slack`, environments: ['staging'] },
      { name: 'teams-ml', format: 'teams', urlFromEnv: 'MREL_TEST_TEAMS_HOOK', events: ['awaiting-approval'] },
      { name: 'broken', url: `${origin}/broken`, events: ['released'] },
      { name: 'prod-only', url: `${origin}/prod`, environments: ['production'] },
    ],
  });
  await writeFile(join(configDir(), 'policies', 'notify.yaml'), policy.toString());
  process.env.MREL_TEST_TEAMS_HOOK = `${origin}/teams`;
  env.settings.configDir = configDir();
  await env.startWorker();
});
afterAll(async () => {
  await env?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

async function start(name: string, mutate?: (dir: string) => Promise<void>): Promise<string> {
  const request = await env.model(name, '1.0.0', { environment: 'staging', policy: 'notify' });
  await mutate?.(new URL(request.model.source).pathname);
  const { releaseId } = await startRelease(env.client, request, {
    taskQueue: env.settings.taskQueue,
    configDir: configDir(),
  });
  return releaseId;
}

const to = (path: string, releaseId: string) =>
  received.filter((r) => r.path === path && JSON.stringify(r.body).includes(encodeURIComponent(releaseId)));

describe('webhooks of the release environment', () => {
  it('hear that a release awaits approval and that it was released; a refusing webhook is recorded', async () => {
    const releaseId = await start('notified');
    await eventually(
      async () => to('/slack', releaseId).length + to('/teams', releaseId).length,
      (n) => n >= 2,
    );
    const [slack] = to('/slack', releaseId);
    expect(slack?.body.text).toMatch(
      /notified@1\.0\.0 → staging ⏳ awaits approval\*: awaits approval: needs 1 approval/,
    );
    expect(slack?.body.text).toMatch(/may approve: amara, boris/);
    expect(slack?.body.text).toContain(
      `/namespaces/default/workflows/${encodeURIComponent(releaseId)}|Open the release>`,
    );
    const [teams] = to('/teams', releaseId);
    expect(teams?.body['@type']).toBe('MessageCard');
    expect(teams?.body.summary).toBe('notified@1.0.0 → staging ⏳ awaits approval');

    await decide(env.client, releaseId, { approver: 'amara', decision: 'approve', comment: 'ok' });
    const done = (await env.client.workflow.getHandle(releaseId).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    const released = to('/slack', releaseId).at(-1);
    expect(released?.body.text).toMatch(
      /✅ released\*: committed [0-9a-f]{12} to main\napproved by amara \(release-manager\)/,
    );
    // teams-ml asked for awaiting-approval only; prod-only is for production.
    expect(to('/teams', releaseId)).toHaveLength(1);
    expect(received.filter((r) => r.path === '/prod')).toEqual([]);
    await recordHistory(env.client, releaseId, 'notified-released');
    expect(done.notificationFailures).toEqual([
      expect.objectContaining({ target: 'broken', event: 'released', error: expect.stringMatching(/answered 400/) }),
    ]);
  });

  it('hear once that a gate failed, not a second time that the release failed', async () => {
    const releaseId = await start('trojan-notified', async (dir) => {
      // Protocol 0: os.system("id") when loaded.
      await writeFile(join(dir, 'weights.pkl'), "cos\nsystem\n(S'id'\ntR.");
    });
    const final = await env.client.workflow
      .getHandle(releaseId)
      .result()
      .catch(() => undefined);
    expect(final).toBeUndefined();
    const status = await getRelease(env.client, releaseId);
    expect(status.stage).toBe('failed');
    const messages = to('/slack', releaseId).map((r) => r.body.text ?? '');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/❌ a gate failed\*: scan fail: /);
  });
});

describe('message bodies', () => {
  const input: NotifyInput = {
    target: { name: 'x', format: 'slack', url: 'http://x', events: ['rejected'] },
    event: 'rejected',
    releaseId: 'release/m/1.0.0/prod',
    model: 'm',
    version: '1.0.0',
    environment: 'prod',
    headline: 'rejected by mallory: see <https://evil.example|here> & there',
    details: [],
  };

  it('keep names and comments from becoming Slack links or Teams markup', () => {
    const link = releaseLink('http://ui:8233/', 'default', input.releaseId);
    expect(link).toBe('http://ui:8233/namespaces/default/workflows/release%2Fm%2F1.0.0%2Fprod');
    const slack = notificationBody('slack', input, link).text as string;
    expect(slack).toContain('&lt;https://evil.example|here&gt; &amp; there');
    expect(slack).not.toContain('<https://evil.example');
    const teams = notificationBody('teams', input, link);
    expect(teams.text).toContain('&lt;https://evil.example|here&gt;');
    expect(teams.potentialAction).toEqual([
      { '@type': 'OpenUri', name: 'Open the release', targets: [{ os: 'default', uri: link }] },
    ]);
  });
});

describe('the notifications section', () => {
  it('is validated at load, naming the webhook field and what to do', async () => {
    const policy = parseDocument(await readFile(join(configDir(), 'policies', 'default.yaml'), 'utf8'));
    policy.set('notifications', { webhooks: [{ name: 'Bad Name', url: 'ftp://x', urlFromEnv: 'HOOK' }] });
    await writeFile(join(configDir(), 'policies', 'bad-notify.yaml'), policy.toString());
    const error = await resolveReleaseConfig(
      { policy: 'bad-notify', environment: 'staging' },
      GATE_POLICY_SECTIONS,
      configDir(),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/notifications\.webhooks\[0\]\.name: names are lower-case/);
    expect(problems).toMatch(/notifications\.webhooks\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/);
  });
});
