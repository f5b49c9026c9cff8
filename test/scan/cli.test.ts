/**
 * `mrel scan` as a user runs it: text, JSON and SARIF output, policy loading, and the documented exit codes
 * (0 pass, 1 findings at or above --fail-on, 2 bad usage or input, 3 something not examined, 5 a bad policy).
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../../client/commands/scan';
import { EXIT } from '../../client/errors';
import { buildCli } from '../../scripts/build-cli';
import { runCommand, type CommandRun } from '../helpers/command';
import { makeFixtures } from './fixtures';

let dir: string;
let configDir: string;
const cwd = process.cwd();
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-scan-cli-'));
  await makeFixtures(dir);
  configDir = join(dir, 'config');
  await mkdir(join(configDir, 'policies'), { recursive: true });
  await copyFile(new URL('../../config/approvers.yaml', import.meta.url), join(configDir, 'approvers.yaml'));
  const approval =
    'approval:\n  timeout: 72h\n  environments:\n    dev: { minApprovers: 1, allowedRoles: [ml-lead] }\n';
  await writeFile(join(configDir, 'policies', 'default.yaml'), approval);
  await writeFile(join(configDir, 'policies', 'strict.yaml'), `${approval}scan:\n  strict: true\n  failOn: medium\n`);
  await writeFile(join(configDir, 'policies', 'broken.yaml'), `${approval}scan:\n  failOn: severe\n  extra: 1\n`);
  process.env.MREL_CONFIG_DIR = configDir;
  process.chdir(dir);
});
afterAll(async () => {
  process.chdir(cwd);
  delete process.env.MREL_CONFIG_DIR;
  await rm(dir, { recursive: true, force: true });
});

function mrel(...args: string[]): Promise<CommandRun> {
  return runCommand(register, args);
}

describe('mrel scan', () => {
  it('passes benign files (exit 0) and prints a summary', async () => {
    const r = await mrel('scan', 'benign/torch-zip.pt', 'benign/model.safetensors', 'benign/array.npy');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toBe('pass: 3 file(s) scanned (1 torch-zip, 1 safetensors, 1 npy), 0 finding(s)');
  });

  it('fails on a malicious pickle (exit 1) and says where and what', async () => {
    const r = await mrel('scan', 'evil/torch-zip.pt');
    expect(r.code).toBe(EXIT.fail);
    expect(r.out).toContain('CRITICAL pickle.dangerous-global  evil/torch-zip.pt!archive/data.pkl:');
    expect(r.out).toContain('imports posix.system and calls it with "echo pwned"');
  });

  it('--fail-on critical lets a high finding through; --policy strict fails an unknown global', async () => {
    expect((await mrel('scan', 'evil/zip-slip.zip')).code).toBe(EXIT.fail);
    expect((await mrel('scan', 'evil/zip-slip.zip', '--fail-on', 'critical')).code).toBe(EXIT.ok);
    const r = await mrel('scan', 'evil/dynamic-import.pkl', '--fail-on', 'critical');
    expect(r.code).toBe(EXIT.fail);
  });

  it('exits 3 when something could not be examined and nothing failed', async () => {
    await writeFile(join(dir, 'weights.msgpack'), Buffer.from([0xde, 0, 1, 0xa1, 0x61, 1, 0, 0, 0]));
    const r = await mrel('scan', 'weights.msgpack', '--format', 'json');
    expect(r.code).toBe(EXIT.undecided);
    expect(JSON.parse(r.out)).toEqual({
      verdict: 'error',
      exitCode: 3,
      files: [
        {
          path: 'weights.msgpack',
          format: 'unknown',
          size: 9,
          findings: [expect.objectContaining({ ruleId: 'format.unknown' })],
        },
      ],
      findings: [
        {
          ruleId: 'format.unknown',
          severity: 'medium',
          path: 'weights.msgpack',
          offset: 0,
          message: expect.stringContaining('not examined'),
        },
      ],
    });
  });

  it('exits 2 for a missing path or an unknown format, 5 for a broken or absent policy (naming file and field)', async () => {
    const missing = await mrel('scan', 'nope.bin');
    expect(missing).toMatchObject({ code: EXIT.usage, err: 'mrel scan: nope.bin: no such file or directory' });
    const xml = await mrel('scan', 'benign/array.npy', '--format', 'xml');
    expect(xml.code).toBe(EXIT.usage);
    expect(xml.err).toContain('scan writes text, json or sarif');
    const broken = await mrel('scan', 'benign/array.npy', '--policy', 'broken');
    expect(broken.code).toBe(EXIT.config);
    expect(broken.err).toContain('mrel scan: --policy broken: config/policies/broken.yaml does not load');
    expect(broken.err).toMatch(/^ {2}- scan\.failOn:? must be one of critical, high, medium, low$/m);
    expect(broken.err).toMatch(/^ {2}- scan:? has unknown field\(s\) "extra"; known fields: failOn, warnOn/m);
    const absent = await mrel('scan', 'benign/array.npy', '--policy', 'absent');
    expect(absent.code).toBe(EXIT.config);
    expect(absent.err).toContain('config/policies/absent.yaml does not load');
  });

  it('--policy reads config/policies/<name>.yaml: strict mode and failOn apply', async () => {
    const { python } = await import('./fixtures');
    await python(
      "import pickle, sys, types\nm = types.ModuleType('vendorlib')\nsys.modules['vendorlib'] = m\nclass Cfg: pass\nCfg.__module__ = 'vendorlib'\nm.Cfg = Cfg\nopen('cfg.pkl','wb').write(pickle.dumps(Cfg(), protocol=2))",
      dir,
    );
    expect((await mrel('scan', 'cfg.pkl')).code).toBe(EXIT.ok);
    const strict = await mrel('scan', 'cfg.pkl', '--policy', 'strict');
    expect(strict.code).toBe(EXIT.fail);
    expect(strict.out).toContain('pickle.not-allowlisted');
  });

  it('scans directories recursively and writes SARIF 2.1.0 that code scanning accepts', async () => {
    const r = await mrel('scan', 'evil', '--format', 'sarif');
    expect(r.code).toBe(EXIT.fail);
    const sarif = JSON.parse(r.out) as {
      version: string;
      runs: {
        tool: { driver: { name: string; rules: { id: string; shortDescription: { text: string } }[] } };
        results: {
          ruleId: string;
          ruleIndex: number;
          level: string;
          message: { text: string };
          locations: {
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; byteOffset?: number } };
          }[];
        }[];
      }[];
    };
    expect(sarif.version).toBe('2.1.0');
    const [run] = sarif.runs;
    const ruleIds = run!.tool.driver.rules.map((rule) => rule.id);
    expect(ruleIds).toEqual(
      expect.arrayContaining(['pickle.dangerous-global', 'archive.path-traversal', 'keras.lambda']),
    );
    for (const result of run!.results) {
      expect(ruleIds[result.ruleIndex]).toBe(result.ruleId);
      expect(['error', 'warning', 'note']).toContain(result.level);
      const loc = result.locations[0]!.physicalLocation;
      expect(loc.artifactLocation.uri).toMatch(/^evil\/[^!]+$/);
      expect(loc.region.startLine).toBe(1);
    }
    const inst = run!.results.find((x) => x.locations[0]!.physicalLocation.artifactLocation.uri === 'evil/inst.pkl');
    expect(inst).toMatchObject({ ruleId: 'pickle.dangerous-global', level: 'error' });
    expect(inst!.locations[0]!.physicalLocation.region.byteOffset).toBe(15);
    const nested = run!.results.find(
      (x) => x.locations[0]!.physicalLocation.artifactLocation.uri === 'evil/torch-zip.pt',
    );
    expect(nested!.message.text).toMatch(/^archive\/data\.pkl \(byte \d+\): imports posix\.system/);
  });

  it('--json on the program means JSON output', async () => {
    const r = await mrel('--json', 'scan', 'benign/array.npy');
    expect(JSON.parse(r.out)).toMatchObject({ verdict: 'pass', files: [{ path: 'benign/array.npy', format: 'npy' }] });
  });
});

describe('the bundled mrel (npm run build:cli)', () => {
  it('scans with the same verdicts and exit codes, and finds config/ on its own', { timeout: 60_000 }, async () => {
    // Inside the repository, as dist/ is: the bundle resolves what it leaves out (and the JSON data that the
    // policy checks read at run time) from the repository's node_modules.
    await mkdir(join(cwd, '.data'), { recursive: true });
    const out = await mkdtemp(join(cwd, '.data', 'mrel-cli-bundle-'));
    try {
      const entry = await buildCli(out);
      const { MREL_CONFIG_DIR: _, ...ownEnv } = process.env;
      const mrelBundle = (args: string[], env: NodeJS.ProcessEnv = ownEnv) =>
        spawnSync(process.execPath, [entry, ...args], { cwd: dir, env, encoding: 'utf8' });

      const evil = mrelBundle(['scan', '--format', 'json', 'evil/eval.pkl', 'benign/state-dict.pkl']);
      expect(evil.status).toBe(EXIT.fail);
      const report = JSON.parse(evil.stdout) as { verdict: string; files: { path: string; format: string }[] };
      expect(report.verdict).toBe('fail');
      expect(report.files.map((f) => f.path)).toEqual(['evil/eval.pkl', 'benign/state-dict.pkl']);

      // GLOBAL vendorlib.Cfg, EMPTY_TUPLE, NEWOBJ, STOP: an unknown global, medium unless the policy is strict.
      await writeFile(join(dir, 'vendor.pkl'), Buffer.from('\x80\x02cvendorlib\nCfg\n)\x81.', 'latin1'));
      expect(mrelBundle(['scan', 'vendor.pkl']).status).toBe(EXIT.ok);
      // The repository's config/ (no strict policy there) unless MREL_CONFIG_DIR points elsewhere.
      const own = mrelBundle(['scan', '--policy', 'strict', 'vendor.pkl']);
      expect(own.status).toBe(EXIT.config);
      expect(own.stderr).toContain('--policy strict: config/policies/strict.yaml does not load');
      const strict = mrelBundle(['scan', '--policy', 'strict', 'vendor.pkl'], process.env);
      expect(strict.status).toBe(EXIT.fail);
      expect(strict.stdout).toContain('pickle.not-allowlisted');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
