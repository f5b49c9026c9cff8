/**
 * The check behind `npm test`'s set-up (scripts/setup-test-deps.mjs), on fake PATHs and files: the machine the tests
 * run on has every package, and other processes use them, so nothing is uninstalled to prove a refusal.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aptPackages,
  findOnPath,
  isStaticElf,
  missingRequirements,
  planSystemInstall,
  pythonRequirementsCurrent,
  SYSTEM_REQUIREMENTS,
  type SystemRequirement,
} from '../../scripts/setup-test-deps.mjs';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';

const exec = promisify(execFile);
let dir: string;
let bin: string;

async function tool(name: string, mode = 0o755): Promise<void> {
  await writeFile(join(bin, name), '#!/bin/sh\nexit 0\n');
  await chmod(join(bin, name), mode);
}

/** A minimal ELF64 little-endian executable header with the given program header types. */
function elf(programHeaderTypes: number[]): Buffer {
  const header = Buffer.alloc(64 + 56 * programHeaderTypes.length);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // 64-bit
  header[5] = 1; // little-endian
  header.writeBigUInt64LE(64n, 32); // program headers right after the ELF header
  header.writeUInt16LE(56, 54);
  header.writeUInt16LE(programHeaderTypes.length, 56);
  programHeaderTypes.forEach((type, i) => header.writeUInt32LE(type, 64 + 56 * i));
  return header;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-setup-deps-'));
  bin = join(dir, 'bin');
  await mkdir(bin);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('missingRequirements', () => {
  it('finds commands only as executables on PATH, in any of its directories', async () => {
    await tool('dockerd');
    await tool('prometheus');
    await tool('promtool', 0o644);
    const empty = join(dir, 'empty');
    await mkdir(empty, { recursive: true });
    const wanted: SystemRequirement[] = [
      { need: 'dockerd', command: 'dockerd', apt: 'docker.io' },
      { need: 'docker-registry', command: 'docker-registry', apt: 'docker-registry' },
      { need: 'prometheus', command: 'prometheus', apt: 'prometheus' },
      { need: 'promtool', command: 'promtool', apt: 'prometheus' },
    ];
    const missing = missingRequirements(wanted, `${empty}:${bin}`);
    expect(missing.map((r) => r.need)).toEqual(['docker-registry', 'promtool']);
    expect(findOnPath('dockerd', `${empty}:${bin}`)).toBe(join(bin, 'dockerd'));
    expect(findOnPath('dockerd', undefined)).toBeUndefined();
  });

  it('names every Debian package the tests need once, when PATH has none of the tools', () => {
    const missing = missingRequirements(SYSTEM_REQUIREMENTS, join(dir, 'nowhere'));
    const commands = SYSTEM_REQUIREMENTS.filter((r) => r.command).map((r) => r.need);
    expect(missing.map((r) => r.need)).toEqual(expect.arrayContaining(commands));
    expect(aptPackages(missing)).toEqual(
      expect.arrayContaining(['git', 'python3', 'docker.io', 'docker-registry', 'prometheus']),
    );
    expect(aptPackages(missing).filter((p) => p === 'prometheus')).toHaveLength(1);
  });

  it('accepts only a statically linked busybox: a dynamic one cannot run in an image built FROM scratch', async () => {
    await writeFile(join(dir, 'static'), elf([1, 1]));
    await writeFile(join(dir, 'dynamic'), elf([6, 3, 1]));
    await writeFile(join(dir, 'script'), '#!/bin/sh\n');
    expect(isStaticElf(join(dir, 'static'))).toBe(true);
    expect(isStaticElf(join(dir, 'dynamic'))).toBe(false);
    expect(isStaticElf(join(dir, 'script'))).toBe(false);
    expect(isStaticElf(join(dir, 'absent'))).toBe(false);
    const busybox = (path: string): SystemRequirement => ({
      need: 'busybox',
      staticBinary: path,
      apt: 'busybox-static',
    });
    expect(missingRequirements([busybox(join(dir, 'static')), busybox(join(dir, 'dynamic'))])).toEqual([
      busybox(join(dir, 'dynamic')),
    ]);
  });
});

describe('planSystemInstall', () => {
  const missing = SYSTEM_REQUIREMENTS.filter((r) => ['dockerd', 'prometheus', 'promtool'].includes(r.command ?? ''));

  it('does nothing when nothing is missing, and installs as root with apt-get', () => {
    expect(planSystemInstall([], { isRoot: false, aptGet: false })).toEqual({ action: 'none' });
    expect(planSystemInstall(missing, { isRoot: true, aptGet: true })).toEqual({
      action: 'install',
      packages: ['docker.io', 'prometheus'],
    });
  });

  it('fails when not root, with the exact command to run', () => {
    const plan = planSystemInstall(missing, { isRoot: false, aptGet: true });
    expect(plan.action).toBe('fail');
    const message = plan.action === 'fail' ? plan.message : '';
    expect(message).toContain('dockerd (image gate tests)  (Debian package docker.io)');
    expect(message).toContain(
      "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends docker.io prometheus'",
    );
    expect(message).toContain('only be installed as root');
  });

  it('fails without apt-get, naming the tools and the Debian command to adapt', () => {
    const plan = planSystemInstall(missing, { isRoot: true, aptGet: false });
    expect(plan).toMatchObject({ action: 'fail', message: expect.stringContaining('There is no apt-get') });
  });
});

describe('pythonRequirementsCurrent', () => {
  it('holds only while the venv was filled from the current requirements-test.txt', async () => {
    const venv = join(dir, 'venv');
    const requirements = join(dir, 'requirements-test.txt');
    await mkdir(join(venv, 'bin'), { recursive: true });
    await writeFile(requirements, 'numpy\n');
    expect(pythonRequirementsCurrent(venv, requirements)).toBe(false);
    await writeFile(join(venv, 'bin', 'python'), '');
    const digest = createHash('sha256').update('numpy\n').digest('hex');
    await writeFile(join(venv, '.requirements-test.sha256'), `${digest}\n`);
    expect(pythonRequirementsCurrent(venv, requirements)).toBe(true);
    await writeFile(requirements, 'numpy\nh5py\n');
    expect(pythonRequirementsCurrent(venv, requirements)).toBe(false);
  });
});

describe('setup-test-deps.mjs', () => {
  it('stops npm test with the missing tools and the command when it cannot install them (no apt-get)', async () => {
    const path = join(dir, 'path-without-apt');
    await mkdir(path);
    await writeFile(join(path, 'true'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    for (const name of ['git', 'python3', 'docker-registry']) await symlink(join(path, 'true'), join(path, name));
    const run = exec(process.execPath, [join(PROJECT_ROOT, 'scripts', 'setup-test-deps.mjs')], {
      env: { PATH: path },
    });
    const failure = await run.then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain('dockerd (image gate tests)  (Debian package docker.io)');
    expect(failure?.stderr).toContain('promtool (cost gate tests)  (Debian package prometheus)');
    expect(failure?.stderr).not.toContain('Debian package git)');
    expect(failure?.stderr).toContain('There is no apt-get');
    expect(failure?.stderr).toMatch(/apt-get install -y --no-install-recommends docker\.io prometheus/);
  });
});
