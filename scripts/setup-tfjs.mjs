#!/usr/bin/env node
// Builds the native TensorFlow backend of @tensorflow/tfjs-node without reaching storage.googleapis.com (which is
// where its own install script downloads libtensorflow and the prebuilt addon; unreachable here, so package.json
// denies that script). Instead it takes the TensorFlow C API library out of PyPI's tensorflow-cpu wheel, stages it in
// tfjs-node's deps/ the way its binding.gyp expects, and compiles the addon with node-pre-gyp --build-from-source.
//
// Never fails `npm install`: every problem is printed with what to do and the script exits 0, leaving the wasm and
// cpu backends (TFJS_BACKEND=auto picks the first that loads). Idempotent: a second run finds the working addon.
//
// Environment: MREL_SKIP_TFJS_NATIVE=1 skips it; MREL_TF_WHEEL=<path to a tensorflow-cpu wheel> uses that wheel;
// MREL_TF_VERSION (default 2.21.*) picks the wheel version; MREL_TFJS_FORCE=1 rebuilds even when the addon loads.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TF_VERSION = process.env.MREL_TF_VERSION ?? '2.21.*';
const wheelCache = join(root, '.tools', 'tfjs-wheel');
const started = Date.now();

function log(msg) {
  console.log(`[setup-tfjs] ${msg}`);
}

/** Ends the script successfully with a message: npm install must never fail for want of the native backend. */
function giveUp(problem, hint) {
  console.warn(`[setup-tfjs] the native TensorFlow backend is NOT available: ${problem}`);
  if (hint) console.warn(`[setup-tfjs] ${hint}`);
  console.warn('[setup-tfjs] evaluation still runs on the wasm and cpu backends (TFJS_BACKEND=auto picks them).');
  process.exit(0);
}

function tfjsNodeDir() {
  try {
    return dirname(createRequire(join(root, 'package.json')).resolve('@tensorflow/tfjs-node/package.json'));
  } catch {
    return undefined;
  }
}

/** Loads tfjs-node in a child process, so a crash of a half-built addon cannot take this script down. */
function addonWorks(dir) {
  const probe = `const tf = require(${JSON.stringify(dir)}); tf.tensor([1, 2]).add(1).dataSync(); console.log(tf.getBackend())`;
  const r = spawnSync(process.execPath, ['-e', probe], {
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
  return { ok: r.status === 0 && r.stdout.trim() === 'tensorflow', detail: (r.stderr || r.stdout || '').trim() };
}

function findPython() {
  const venvPython = join(root, '.venv', 'bin', 'python');
  if (existsSync(venvPython)) return venvPython;
  return ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
}

function findWheel() {
  if (process.env.MREL_TF_WHEEL) return process.env.MREL_TF_WHEEL;
  if (!existsSync(wheelCache)) return undefined;
  const prefix = `tensorflow_cpu-${TF_VERSION.replace('.*', '.')}`;
  const wheel = readdirSync(wheelCache).find((f) => f.startsWith(prefix) && f.endsWith('.whl'));
  return wheel ? join(wheelCache, wheel) : undefined;
}

function downloadWheel(python) {
  log(`downloading tensorflow-cpu==${TF_VERSION} from PyPI into .tools/tfjs-wheel (about 270 MB) …`);
  mkdirSync(wheelCache, { recursive: true });
  execFileSync(
    python,
    [
      '-m',
      'pip',
      'download',
      '--quiet',
      '--disable-pip-version-check',
      '--no-deps',
      '--only-binary=:all:',
      '--dest',
      wheelCache,
      `tensorflow-cpu==${TF_VERSION}`,
    ],
    { stdio: 'inherit' },
  );
}

// The wheel's C API lives in libtensorflow_cc.so.2 (the eager TFE_* functions included); its headers sit under
// tensorflow/include, and the addon's includes reach into tensorflow/c, tensorflow/core/platform and xla/tsl.
const EXTRACT = String.raw`
import sys, zipfile, os, shutil
wheel, lib_dir, inc_dir = sys.argv[1:4]
prefixes = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/',
            'tensorflow/include/xla/tsl/', 'tensorflow/include/tsl/')
libs = {'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'}
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name in libs:
            target = os.path.join(lib_dir, os.path.basename(name))
        elif name.startswith(prefixes) and not name.endswith('/'):
            target = os.path.join(inc_dir, name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target + '.part', 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        os.replace(target + '.part', target)
        os.chmod(target, 0o755 if name in libs else 0o644)
`;

function stage(python, wheel, dir) {
  // Extract beside deps/ and swap only when complete: a bad wheel must not break an addon that works.
  const staging = join(dir, 'deps.staging');
  const libDir = join(staging, 'lib');
  const incDir = join(staging, 'include');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(libDir, { recursive: true });
  mkdirSync(incDir, { recursive: true });
  log(`extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C API headers from ${wheel} …`);
  execFileSync(python, ['-c', EXTRACT, wheel, libDir, incDir], { stdio: 'inherit' });
  // binding.gyp links -ltensorflow -ltensorflow_framework; the addon then records the libraries' sonames
  // (libtensorflow_cc.so.2, libtensorflow_framework.so.2) and finds them through its rpath $ORIGIN/../../deps/lib.
  symlinkSync('libtensorflow_cc.so.2', join(libDir, 'libtensorflow.so'));
  symlinkSync('libtensorflow_cc.so.2', join(libDir, 'libtensorflow.so.2'));
  symlinkSync('libtensorflow_framework.so.2', join(libDir, 'libtensorflow_framework.so'));
  rmSync(join(dir, 'deps'), { recursive: true, force: true });
  renameSync(staging, join(dir, 'deps'));
}

/** node-gyp needs Node's headers; use the installed ones when they match this node, because nodejs.org may be unreachable. */
function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const installPrefix = join(dirname(process.execPath), '..');
  for (const prefix of [installPrefix, '/usr', '/usr/local']) {
    const versionHeader = join(prefix, 'include', 'node', 'node_version.h');
    if (!existsSync(versionHeader) || !existsSync(join(prefix, 'include', 'node', 'common.gypi'))) continue;
    const text = readFileSync(versionHeader, 'utf8');
    const part = (p) => text.match(new RegExp(`#define NODE_${p}_VERSION (\\d+)`))?.[1];
    if (`v${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}` === process.version) return prefix;
  }
  return undefined;
}

function build(dir) {
  const require = createRequire(join(dir, 'package.json'));
  const preGyp = require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp');
  const env = { ...process.env };
  const headers = nodedir();
  if (headers) env.npm_config_nodedir = headers;
  const npmGyp = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp');
  if (!env.npm_config_node_gyp && existsSync(join(npmGyp, 'bin', 'node-gyp.js'))) {
    env.npm_config_node_gyp = join(npmGyp, 'bin', 'node-gyp.js');
  }
  log(`compiling the addon (node-pre-gyp --build-from-source, Node headers: ${headers ?? 'node-gyp download'}) …`);
  execFileSync(process.execPath, [preGyp, 'install', '--build-from-source'], { cwd: dir, env, stdio: 'inherit' });
}

function main() {
  if (process.env.MREL_SKIP_TFJS_NATIVE === '1') return log('MREL_SKIP_TFJS_NATIVE=1: skipped');
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return giveUp(`this setup supports linux x64 only (here: ${process.platform} ${process.arch})`);
  }
  const dir = tfjsNodeDir();
  if (!dir) return giveUp('@tensorflow/tfjs-node is not installed', 'run npm install first');
  if (process.env.MREL_TFJS_FORCE !== '1' && addonWorks(dir).ok) {
    return log(`native TensorFlow backend present (${dir})`);
  }
  const python = findPython();
  if (!python) return giveUp('no python3 to fetch the tensorflow-cpu wheel', 'install python3 (with pip)');
  let wheel = findWheel();
  if (!wheel) {
    try {
      downloadWheel(python);
    } catch (err) {
      return giveUp(
        `pip download of tensorflow-cpu==${TF_VERSION} failed: ${err.message.split('\n')[0]}`,
        'set MREL_TF_WHEEL to a local tensorflow-cpu wheel and run: node scripts/setup-tfjs.mjs',
      );
    }
    wheel = findWheel();
    if (!wheel) return giveUp(`pip reported success but no tensorflow_cpu wheel is in ${wheelCache}`);
  }
  try {
    stage(python, wheel, dir);
  } catch (err) {
    rmSync(join(dir, 'deps.staging'), { recursive: true, force: true });
    return giveUp(`could not extract the TensorFlow libraries from ${wheel}: ${err.message.split('\n')[0]}`);
  }
  try {
    build(dir);
  } catch (err) {
    return giveUp(
      `building the addon failed: ${err.message.split('\n')[0]}`,
      'it needs g++, make and Node headers (apt-get install g++ make, or npm_config_nodedir=<node prefix>)',
    );
  }
  const check = addonWorks(dir);
  if (!check.ok)
    return giveUp(`the addon was built but does not load: ${check.detail.split('\n').slice(-3).join(' ')}`);
  log(`native TensorFlow backend ready in ${Math.round((Date.now() - started) / 1000)} s (${dir})`);
}

main();
