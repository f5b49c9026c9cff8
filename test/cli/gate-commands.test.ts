/**
 * Every gate command on the one adapter: the same --format (json with a verdict; sarif only where the gate has
 * findings with locations), the same --policy (a name or a YAML file, exit 5 naming the file and the field when it
 * does not load), and one exit-code table, the one README prints.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register as cost } from '../../client/commands/cost';
import { register as evaluate } from '../../client/commands/evaluate';
import { register as fairness } from '../../client/commands/fairness';
import type { RegisterCommands } from '../../client/commands/index';
import { register as license } from '../../client/commands/license';
import { register as scan } from '../../client/commands/scan';
import { register as scanImage } from '../../client/commands/scan-image';
import { EXIT } from '../../client/errors';
import { runCommand, type CommandRun } from '../helpers/command';

let dir: string;
let configDir: string;
let model: string;
let csv: string;

const APPROVAL = 'approval:\n  timeout: 72h\n  environments:\n    dev: { minApprovers: 1, allowedRoles: [ml-lead] }\n';

/** One policy per gate section, each wrong in one field. */
const BROKEN: Record<string, { body: string; field: RegExp }> = {
  scan: { body: 'scan:\n  failOn: severe\n', field: /scan\.failOn:? must be one of/ },
  license: { body: 'license:\n  categories:\n    permissive: maybe\n', field: /license\.categories\.permissive/ },
  image: { body: 'image:\n  failOn: severe\n', field: /image\.failOn/ },
  evaluation: { body: 'evaluation:\n  fairness:\n    judge: maybe\n', field: /evaluation\.fairness\.judge/ },
  cost: { body: 'cost:\n  headroom: -1\n', field: /cost\.headroom/ },
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-gate-commands-'));
  configDir = join(dir, 'config');
  await mkdir(join(configDir, 'policies'), { recursive: true });
  await copyFile(new URL('../../config/approvers.yaml', import.meta.url), join(configDir, 'approvers.yaml'));
  await writeFile(join(configDir, 'policies', 'default.yaml'), APPROVAL);
  for (const [section, { body }] of Object.entries(BROKEN)) {
    await writeFile(join(configDir, 'policies', `broken-${section}.yaml`), `${APPROVAL}${body}`);
  }
  model = join(dir, 'model');
  await mkdir(model);
  await writeFile(join(model, 'README.md'), '---\nlicense: mit\n---\n# a model\n');
  await writeFile(join(model, 'weights.bin'), Buffer.alloc(64));
  csv = join(dir, 'predictions.csv');
  const rows = Array.from({ length: 80 }, (_, i) => `${i % 2},${i % 3 === 0 ? 1 : 0},${i % 4 < 2 ? 'a' : 'b'}`);
  await writeFile(csv, ['y,p,g', ...rows].join('\n'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Each gate command with arguments that get it past option parsing (the policy loads before any work). */
const COMMANDS: { name: string; register: RegisterCommands; args: () => string[]; section: string; sarif: boolean }[] =
  [
    { name: 'scan', register: scan, args: () => ['scan', model], section: 'scan', sarif: true },
    {
      name: 'scan-image',
      register: scanImage,
      args: () => ['scan-image', '127.0.0.1:1/none/server:1'],
      section: 'image',
      sarif: true,
    },
    { name: 'license', register: license, args: () => ['license', model], section: 'license', sarif: false },
    {
      name: 'fairness',
      register: fairness,
      args: () => ['fairness', '--data', csv, '--label', 'y', '--prediction', 'p', '--protected', 'g'],
      section: 'evaluation',
      sarif: false,
    },
    {
      name: 'evaluate',
      register: evaluate,
      args: () => ['evaluate', '--model', model, '--data', csv, '--protected', 'g'],
      section: 'evaluation',
      sarif: false,
    },
    { name: 'cost estimate', register: cost, args: () => ['cost', 'estimate', model], section: 'cost', sarif: false },
    {
      name: 'cost report',
      register: cost,
      args: () => ['cost', 'report', '--gitops', model],
      section: 'cost',
      sarif: false,
    },
  ];

const run = (register: RegisterCommands, args: string[]): Promise<CommandRun> =>
  runCommand(register, [...args, '--config-dir', configDir]);

describe('every gate command', () => {
  for (const c of COMMANDS) {
    it(`${c.name}: a policy that does not load exits 5 naming the file and the field`, async () => {
      const r = await run(c.register, [...c.args(), '--policy', `broken-${c.section}`]);
      expect(r.code).toBe(EXIT.config);
      expect(r.out).toBe('');
      expect(r.err).toContain(
        `mrel ${c.name}: --policy broken-${c.section}: config/policies/broken-${c.section}.yaml does not load`,
      );
      expect(r.err).toMatch(BROKEN[c.section]!.field);
    });

    it(`${c.name}: an unknown --format exits 2 naming the formats it writes`, async () => {
      const allowed = c.sarif ? /writes text, json,? (sarif )?or (sarif|cyclonedx)\./ : /writes text or json/;
      const xml = await run(c.register, [...c.args(), '--format', 'xml']);
      expect(xml).toMatchObject({ code: EXIT.usage, out: '' });
      expect(xml.err).toMatch(allowed);
      if (!c.sarif) {
        const sarif = await run(c.register, [...c.args(), '--format', 'sarif']);
        expect(sarif.code).toBe(EXIT.usage);
        expect(sarif.err).toMatch(/no findings with locations to write as SARIF/);
      }
    });
  }

  it('--format json is one JSON document with the verdict and the exit code, first', async () => {
    const runs = {
      scan: await run(scan, ['scan', join(model, 'README.md'), '--format', 'json']),
      license: await run(license, ['license', model, '--format', 'json']),
      fairness: await run(fairness, [...COMMANDS[3]!.args(), '--format', 'json']),
      // Weights without a format: no estimate can be made, which is the gate's error verdict.
      'cost estimate': await run(cost, ['cost', 'estimate', model, '--format', 'json']),
    };
    const expected = { scan: 'pass', license: 'pass', fairness: 'pass', 'cost estimate': 'error' } as const;
    for (const [name, r] of Object.entries(runs)) {
      const verdict = expected[name as keyof typeof expected];
      const doc = JSON.parse(r.out) as Record<string, unknown>;
      expect(Object.keys(doc).slice(0, 2), name).toEqual(['verdict', 'exitCode']);
      expect(doc, name).toMatchObject({ verdict, exitCode: r.code });
      expect(r.code, name).toBe(verdict === 'error' ? EXIT.undecided : EXIT.ok);
    }
    expect(JSON.parse(runs.fairness.out)).toMatchObject({ judged: false });
  });

  it('--policy takes a YAML file outside config/policies, checked the same way', async () => {
    const file = join(dir, 'strict-scan.yaml');
    await writeFile(file, `${APPROVAL}scan:\n  failOn: medium\n`);
    await writeFile(join(dir, 'weights.msgpack'), Buffer.from([0xde, 0, 1, 0xa1, 0x61, 1, 0, 0, 0]));
    // An unknown format is a medium finding: the default policy leaves it undecided, failOn: medium fails it.
    expect((await run(scan, ['scan', join(dir, 'weights.msgpack')])).code).toBe(EXIT.undecided);
    expect((await run(scan, ['scan', join(dir, 'weights.msgpack'), '--policy', file])).code).toBe(EXIT.fail);
    await writeFile(file, `${APPROVAL}scan:\n  failOn: severe\n`);
    const broken = await run(scan, ['scan', model, '--policy', file]);
    expect(broken.code).toBe(EXIT.config);
    expect(broken.err).toMatch(
      /^mrel scan: --policy \S+strict-scan\.yaml: \S*strict-scan\.yaml does not load\n {2}- scan\.failOn/,
    );
  });
});

describe('the exit-code table', () => {
  it('is the one README prints, code by code', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const rows = [...readme.matchAll(/^\| `(\d)` \| `([a-zA-Z]+)` \|/gm)].map((m) => [m[2], Number(m[1])]);
    expect(Object.fromEntries(rows)).toEqual(EXIT);
  });
});
