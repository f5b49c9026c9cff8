import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { scanTargets } from '../activities/scan/scan';
const dir = process.argv[2]!;
const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
// warm
await scanTargets(files.map((f) => ({ path: relative(dir, f), file: f, size: statSync(f).size })));
const times: [number, string][] = [];
for (const f of files) {
  const t = performance.now();
  await scanTargets([{ path: relative(dir, f), file: f, size: statSync(f).size }]);
  times.push([performance.now() - t, relative(dir, f)]);
}
times.sort((a, b) => b[0] - a[0]);
const byDir: Record<string, number> = {};
for (const [t, f] of times) byDir[f.split('/')[0]!] = (byDir[f.split('/')[0]!] ?? 0) + t;
console.log(byDir);
for (const [t, f] of times.slice(0, 15)) console.log(t.toFixed(2), f);
