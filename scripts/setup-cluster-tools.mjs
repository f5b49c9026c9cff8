#!/usr/bin/env node
// The programs of the local Kubernetes cluster the delivery tests and `npm run cluster` run (scripts/cluster-harness.ts),
// built from the Go module proxy, the one place these machines can get them from:
//   - kube-apiserver, kube-controller-manager and kube-scheduler of k8s.io/kubernetes (a helper module pins its
//     staging modules, which k8s.io/kubernetes itself replaces with ./staging paths and so cannot be `go install`ed);
//   - etcd (a three-line main around go.etcd.io/etcd/server/v3/etcdmain);
//   - kwok, which plays kubelet for a fake Node so that Deployments become Available, and the Stage documents it runs;
//   - Flux's source-controller and kustomize-controller (helper modules carrying the replace lines of their go.mod)
//     and their CRDs.
// Everything lands in .tools/cluster/ (ignored by git). The binaries (~560 MB) are kept in a per-user cache outside
// the clone (~/.cache/modelrelease/cluster-tools, or $MODELRELEASE_TOOLS_CACHE), keyed by version, because a cold
// build takes about fifteen minutes and a fresh clone of the same machine should not pay it again: from the cache,
// .tools/cluster/ is filled with hard links (copies across file systems) in well under a second. A no-op when
// .tools/cluster/ already holds the pinned versions: it only looks at files.
//
//   node scripts/setup-cluster-tools.mjs           # provide what is missing (needs `go` on PATH when not cached)
//   node scripts/setup-cluster-tools.mjs --check   # only report what is missing (exit 1 when something is)
import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { copyWhole, fillWhole, goRunner, reporter, stampCurrent, toolsCacheRoot, writeStamp } from './tools-cache.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Pinned versions: what the Go module proxy serves and what builds with the machine's Go (1.26). */
export const CLUSTER_TOOLS = {
  kubernetes: { module: 'k8s.io/kubernetes', version: 'v1.37.2' },
  etcd: { module: 'go.etcd.io/etcd/server/v3', version: 'v3.7.3' },
  kwok: { module: 'sigs.k8s.io/kwok', version: 'v0.8.0' },
  // v1.10.x needs Go 1.27 and dependencies the proxy refuses here.
  flux: { module: 'github.com/fluxcd', version: 'v1.9.6' },
};

/** Bumped whenever the way an item is built or laid out changes, so that cached items are rebuilt. */
const LAYOUT = 1;

const KUBE_COMMANDS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];
const FLUX_CONTROLLERS = ['source-controller', 'kustomize-controller'];
/** kwok's Stage documents for a fast fake kubelet; a KwokConfiguration document would make kwok refuse the file. */
const KWOK_STAGES = [
  'kustomize/stage/node/fast/node-initialize.yaml',
  'kustomize/stage/node/heartbeat/node-heartbeat.yaml',
  'kustomize/stage/pod/fast/pod-ready.yaml',
  'kustomize/stage/pod/fast/pod-complete.yaml',
  'kustomize/stage/pod/fast/pod-delete.yaml',
];

/**
 * What each cache item holds (files relative to the item folder). The item folder's name carries its version, so a
 * version bump is a different folder; `.complete` is written last, so a half-built item never passes for one.
 */
function items() {
  const { kubernetes, etcd, kwok, flux } = CLUSTER_TOOLS;
  return {
    kubernetes: { key: `kubernetes-${kubernetes.version}+${LAYOUT}`, files: KUBE_COMMANDS.map((c) => `bin/${c}`) },
    etcd: { key: `etcd-${etcd.version}+${LAYOUT}`, files: ['bin/etcd'] },
    kwok: { key: `kwok-${kwok.version}+${LAYOUT}`, files: ['bin/kwok', 'kwok-stages.yaml'] },
    flux: { key: `flux-${flux.version}+${LAYOUT}`, files: [...FLUX_CONTROLLERS.map((c) => `bin/${c}`), 'flux-crds'] },
  };
}

/** Where the cluster's programs and files are in a clone (what the harness starts). */
export function clusterToolPaths(projectRoot = root) {
  const dir = join(projectRoot, '.tools', 'cluster');
  const bin = join(dir, 'bin');
  return {
    dir,
    bin,
    kubeApiserver: join(bin, 'kube-apiserver'),
    kubeControllerManager: join(bin, 'kube-controller-manager'),
    kubeScheduler: join(bin, 'kube-scheduler'),
    etcd: join(bin, 'etcd'),
    kwok: join(bin, 'kwok'),
    sourceController: join(bin, 'source-controller'),
    kustomizeController: join(bin, 'kustomize-controller'),
    /** kwok's `--config`: only Stage documents. */
    kwokStages: join(dir, 'kwok-stages.yaml'),
    /** Flux's CRD files (source and kustomize toolkits), applied before the controllers start. */
    fluxCrds: join(dir, 'flux-crds'),
    kubernetesVersion: CLUSTER_TOOLS.kubernetes.version,
    stamp: join(dir, 'cluster-tools.json'),
  };
}

/** What .tools/cluster/cluster-tools.json holds when it is current: each item's cache key. */
export function clusterToolsStamp() {
  return Object.fromEntries(Object.entries(items()).map(([name, item]) => [name, item.key]));
}

/** True when .tools/cluster/ holds the pinned programs and files. Looks at files only. */
export function clusterToolsCurrent(projectRoot = root) {
  const paths = clusterToolPaths(projectRoot);
  const files = Object.values(items()).flatMap((item) => item.files.map((f) => join(paths.dir, f)));
  return stampCurrent(paths.stamp, clusterToolsStamp(), files);
}

const { log, fail } = reporter('setup-cluster-tools');
const go = goRunner(fail, 'the cluster tests build Kubernetes, etcd, kwok and Flux from the Go module proxy');

function cacheRoot() {
  return toolsCacheRoot('cluster-tools');
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * One build at a time per cache: two `npm test` runs starting together would otherwise both spend fifteen minutes
 * and twice the memory. A lock left by a process that died is taken over.
 */
function withCacheLock(fn) {
  mkdirSync(cacheRoot(), { recursive: true });
  const lock = join(cacheRoot(), '.build.lock');
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      if (!Number.isInteger(holder) || !alive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (!announced) log(`another build (pid ${holder}) is filling ${cacheRoot()}; waiting for it …`);
      announced = true;
      sleepMs(2000);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * The go command's environment: the machine's own Go, no C toolchain, and build and module caches of this run's
 * own (deleted afterwards: together they reach 4–9 GB, and nothing reads them again once the binaries are cached).
 */
function goEnv(work, extra = {}) {
  return {
    ...process.env,
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
    GOFLAGS: '-modcacherw -buildvcs=false',
    GOCACHE: join(work, 'gocache'),
    GOMODCACHE: join(work, 'gomodcache'),
    GOPATH: join(work, 'gopath'),
    ...extra,
  };
}

/** The folder and go.mod of a module version, downloaded into the run's module cache. */
function download(modulePath, version, ctx) {
  const info = JSON.parse(go(['mod', 'download', '-json', `${modulePath}@${version}`], { ...ctx, capture: true }));
  return { dir: info.Dir, goMod: readFileSync(info.GoMod, 'utf8') };
}

/** `replace` directives of a go.mod: [{ from, to }] with `to` as written ("./x" or "module version"). */
export function replaceDirectives(goMod) {
  const out = [];
  const add = (line) => {
    const m = /^\s*(\S+)(?:\s+\S+)?\s+=>\s+(.+?)\s*(?:\/\/.*)?$/.exec(line);
    if (m) out.push({ from: m[1], to: m[2] });
  };
  let inBlock = false;
  for (const line of goMod.split('\n')) {
    if (inBlock) {
      if (/^\s*\)/.test(line)) inBlock = false;
      else add(line);
    } else if (/^replace\s*\(\s*$/.test(line)) inBlock = true;
    else if (/^replace\s+/.test(line)) add(line.replace(/^replace\s+/, ''));
  }
  return out;
}

/** Modules a go.mod requires at exactly `version`. */
export function requiredAt(goMod, version) {
  const out = [];
  for (const m of goMod.matchAll(/^\s*(?:require\s+)?(\S+)\s+(\S+)(?:\s*\/\/.*)?$/gm)) {
    if (m[2] === version) out.push(m[1]);
  }
  return out;
}

/**
 * The helper go.mod that builds k8s.io/kubernetes's commands: each staging module that k8s.io/kubernetes requires
 * at v0.0.0 and replaces with its ./staging folder is pinned to the published v0.<minor>.<patch> instead.
 */
export function kubernetesHelperGoMod(kubernetesGoMod, version = CLUSTER_TOOLS.kubernetes.version) {
  const staged = new Set(
    replaceDirectives(kubernetesGoMod)
      .filter((r) => r.to.startsWith('./staging/'))
      .map((r) => r.from),
  );
  const staging = requiredAt(kubernetesGoMod, 'v0.0.0').filter((m) => staged.has(m));
  const published = version.replace(/^v1\./, 'v0.');
  return [
    'module modelrelease.local/kubernetes-build',
    '',
    'go 1.26',
    '',
    `require k8s.io/kubernetes ${version}`,
    '',
    'tool (',
    ...KUBE_COMMANDS.map((c) => `\tk8s.io/kubernetes/cmd/${c}`),
    ')',
    '',
    'replace (',
    ...staging.map((m) => `\t${m} => ${m} ${published}`),
    ')',
    '',
  ].join('\n');
}

/**
 * The helper go.mod that builds a Flux controller: the controller's own replace lines, with its `./api` folder
 * replaced by the published api module of the same version, and source-controller's github.com/fluxcd/pkg/artifact
 * pinned to v0.18.0 (the v0.18.3 it asks for is refused by the proxy here; v0.18.0 builds and behaves the same).
 */
export function fluxHelperGoMod(controller, controllerGoMod, version = CLUSTER_TOOLS.flux.version) {
  const modulePath = `github.com/fluxcd/${controller}`;
  const replaces = new Map();
  for (const { from, to } of replaceDirectives(controllerGoMod)) {
    if (to === './api') replaces.set(from, `${modulePath}/api ${version}`);
    else if (!to.startsWith('.')) replaces.set(from, to);
  }
  if (controller === 'source-controller')
    replaces.set('github.com/fluxcd/pkg/artifact', 'github.com/fluxcd/pkg/artifact v0.18.0');
  return [
    `module modelrelease.local/${controller}-build`,
    '',
    'go 1.26',
    '',
    `require ${modulePath} ${version}`,
    '',
    `tool ${modulePath}`,
    '',
    'replace (',
    ...[...replaces].map(([from, to]) => `\t${from} => ${to}`),
    ')',
    '',
  ].join('\n');
}

function helperModule(work, name, goMod, files = {}) {
  const dir = join(work, `module-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'go.mod'), goMod);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const builders = {
  kubernetes(out, work) {
    const { module, version } = CLUSTER_TOOLS.kubernetes;
    const env = goEnv(work);
    const k8s = download(module, version, { env });
    const dir = helperModule(work, 'kubernetes', kubernetesHelperGoMod(k8s.goMod));
    go(['mod', 'tidy'], { cwd: dir, env });
    const [, major, minor] = /^v(\d+)\.(\d+)\./.exec(version);
    const pkg = 'k8s.io/component-base/version';
    const ldflags = [
      '-s -w',
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
    ].join(' ');
    mkdirSync(join(out, 'bin'), { recursive: true });
    go(
      [
        'build',
        '-trimpath',
        `-ldflags=${ldflags}`,
        '-o',
        join(out, 'bin') + '/',
        ...KUBE_COMMANDS.map((c) => `k8s.io/kubernetes/cmd/${c}`),
      ],
      { cwd: dir, env },
    );
  },
  etcd(out, work) {
    const { module, version } = CLUSTER_TOOLS.etcd;
    const env = goEnv(work);
    const main =
      'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n';
    const dir = helperModule(
      work,
      'etcd',
      `module modelrelease.local/etcd-build\n\ngo 1.26\n\nrequire ${module} ${version}\n`,
      {
        'main.go': main,
      },
    );
    go(['mod', 'tidy'], { cwd: dir, env });
    mkdirSync(join(out, 'bin'), { recursive: true });
    go(['build', '-trimpath', '-ldflags=-s -w', '-o', join(out, 'bin', 'etcd'), '.'], { cwd: dir, env });
  },
  kwok(out, work) {
    const { module, version } = CLUSTER_TOOLS.kwok;
    const env = goEnv(work, { GOBIN: join(out, 'bin') });
    go(['install', '-trimpath', '-ldflags=-s -w', `${module}/cmd/kwok@${version}`], { env });
    const kwok = download(module, version, { env });
    const stages = KWOK_STAGES.map((f) =>
      readFileSync(join(kwok.dir, f), 'utf8')
        .replace(/^---\n/, '')
        .trimEnd(),
    );
    writeFileSync(join(out, 'kwok-stages.yaml'), `${stages.join('\n---\n')}\n`);
  },
  flux(out, work) {
    const { module, version } = CLUSTER_TOOLS.flux;
    const env = goEnv(work);
    mkdirSync(join(out, 'bin'), { recursive: true });
    mkdirSync(join(out, 'flux-crds'), { recursive: true });
    for (const controller of FLUX_CONTROLLERS) {
      log(`  ${controller} …`);
      const modulePath = `${module}/${controller}`;
      const src = download(modulePath, version, { env });
      const dir = helperModule(work, controller, fluxHelperGoMod(controller, src.goMod));
      go(['get', `${modulePath}@${version}`], { cwd: dir, env });
      go(['build', '-trimpath', '-ldflags=-s -w', '-o', join(out, 'bin', controller), modulePath], { cwd: dir, env });
      const crds = join(src.dir, 'config', 'crd', 'bases');
      for (const file of readdirSync(crds).filter((f) => f.endsWith('.yaml'))) {
        copyFileSync(join(crds, file), join(out, 'flux-crds', file));
      }
    }
  },
};

const ESTIMATES = {
  etcd: 'about a minute',
  kubernetes: 'about eight minutes',
  kwok: 'about two minutes',
  flux: 'about six minutes',
};

function itemComplete(name) {
  const item = items()[name];
  const dir = join(cacheRoot(), item.key);
  return existsSync(join(dir, '.complete')) && item.files.every((f) => existsSync(join(dir, f)));
}

/** Builds the item into the cache unless it is there; returns its cache folder. */
function cachedItem(name, work) {
  const item = items()[name];
  const dir = join(cacheRoot(), item.key);
  if (itemComplete(name)) return dir;
  const started = Date.now();
  log(`building ${name} (${ESTIMATES[name]}) from the Go module proxy …`);
  try {
    fillWhole(dir, (staging) => {
      builders[name](staging, work);
      for (const f of item.files) if (!existsSync(join(staging, f))) throw new Error(`the build did not produce ${f}`);
      writeFileSync(join(staging, '.complete'), `${new Date().toISOString()}\n`);
    });
  } catch (err) {
    fail(`${name}: ${err.message}; fix that, then run node scripts/setup-cluster-tools.mjs again`);
  }
  log(`${name} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return dir;
}

/** Hard-links (or, across file systems, copies) a file or folder; the target is replaced. */
function linkInto(from, to) {
  rmSync(to, { recursive: true, force: true });
  if (statSync(from).isDirectory()) {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from)) linkInto(join(from, entry), join(to, entry));
    return;
  }
  mkdirSync(dirname(to), { recursive: true });
  try {
    linkSync(from, to);
  } catch {
    copyWhole(from, to);
  }
}

function main() {
  const started = Date.now();
  if (clusterToolsCurrent()) {
    return log(`Kubernetes, etcd, kwok and Flux are installed in .tools/cluster (${Date.now() - started} ms)`);
  }
  if (process.argv.includes('--check')) {
    return fail(
      'missing: Kubernetes, etcd, kwok or Flux in .tools/cluster/ (node scripts/setup-cluster-tools.mjs builds them)',
    );
  }
  // Built in this order so that the control plane is usable as early as possible; one at a time, because a
  // Kubernetes build alone takes close to 3 GB of memory and both cores.
  const order = ['etcd', 'kubernetes', 'kwok', 'flux'];
  const dirs = {};
  if (order.every(itemComplete)) {
    for (const name of order) dirs[name] = join(cacheRoot(), items()[name].key);
  } else {
    withCacheLock(() => {
      const work = mkdtempSync(join(tmpdir(), 'cluster-tools-build-'));
      try {
        for (const name of order) dirs[name] = cachedItem(name, work);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  }
  const paths = clusterToolPaths();
  rmSync(paths.stamp, { force: true });
  for (const name of order) {
    for (const f of items()[name].files) linkInto(join(dirs[name], f), join(paths.dir, f));
  }
  writeStamp(paths.stamp, clusterToolsStamp());
  log(`done (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
