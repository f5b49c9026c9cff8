/**
 * The offline advisory source: a directory laid out as osv.dev's downloadable dumps, one folder per ecosystem
 * holding either one `<ID>.json` file per advisory or the dump's `all.zip` (or both). Only the ecosystems the image
 * needs are read. Unreadable files are reported, never skipped silently: a missing advisory could hide a finding.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { OsvAdvisory } from './osv';
import { normalizePypiName } from './packages';
import { ecosystemBase } from './versions';

/** Advisories indexed by ecosystem family and package name. */
export class AdvisoryIndex {
  private readonly byKey = new Map<string, OsvAdvisory[]>();
  private readonly ids = new Set<string>();

  /** Number of distinct advisories indexed. */
  get size(): number {
    return this.ids.size;
  }

  /** Adds an advisory under every package it names (a second copy of the same id is ignored). */
  add(advisory: OsvAdvisory): void {
    if (this.ids.has(advisory.id) || advisory.withdrawn) return;
    this.ids.add(advisory.id);
    const keys = new Set<string>();
    for (const a of advisory.affected ?? []) {
      if (a.package) keys.add(indexKey(a.package.ecosystem, a.package.name));
    }
    for (const key of keys) {
      const list = this.byKey.get(key);
      if (list) list.push(advisory);
      else this.byKey.set(key, [advisory]);
    }
  }

  /** Advisories that name `name` in the ecosystem family of `ecosystem`. */
  lookup(ecosystem: string, name: string): OsvAdvisory[] {
    return this.byKey.get(indexKey(ecosystem, name)) ?? [];
  }
}

/** The key advisories are found by: ecosystem family plus the name as that ecosystem compares names. */
export function indexKey(ecosystem: string, name: string): string {
  const base = ecosystemBase(ecosystem);
  return `${base}\u0000${base === 'PyPI' ? normalizePypiName(name) : name}`;
}

export interface LoadStats {
  directory: string;
  ecosystems: string[];
  files: number;
  advisories: number;
  errors: { file: string; message: string }[];
}

export interface LoadOptions {
  /** Ecosystem families to read (`Debian`, `PyPI`…); folders of others are not opened. */
  ecosystems: Set<string>;
  /**
   * Index keys (`indexKey(ecosystem, name)`) of the packages to check: advisories that name none of them are not
   * parsed. Omitted: every advisory is parsed.
   */
  wanted?: Set<string>;
  index?: AdvisoryIndex;
  signal?: AbortSignal;
  onProgress?: (files: number) => void;
}

/** Reads the advisories of the wanted ecosystems from `dir` into an index. */
export async function loadAdvisoryDirectory(
  dir: string,
  options: LoadOptions,
): Promise<{ index: AdvisoryIndex; stats: LoadStats }> {
  const index = options.index ?? new AdvisoryIndex();
  const stats: LoadStats = { directory: dir, ecosystems: [], files: 0, advisories: 0, errors: [] };
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new Error(`advisory directory ${dir} does not exist`);
  const before = index.size;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !options.ecosystems.has(ecosystemBase(entry.name))) continue;
    stats.ecosystems.push(entry.name);
    const folder = join(dir, entry.name);
    const names = (await readdir(folder)).sort();
    const jsonFiles = names.filter((n) => n.endsWith('.json'));
    for (let i = 0; i < jsonFiles.length; i += 64) {
      options.signal?.throwIfAborted();
      const batch = jsonFiles.slice(i, i + 64);
      const bodies = await Promise.all(batch.map((n) => readFile(join(folder, n)).catch((err: Error) => err)));
      for (const [j, body] of bodies.entries()) {
        const file = join(entry.name, batch[j]!);
        stats.files++;
        if (body instanceof Error) stats.errors.push({ file, message: body.message });
        else addParsed(index, body, file, stats, entry.name, options.wanted);
      }
      options.onProgress?.(stats.files);
    }
    if (names.includes('all.zip')) {
      const file = join(entry.name, 'all.zip');
      let members: Record<string, Uint8Array>;
      try {
        members = unzipSync(await readFile(join(folder, 'all.zip')), { filter: (f) => f.name.endsWith('.json') });
      } catch (err) {
        stats.errors.push({ file, message: `not a readable zip (${(err as Error).message})` });
        continue;
      }
      for (const [name, body] of Object.entries(members)) {
        stats.files++;
        addParsed(
          index,
          Buffer.from(body.buffer, body.byteOffset, body.byteLength),
          `${file}!${name}`,
          stats,
          entry.name,
          options.wanted,
        );
      }
      options.onProgress?.(stats.files);
    }
  }
  stats.advisories = index.size - before;
  return { index, stats };
}

const NAME_FIELD = /"name"\s*:\s*"((?:[^"\\]|\\.)*)"/g;

/**
 * Parsing is most of the load time: an advisory whose text names none of the wanted packages (every `"name"` field
 * is looked at, so a false positive only costs a parse) cannot match and is skipped. JSON escapes in names are rare
 * enough that such a name is always parsed.
 */
function mayName(text: string, ecosystem: string, wanted: Set<string>): boolean {
  for (const m of text.matchAll(NAME_FIELD)) {
    const name = m[1]!;
    if (name.includes('\\') || wanted.has(indexKey(ecosystem, name))) return true;
  }
  return false;
}

function addParsed(
  index: AdvisoryIndex,
  body: Buffer,
  file: string,
  stats: LoadStats,
  ecosystem: string,
  wanted: Set<string> | undefined,
): void {
  const text = body.toString('utf8');
  if (wanted && !mayName(text, ecosystem, wanted)) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    stats.errors.push({ file, message: `not JSON (${(err as Error).message})` });
    return;
  }
  const advisory = parsed as Partial<OsvAdvisory>;
  if (typeof advisory.id !== 'string' || (advisory.affected !== undefined && !Array.isArray(advisory.affected))) {
    stats.errors.push({ file, message: 'not an OSV advisory (no "id" or a malformed "affected")' });
    return;
  }
  index.add(advisory as OsvAdvisory);
}
