/**
 * The image gate at scale, against Google's osv-scanner in the same run.
 *
 *   npx tsx bench/scan-image.ts [--packages 1000] [--advisories 50000]
 *
 * 1. An image (FROM scratch, built and pushed with the test dockerd and registry) holding 1,000 packages — a dpkg
 *    status, node_modules package.json files and Python dist-info — scanned against 50,000 OSV advisories: prints
 *    inventory time (layers streamed and parsed), advisory load time, matching time and peak RSS.
 * 2. The same npm and PyPI packages as lock files (package-lock.json, requirements.txt) and the same advisories
 *    (osv.dev's all.zip layout, read by both) scanned by this gate and by `osv-scanner scan source --offline`
 *    (from .tools/bin, or OSV_SCANNER): each as a process under /usr/bin/time, so wall time and peak RSS are
 *    measured the same way. Prints both, the ratio, and every finding one reports and the other does not.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { strToU8, zipSync } from 'fflate';
import { indexKey, loadAdvisoryDirectory } from '../activities/scan/image/advisory-db';
import { parseLockFile } from '../activities/scan/image/lockfiles';
import { matchPackages } from '../activities/scan/image/match';
import type { OsvAdvisory } from '../activities/scan/image/osv';
import { scanImage } from '../activities/scan/image/scan';
import { parseImagePolicy } from '../activities/scan/image/policy';
import { buildAndPush } from '../scripts/docker-images';
import { startDockerTestEnv } from '../scripts/docker-test-env';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OSV_SCANNER = process.env.OSV_SCANNER ?? join(ROOT, '.tools/bin/osv-scanner');

/** A small deterministic PRNG, so every run scans the same data. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Inventory {
  debian: { name: string; version: string }[];
  npm: { name: string; version: string }[];
  pypi: { name: string; version: string }[];
}

function inventory(total: number): Inventory {
  const deb = Math.round(total * 0.2);
  const npm = Math.round(total * 0.4);
  const py = total - deb - npm;
  return {
    debian: Array.from({ length: deb }, (_, i) => ({
      name: `libbench${i}`,
      version: `1.${i % 7}.${i % 13}-${(i % 3) + 1}+deb12u1`,
    })),
    npm: Array.from({ length: npm }, (_, i) => ({
      name: i % 10 === 0 ? `@bench/pkg-${i}` : `bench-pkg-${i}`,
      version: `${1 + (i % 4)}.${i % 11}.${i % 9}`,
    })),
    pypi: Array.from({ length: py }, (_, i) => ({
      // Most names as PyPI normalises them (as osv.dev's records spell them); every 50th spelled otherwise.
      name: i % 50 === 0 ? `Bench_Py.${i}` : `bench-py-${i}`,
      version: `${1 + (i % 5)}.${i % 8}.${i % 6}`,
    })),
  };
}

const VECTORS = [
  'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
  'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N',
  'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H',
  'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N',
  'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
];

/** 50,000 advisories: most name packages the image lacks; about one in ten names one of its packages. */
function advisories(inv: Inventory, count: number): Record<string, OsvAdvisory[]> {
  const random = rng(42);
  const out: Record<string, OsvAdvisory[]> = { Debian: [], npm: [], PyPI: [] };
  const plan: [string, string, { name: string; version: string }[], number][] = [
    ['Debian', 'Debian:12', inv.debian, Math.round(count * 0.2)],
    ['npm', 'npm', inv.npm, Math.round(count * 0.4)],
    ['PyPI', 'PyPI', inv.pypi, count - Math.round(count * 0.2) - Math.round(count * 0.4)],
  ];
  let n = 0;
  for (const [folder, ecosystem, packages, total] of plan) {
    for (let i = 0; i < total; i++) {
      n++;
      const targeted = random() < 0.1;
      const pkg = targeted ? packages[Math.floor(random() * packages.length)]! : undefined;
      const name = pkg?.name ?? `${folder.toLowerCase()}-other-${i}`;
      // Fixes around the installed version: some below it (not affected), some above (affected).
      const major = 1 + Math.floor(random() * 5);
      const fixed =
        folder === 'Debian'
          ? `1.${Math.floor(random() * 7)}.${Math.floor(random() * 13)}-2`
          : `${major}.${Math.floor(random() * 11)}.0`;
      const events: Record<string, string>[] =
        random() < 0.1
          ? [{ introduced: '0' }, { last_affected: fixed }]
          : [{ introduced: folder === 'Debian' ? '0' : random() < 0.5 ? '0' : '1.0.0' }, { fixed }];
      const id =
        folder === 'Debian'
          ? `DEBIAN-CVE-2099-${10000 + n}`
          : folder === 'npm'
            ? `GHSA-bnch-${n.toString(36).padStart(4, '0')}-0000`
            : `PYSEC-2099-${n}`;
      out[folder]!.push({
        id,
        modified: '2024-06-01T00:00:00Z',
        published: '2024-01-01T00:00:00Z',
        ...(folder === 'Debian' ? { upstream: [`CVE-2099-${10000 + n}`] } : { aliases: [`CVE-2099-${10000 + n}`] }),
        summary: `synthetic advisory ${n}`,
        severity: [
          {
            type: VECTORS[n % VECTORS.length]!.startsWith('CVSS:4') ? 'CVSS_V4' : 'CVSS_V3',
            score: VECTORS[n % VECTORS.length]!,
          },
        ],
        affected: [
          {
            package: { ecosystem, name },
            ranges: [{ type: folder === 'npm' ? 'SEMVER' : 'ECOSYSTEM', events }],
          },
        ],
      });
    }
  }
  return out;
}

interface Timed {
  wallS: number;
  maxRssKb: number;
  stdout: string;
}

/** Runs a command under /usr/bin/time: wall seconds and peak RSS the same way for both tools. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  return new Promise((resolve, reject) => {
    execFile(
      '/usr/bin/time',
      ['-f', 'TIME %e %M', cmd, ...args],
      { env, maxBuffer: 1024 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const m = /TIME ([\d.]+) (\d+)/.exec(stderr);
        if (!m) return reject(err ?? new Error(`no timing from ${cmd}: ${stderr.slice(-500)}`));
        resolve({ wallS: Number(m[1]), maxRssKb: Number(m[2]), stdout });
      },
    );
  });
}

/** Child mode: the gate's lock-file path (parse, load the advisories the packages need, match) as one process. */
async function lockChild(dir: string, db: string): Promise<void> {
  const t0 = performance.now();
  const packages = [];
  for (const f of ['requirements.txt', 'package-lock.json']) {
    packages.push(...parseLockFile(f, await readFile(join(dir, f))).packages);
  }
  const ecosystems = new Set(packages.map((p) => p.ecosystem));
  const t1 = performance.now();
  const wanted = new Set(packages.map((p) => indexKey(p.ecosystem, p.advisoryName)));
  const { index } = await loadAdvisoryDirectory(db, { ecosystems, wanted });
  const t2 = performance.now();
  const { matches } = matchPackages(packages, index, { unknownSeverity: 'medium' });
  const t3 = performance.now();
  const findings = matches.flatMap((m) =>
    m.advisoryIds.map((id) => `${m.package.ecosystem}/${m.package.name}@${m.package.version} ${id}`),
  );
  console.log(
    JSON.stringify({ findings, parseMs: t1 - t0, loadMs: t2 - t1, matchMs: t3 - t2, packages: packages.length }),
  );
}

function fmt(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      packages: { type: 'string', default: '1000' },
      advisories: { type: 'string', default: '50000' },
      'lock-child': { type: 'string' },
      db: { type: 'string' },
    },
  });
  if (values['lock-child']) return lockChild(values['lock-child'], values.db!);

  const total = Number(values.packages);
  const advisoryCount = Number(values.advisories);
  const work = await mkdtemp(join(tmpdir(), 'mrel-bench-image-'));
  const inv = inventory(total);
  const generated = advisories(inv, advisoryCount);
  // osv-scanner reads <cache>/osv-scalibr/<Ecosystem>/all.zip; the gate reads the same folder.
  const db = join(work, 'db', 'osv-scalibr');
  for (const [folder, list] of Object.entries(generated)) {
    await mkdir(join(db, folder), { recursive: true });
    const files = Object.fromEntries(list.map((a) => [`${a.id}.json`, strToU8(JSON.stringify(a))]));
    await writeFile(join(db, folder, 'all.zip'), zipSync(files, { level: 1 }));
  }
  const locks = join(work, 'project');
  await mkdir(locks);
  await writeFile(join(locks, 'requirements.txt'), inv.pypi.map((p) => `${p.name}==${p.version}`).join('\n') + '\n');
  const lockPackages: Record<string, { version: string }> = { '': { version: '1.0.0' } as never };
  for (const p of inv.npm) lockPackages[`node_modules/${p.name}`] = { version: p.version };
  await writeFile(
    join(locks, 'package-lock.json'),
    JSON.stringify({ name: 'bench', lockfileVersion: 3, packages: lockPackages }),
  );
  console.log(
    `data: ${total} packages (${inv.debian.length} dpkg, ${inv.npm.length} npm, ${inv.pypi.length} PyPI), ${advisoryCount} advisories (${Object.entries(
      generated,
    )
      .map(([k, v]) => `${v.length} ${k}`)
      .join(', ')})`,
  );

  // 1. The image.
  const env = await startDockerTestEnv();
  try {
    const files = [
      { path: 'etc/os-release', content: 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' },
      {
        path: 'var/lib/dpkg/status',
        content: inv.debian
          .map(
            (p) =>
              `Package: ${p.name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${p.version}\nDescription: bench\n`,
          )
          .join('\n'),
      },
      ...inv.npm.map((p) => ({ path: `srv/app/node_modules/${p.name}/package.json`, content: JSON.stringify(p) })),
      ...inv.pypi.map((p) => ({
        path: `usr/local/lib/python3.11/site-packages/${p.name}-${p.version}.dist-info/METADATA`,
        content: `Metadata-Version: 2.1\nName: ${p.name}\nVersion: ${p.version}\n`,
      })),
    ];
    const tag = `${env.registry}/bench/server:1`;
    await buildAndPush(env.docker, { tag, files, instructions: ['USER 10001'] });
    const rssBefore = process.memoryUsage().rss;
    const policy = parseImagePolicy({ advisoryDir: db, requiredLabels: [] });
    const report = await scanImage(tag, { policy });
    const maxRss = process.resourceUsage().maxRSS * 1024;
    console.log('\n== image scan (this gate) ==');
    console.log(
      `packages found:  ${report.packages.length} in ${report.layers.length} layer(s), ${report.layers.reduce((n, l) => n + l.uncompressedBytes, 0)} bytes streamed`,
    );
    console.log(`inventory time:  ${fmt(report.timings.inventoryMs)} (resolve ${fmt(report.timings.resolveMs)})`);
    console.log(
      `advisory load:   ${fmt(report.timings.advisoryLoadMs)} (${report.advisories.loaded} advisories from all.zip)`,
    );
    console.log(`matching time:   ${fmt(report.timings.matchMs)} → ${report.vulnerabilities.length} vulnerabilities`);
    console.log(
      `peak RSS:        ${(maxRss / 2 ** 20).toFixed(0)} MiB (process; ${(rssBefore / 2 ** 20).toFixed(0)} MiB before the scan)`,
    );
  } finally {
    await env.stop();
  }

  // 2. Lock files against osv-scanner.
  console.log('\n== lock files (npm + PyPI), same advisories: this gate vs osv-scanner --offline ==');
  const mine = await timed(process.execPath, [
    '--import',
    'tsx',
    fileURLToPath(import.meta.url),
    '--lock-child',
    locks,
    '--db',
    db,
  ]);
  const mineOut = JSON.parse(mine.stdout) as {
    findings: string[];
    parseMs: number;
    loadMs: number;
    matchMs: number;
    packages: number;
  };
  const version = await new Promise<string>((r) =>
    execFile(OSV_SCANNER, ['--version'], (_e, out) => r(String(out).split('\n')[0] ?? '?')),
  );
  const theirs = await timed(
    OSV_SCANNER,
    [
      'scan',
      'source',
      '--offline',
      '--offline-vulnerabilities',
      '--format',
      'json',
      '-L',
      join(locks, 'requirements.txt'),
      '-L',
      join(locks, 'package-lock.json'),
    ],
    { ...process.env, OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY: join(work, 'db') },
  );
  const osv = JSON.parse(theirs.stdout) as {
    results?: {
      packages: { package: { name: string; version: string; ecosystem: string }; vulnerabilities?: { id: string }[] }[];
    }[];
  };
  const theirFindings = (osv.results ?? []).flatMap((r) =>
    r.packages.flatMap((p) =>
      (p.vulnerabilities ?? []).map((v) => `${p.package.ecosystem}/${p.package.name}@${p.package.version} ${v.id}`),
    ),
  );
  console.log(
    `this gate:   ${mine.wallS.toFixed(2)} s wall, peak RSS ${(mine.maxRssKb / 1024).toFixed(0)} MiB (in-process: parse ${fmt(mineOut.parseMs)}, load ${fmt(mineOut.loadMs)}, match ${fmt(mineOut.matchMs)}; ${mineOut.packages} packages) → ${mineOut.findings.length} findings`,
  );
  console.log(
    `osv-scanner: ${theirs.wallS.toFixed(2)} s wall, peak RSS ${(theirs.maxRssKb / 1024).toFixed(0)} MiB (${version}) → ${theirFindings.length} findings`,
  );
  console.log(
    `ratio (this gate / osv-scanner wall time): ${(mine.wallS / theirs.wallS).toFixed(2)}×  (target ≤ 1.00×)`,
  );
  // Both name PyPI packages, but osv-scanner prints them PEP 503-normalised: compare on that form.
  const key = (f: string): string =>
    f.startsWith('PyPI/')
      ? f.replace(/^PyPI\/([^@]+)/, (_m, n: string) => `PyPI/${n.toLowerCase().replace(/[-_.]+/g, '-')}`)
      : f;
  const a = new Set(mineOut.findings.map(key));
  const b = new Set(theirFindings.map(key));
  const onlyMine = [...a].filter((f) => !b.has(f)).sort();
  const onlyTheirs = [...b].filter((f) => !a.has(f)).sort();
  const byId = new Map(
    Object.values(generated)
      .flat()
      .map((adv) => [adv.id, adv] as const),
  );
  const explain = (finding: string): string => {
    const adv = byId.get(finding.split(' ')[1] ?? '');
    const affected = adv?.affected?.[0];
    const name = affected?.package?.name ?? '';
    const events = JSON.stringify(affected?.ranges?.[0]?.events ?? []);
    if (affected?.package?.ecosystem === 'PyPI' && name !== name.toLowerCase().replace(/[-_.]+/g, '-')) {
      return `the advisory spells the project "${name}"; PEP 503 makes that the lock file's project, but osv-scanner compares the advisory's name without normalising it (range ${events})`;
    }
    return `not explained by name spelling: range ${events} (${affected?.ranges?.[0]?.type})`;
  };
  console.log(`findings only this gate reports: ${onlyMine.length}`);
  for (const f of onlyMine.slice(0, 25)) console.log(`  + ${f}: ${explain(f)}`);
  if (onlyMine.length > 25) console.log(`  … and ${onlyMine.length - 25} more`);
  console.log(`findings only osv-scanner reports: ${onlyTheirs.length}`);
  for (const f of onlyTheirs.slice(0, 25)) console.log(`  - ${f}: ${explain(f)}`);
  if (onlyTheirs.length > 25) console.log(`  … and ${onlyTheirs.length - 25} more`);
  await rm(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
