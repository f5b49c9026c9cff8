/**
 * The layers' one-way rule: product code (what the workers, the client and the image run) never imports scripts/
 * or test/, and benchmarks never import test/. Checked on the import specifiers of every file, resolved against it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../workers/paths';

const PRODUCT = ['activities', 'client', 'config', 'contract', 'serving', 'workers', 'workflows'];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(PROJECT_ROOT, dir), { withFileTypes: true }).catch(() => []);
  const nested = await Promise.all(
    entries.map((e) =>
      e.isDirectory()
        ? sourceFiles(join(dir, e.name))
        : Promise.resolve(/\.(?:[cm]?ts|[cm]?js)$/.test(e.name) ? [join(dir, e.name)] : []),
    ),
  );
  return nested.flat();
}

/** `file: specifier` for every relative import (static, dynamic, re-export) that lands in one of `banned`. */
async function importsInto(dirs: string[], banned: string[]): Promise<string[]> {
  const found: string[] = [];
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const file of (await Promise.all(dirs.map(sourceFiles))).flat()) {
    const text = await readFile(join(PROJECT_ROOT, file), 'utf8');
    for (const match of text.matchAll(specifier)) {
      const target = relative(PROJECT_ROOT, resolve(PROJECT_ROOT, dirname(file), match[1]!));
      if (banned.some((b) => target === b || target.startsWith(`${b}/`))) found.push(`${file}: ${match[1]}`);
    }
  }
  return found;
}

describe('imports between layers', () => {
  it('product code imports nothing from scripts/ or test/', async () => {
    expect(await importsInto(PRODUCT, ['scripts', 'test'])).toEqual([]);
  });

  it('benchmarks import nothing from test/', async () => {
    expect(await importsInto(['bench'], ['test'])).toEqual([]);
  });

  it('sees an import into scripts/ where there is one (the check is not blind)', async () => {
    expect(await importsInto(['bench'], ['scripts'])).toContainEqual(
      expect.stringMatching(/^bench\/scan-image\.ts: \.\.\/scripts\/docker-test-env$/),
    );
  });
});
