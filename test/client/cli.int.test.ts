/** The mrel CLI against the real dev server: what it prints and the exit codes it documents. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandModulesFor, EXIT, runCli } from '../../client/cli';
import { stringify } from 'yaml';
import type { ReleaseStatus } from '../../contract/types';
import { runMrel } from '../helpers/command';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
beforeAll(async () => {
  env = await createReleaseEnv('cli');
  await env.startWorker();
});
afterAll(async () => env?.close());

const mrel = (...args: string[]) => runMrel(env.settings.address, args);

describe('mrel', () => {
  it('start --wait follows the stages; approve, status, list and their exit codes', async () => {
    const request = await env.model('cli-model', '1.2.3');
    const file = join(env.dir, 'request.yaml');
    await writeFile(file, stringify(request));
    const started = await mrel('start', file, '--wait', '--task-queue', env.settings.taskQueue);
    expect(started.code).toBe(EXIT.ok);
    expect(started.out).toMatch(/^started: release\/cli-model\/1\.2\.3\/production \(run /);
    expect(started.out).toContain('stage approval');
    expect(started.out).toMatch(/^ {2}acquire: pass — 4 file\(s\)/m);
    expect(started.out).toMatch(
      /awaiting: 2 more approval\(s\); needs 2 approvals from \[release-manager, ml-lead, ml-ethics\], including 1× release-manager/,
    );

    const again = await mrel('start', file, '--task-queue', env.settings.taskQueue);
    expect(again.out).toMatch(/^already exists: release\/cli-model\/1\.2\.3\/production/);

    const id = 'release/cli-model/1.2.3/production';
    const refused = await mrel('approve', id, '--as', 'cyril');
    expect(refused).toMatchObject({
      code: EXIT.fail,
      out: expect.stringMatching(/^refused: cyril has roles \[ml-engineer\]/),
    });
    expect((await mrel('approve', id, '--as', 'boris', '--comment', 'eval looks fine')).code).toBe(EXIT.ok);
    const last = await mrel('--json', 'approve', id, '--as', 'amara');
    expect(JSON.parse(last.out)).toMatchObject({ accepted: true });

    const status = await eventually(
      async () => JSON.parse((await mrel('--json', 'status', id)).out) as ReleaseStatus,
      (s) => s.stage === 'released',
    );
    expect(status.commit?.sha).toMatch(/^[0-9a-f]{40}$/);
    const text = await mrel('status', id);
    expect(text.out).toContain(`gitops commit: ${status.commit?.sha}`);

    const listed = await eventually(
      () => mrel('list', '--model', 'cli-model', '--stage', 'released'),
      (r) => r.out.includes(id),
    );
    expect(listed.code).toBe(EXIT.ok);
    const late = await mrel('reject', id, '--as', 'amara');
    expect(late.code).toBe(EXIT.fail);
    expect(late.err).toMatch(/already ended as released/);
  });

  it('a bad request file gets one message per problem, naming the field, and starts nothing', async () => {
    const file = join(env.dir, 'bad.yaml');
    await writeFile(
      file,
      stringify({
        model: { name: 'Bad_Name', version: '', source: 's3://bucket/x' },
        environment: 'production',
        policy: 'default',
        colour: 'blue',
      }),
    );
    const result = await mrel('start', file);
    expect(result.code).toBe(EXIT.usage);
    const lines = result.err.split('\n');
    expect(lines[0]).toBe('mrel: the release request is invalid');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ {2}- model\.name: use lower-case letters/),
        expect.stringMatching(/^ {2}- model\.version: /),
        expect.stringMatching(/^ {2}- model\.source: must start with file:\/\//),
        expect.stringMatching(/^ {2}- requestedBy: /),
        expect.stringMatching(/^ {2}- \(top level\): Unrecognized key: "colour"/),
      ]),
    );
    expect((await mrel('list', '--model', 'bad_name')).out).toBe('no releases match');
  });

  it('exit 6 for an unknown release, 4 when Temporal cannot be reached, 2 for bad usage', async () => {
    expect((await mrel('status', 'release/nope/1/dev')).code).toBe(EXIT.notFound);
    const down = await runCli(['--address', '127.0.0.1:1', 'list'], { out: () => {}, err: () => {} });
    expect(down).toBe(EXIT.unavailable);
    expect((await mrel('approve', 'release/x/1/dev')).code).toBe(EXIT.usage);
  });
});

describe('mrel loads what the command needs', () => {
  const names = async (argv: string[]) => {
    const { COMMAND_MODULES } = await import('../../client/commands');
    const loaded = await commandModulesFor(argv);
    const all = await Promise.all(Object.entries(COMMAND_MODULES).map(async ([n, load]) => [n, await load()] as const));
    return loaded.map((register) => all.find(([, r]) => r === register)?.[0]);
  };

  it('one command module for its own command, none for a release command, all for help or an unknown command', async () => {
    expect(await names(['scan', 'model/', '--format', 'json'])).toEqual(['scan']);
    expect(await names(['--address', 'scan:7233', '--json', 'license', 'model/'])).toEqual(['license']);
    expect(await names(['help', 'cost'])).toEqual(['cost']);
    expect(await names(['--address', 'localhost:7233', 'status', 'release/scan/1.0.0/dev'])).toEqual([]);
    const { COMMAND_MODULES } = await import('../../client/commands');
    const all = Object.keys(COMMAND_MODULES);
    expect(all).toEqual(
      expect.arrayContaining(['scan', 'scan-image', 'license', 'fairness', 'evaluate', 'cost', 'drift']),
    );
    expect(await names(['--help'])).toEqual(all);
    expect(await names([])).toEqual(all);
    expect(await names(['nope'])).toEqual(all);
  });

  it('`mrel --help` still lists every command', async () => {
    const out: string[] = [];
    const code = await runCli(['--help'], { out: (l) => out.push(l), err: (l) => out.push(l) });
    expect(code).toBe(EXIT.ok);
    for (const command of ['start', 'status', 'approve', 'list', 'scan', 'scan-image', 'license', 'fairness', 'cost'])
      expect(out.join('\n')).toMatch(new RegExp(`^  ${command} `, 'm'));
  });
});
