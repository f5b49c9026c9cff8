/**
 * The model-file scanner against picklescan and ProtectAI modelscan on one corpus, in the same run:
 *
 *   npx tsx bench/scan.ts [--keep] [--runs N]
 *
 * The corpus (made by Python in a temp dir, deleted afterwards unless --keep): the test suite's malicious and benign
 * fixtures, 200+ benign pickles of mixed kinds (torch-style state dicts, numpy arrays inline, plain containers, at
 * protocols 2–5), a 1 GB PyTorch-style zip, and 2 GB of safetensors (sparse on disk). Each tool runs as its own process
 * over the same directory, N times (default 5, the three tools interleaved); wall time includes start-up. Prints the
 * median times and their range, the ratio of medians (target: ≥ 5× faster than picklescan) and a detection table: files
 * flagged by each, and the malicious files each missed.
 *
 * Needs `.venv/bin/pip install picklescan modelscan numpy joblib h5py`.
 */
import { execFile, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { readdir, mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isIncomplete } from '../activities/scan/findings';
import { scanTargets } from '../activities/scan/scan';
import { bundleForNode, buildCli } from '../scripts/build-cli';

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const VENV = join(REPO, '.venv', 'bin');

const CORPUS_PY = String.raw`
import collections, io, os, pickle, struct, sys, zipfile, json, subprocess
import numpy as np
out = sys.argv[1]
subprocess.run([sys.executable, sys.argv[2], out], check=True, stdout=subprocess.DEVNULL)
sys.path.insert(0, os.path.dirname(sys.argv[2]))
# Re-use the fixture script's torch stand-ins for realistic state dicts.
ns = {"__name__": "fixtures"}
sys.argv = [sys.argv[2], os.path.join(out, "_scratch")]
exec(open(sys.argv[0]).read(), ns)
torch_pickle, state_dict, TorchPickler = ns["torch_pickle"], ns["state_dict"], ns["TorchPickler"]
mixed = os.path.join(out, "mixed")
os.makedirs(mixed, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(210):
    kind = i % 4
    proto = 2 + i % 4
    if kind == 0:
        obj = state_dict(layers=8 + i % 40)
        data = torch_pickle(obj, protocol=proto)
    elif kind == 1:
        obj = {"weights": rng.standard_normal(250_000 + 5_000 * (i % 20)).astype("f4"), "step": i}
        data = pickle.dumps(obj, protocol=proto)
    elif kind == 2:
        obj = collections.OrderedDict((f"k{j}", [j, float(j), str(j), (j, j)]) for j in range(2000))
        data = pickle.dumps(obj, protocol=proto)
    else:
        obj = [rng.integers(0, 255, size=(64, 64), dtype=np.uint8) for _ in range(40)]
        data = pickle.dumps(obj, protocol=proto)
    open(os.path.join(mixed, f"p{i:03d}.pkl"), "wb").write(data)

# 1 GB PyTorch-style zip: data.pkl plus 64 storages of 16 MiB, stored (torch does not compress).
big = os.path.join(out, "big")
os.makedirs(big, exist_ok=True)
with zipfile.ZipFile(os.path.join(big, "pytorch_model.bin"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", torch_pickle(state_dict(layers=32)))
    block = b"\x00" * (16 << 20)
    for k in range(64):
        with z.open(f"archive/data/{k}", "w", force_zip64=True) as w:
            w.write(block)
    z.writestr("archive/version", "3\n")

# 2 GB of safetensors, sparse: two 1 GiB files whose header covers every byte.
for n in range(2):
    numel = (1 << 30) // 4 // 4
    header = {f"t{j}": {"dtype": "F32", "shape": [numel], "data_offsets": [j * numel * 4, (j + 1) * numel * 4]} for j in range(4)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path = os.path.join(big, f"model-{n + 1:05d}-of-00002.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + (1 << 30))
import shutil
shutil.rmtree(os.path.join(out, "_scratch"), ignore_errors=True)
print("ok")
`;

/** Malicious fixtures (their paths in the corpus) and what makes them malicious. */
const MALICIOUS = [
  'evil/os-system-p0.pkl',
  'evil/os-system-p1.pkl',
  'evil/os-system-p2.pkl',
  'evil/os-system-p3.pkl',
  'evil/os-system-p4.pkl',
  'evil/os-system-p5.pkl',
  'evil/eval.pkl',
  'evil/exec.pkl',
  'evil/importlib.pkl',
  'evil/marshal-function.pkl',
  'evil/memo-stack-global.pkl',
  'evil/inst.pkl',
  'evil/obj.pkl',
  'evil/dotted-name.pkl',
  'evil/dynamic-import.pkl',
  'evil/torch-zip.pt',
  'evil/legacy-tar.pt',
  'evil/object-array.npy',
  'evil/arrays.npz',
  'evil/model.joblib',
  'evil/model.keras',
  'evil/model.h5',
  'evil/zip-slip.zip',
  'evil/zip-bomb.zip',
];

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** Child mode: scan the corpus and print the files with a high or critical finding. */
async function child(dir: string): Promise<void> {
  const files = await listFiles(dir);
  const targets = files.map((p) => ({ path: p, file: join(dir, p), size: statSync(join(dir, p)).size }));
  const start = performance.now();
  const report = await scanTargets(targets);
  const ms = performance.now() - start;
  const flagged = [
    ...new Set(
      report.findings
        .filter((f) => f.severity === 'critical' || f.severity === 'high')
        .map((f) => f.path.split('!')[0] as string),
    ),
  ];
  const notExamined = report.files.filter((f) => f.findings.some((x) => isIncomplete(x.ruleId))).map((f) => f.path);
  process.stdout.write(JSON.stringify({ ms, flagged, notExamined, maxRss: process.resourceUsage().maxRSS * 1024 }));
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await run();
  return { ms: performance.now() - start, value };
}

function run(
  command: string,
  args: string[],
  cwd: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ stdout, stderr, code }));
  });
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a whole number of runs, at least 1');
  const dir = await mkdtemp(join(tmpdir(), 'mrel-bench-scan-'));
  try {
    const made = await timed(() =>
      execFileAsync(join(VENV, 'python'), ['-c', CORPUS_PY, dir, join(REPO, 'test', 'scan', 'make-fixtures.py')], {
        maxBuffer: 1 << 20,
      }),
    );
    const files = await listFiles(dir);
    const sizes = await Promise.all(files.map(async (f) => (await stat(join(dir, f))).size));
    const total = sizes.reduce((a, b) => a + b, 0);
    const pickles = files.filter((f) => f.startsWith('mixed/')).length;
    console.log(
      `corpus: ${files.length} files, ${(total / 2 ** 30).toFixed(2)} GiB (${pickles} mixed pickles, 1 GiB torch zip, 2 GiB safetensors, ${MALICIOUS.length} malicious), made in ${(made.ms / 1000).toFixed(1)} s`,
    );

    // Warm the page cache so the first tool does not pay for the disk alone.
    await execFileAsync('sh', ['-c', 'find . -type f -exec cat {} + > /dev/null'], { cwd: dir });

    // Ours runs as a deployed CLI would: bundled JavaScript on plain node, not transpiled on the fly by tsx (picklescan
    // and modelscan run from installed, byte-compiled packages too). Code split: parsers for formats the corpus lacks
    // (protobuf models) load only when such a file turns up.
    const bundleDir = await mkdtemp(join(tmpdir(), 'mrel-scan-bundle-'));
    const scanner = await bundleForNode({
      name: 'scan',
      entry: fileURLToPath(import.meta.url),
      outdir: bundleDir,
      external: ['esbuild'],
    });
    // The whole `mrel scan` command too, as `npm run build:cli` bundles it: policy file and schema, file listing, the
    // JSON report. It sits in the repository so the packages it leaves out resolve from node_modules.
    const cliDir = await mkdtemp(join(REPO, '.bench-mrel-'));
    const cliEntry = await buildCli(cliDir);
    const cliArgs = [cliEntry, 'scan', '--format', 'json', '.'];
    // Each tool runs `runs` times, interleaved so that a burst of load on the shared machine hits all three alike;
    // the table shows the median wall time and the range.
    const reportFile = join(dir, 'modelscan.json');
    const times = { ours: [] as number[], cli: [] as number[], pick: [] as number[], model: [] as number[] };
    let cliOut = '';
    let oursOut = '';
    let oursScanMs: number[] = [];
    let pickOut = '';
    try {
      for (let i = 0; i < runs; i++) {
        const ours = await timed(() => run(process.execPath, [scanner, '--child', dir], REPO));
        times.ours.push(ours.ms);
        oursOut = ours.value.stdout;
        if (ours.value.code !== 0)
          throw new Error(`our scanner failed (exit ${ours.value.code}): ${ours.value.stderr}`);
        oursScanMs.push((JSON.parse(oursOut) as { ms: number }).ms);
        const cli = await timed(() => run(process.execPath, cliArgs, dir));
        times.cli.push(cli.ms);
        cliOut = cli.value.stdout;
        if (cli.value.code !== 1)
          throw new Error(`mrel scan should exit 1 (findings), got ${cli.value.code}: ${cli.value.stderr}`);
        const pick = await timed(() => run(join(VENV, 'picklescan'), ['-p', dir], dir));
        times.pick.push(pick.ms);
        pickOut = pick.value.stdout;
        await rm(reportFile, { force: true });
        const model = await timed(() => run(join(VENV, 'modelscan'), ['-p', dir, '-r', 'json', '-o', reportFile], dir));
        times.model.push(model.ms);
      }
    } finally {
      await rm(bundleDir, { recursive: true, force: true });
      await rm(cliDir, { recursive: true, force: true });
    }
    oursScanMs = oursScanMs.sort((x, y) => x - y);
    const oursResult = JSON.parse(oursOut) as {
      ms: number;
      flagged: string[];
      notExamined: string[];
      maxRss: number;
    };
    const ours = { ms: median(times.ours) };
    const cliReport = JSON.parse(cliOut) as { findings: { path: string; severity: string }[] };
    const cliFlagged = new Set(
      cliReport.findings
        .filter((f) => f.severity === 'critical' || f.severity === 'high')
        .map((f) => f.path.split('!')[0] as string),
    );
    const pick = { ms: median(times.pick) };
    const model = { ms: median(times.model) };
    const range = (xs: number[]) => `${(Math.min(...xs) / 1000).toFixed(2)}–${(Math.max(...xs) / 1000).toFixed(2)}`;
    const pickFlagged = new Set<string>();
    for (const line of pickOut.split('\n')) {
      const m = /^(.*?): dangerous import/.exec(line);
      if (!m) continue;
      const path = relative(dir, m[1] as string);
      pickFlagged.add(files.find((f) => path === f || path.startsWith(`${f}:`)) ?? path);
    }
    const modelFlagged = new Set<string>();
    try {
      const report = JSON.parse(await readFile(reportFile, 'utf8')) as {
        issues?: { source?: string; severity?: string }[];
      };
      for (const issue of report.issues ?? []) {
        if (!issue.source) continue;
        const source = issue.source.split(':')[0] as string;
        const path = isAbsolute(source) ? relative(dir, source) : source;
        modelFlagged.add(files.find((f) => path === f || path.startsWith(`${f}:`)) ?? path);
      }
    } catch (err) {
      console.log(`modelscan wrote no JSON report (${(err as Error).message})`);
    }
    await rm(reportFile, { force: true });

    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    console.log('');
    console.log(
      `| tool | wall time, median of ${runs} (range) | speed vs picklescan (its time / this one's) | files flagged | malicious missed |`,
    );
    console.log('| --- | --- | --- | --- | --- |');
    const oursSet = new Set(oursResult.flagged);
    const missed = (set: Set<string>) => MALICIOUS.filter((m) => !set.has(m));
    const row = (name: string, ms: number, all: number[], set: Set<string>) =>
      console.log(
        `| ${name} | ${s(ms)} (${range(all)}) | ${(pick.ms / ms).toFixed(1)}× | ${set.size} | ${missed(set).length}/${MALICIOUS.length}${missed(set).length ? `: ${missed(set).join(', ')}` : ''} |`,
      );
    row('modelrelease scanner', ours.ms, times.ours, oursSet);
    row('`mrel scan` command', median(times.cli), times.cli, cliFlagged);
    row('picklescan', pick.ms, times.pick, pickFlagged);
    row('modelscan', model.ms, times.model, modelFlagged);
    console.log('');
    console.log(
      `ours: ${s(median(oursScanMs))} of scanning after ${s(ours.ms - median(oursScanMs))} of node start-up (bundled CLI), peak RSS ${(oursResult.maxRss / 2 ** 20).toFixed(0)} MiB`,
    );
    console.log(
      `ratio vs picklescan (target ≥ 5×): ${(pick.ms / ours.ms).toFixed(1)}× wall to wall; ${(pick.ms / median(oursScanMs)).toFixed(1)}× against our scanning alone; the whole \`mrel scan\` command (policy, listing, JSON report): ${(pick.ms / median(times.cli)).toFixed(1)}× (machine load average ${loadavg()[0]?.toFixed(1)} on ${cpus().length} cores)`,
    );
    const falsePositives = (set: Set<string>) => [...set].filter((f) => !MALICIOUS.includes(f));
    console.log(
      `flagged benign files — ours: ${falsePositives(oursSet).length}, picklescan: ${falsePositives(pickFlagged).length}, modelscan: ${falsePositives(modelFlagged).length}`,
    );
    if (oursResult.notExamined.length)
      console.log(`ours, not fully examined (error verdict): ${oursResult.notExamined.join(', ')}`);
    console.log('');
    console.log('detection per malicious file (✓ flagged):');
    console.log('| file | ours | picklescan | modelscan |');
    console.log('| --- | --- | --- | --- |');
    const mark = (set: Set<string>, f: string) => (set.has(f) ? '✓' : '✗');
    for (const f of MALICIOUS)
      console.log(`| ${f} | ${mark(oursSet, f)} | ${mark(pickFlagged, f)} | ${mark(modelFlagged, f)} |`);
  } finally {
    if (keep) console.log(`corpus kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3] as string);
else await main();
