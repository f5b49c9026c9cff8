/**
 * The layer rules in eslint.config.js hold only if ESLint really reports them: these tests plant violations and run
 * the repository's own lint configuration on just those files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

/** Rule ids of the errors ESLint reports for `code` as if it were the file at `filePath`. */
async function errorsFor(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  if (!result) throw new Error(`ESLint returned no result for ${filePath}`);
  return result.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

describe('workflow import ban', () => {
  // An existing workflow file, so the typed parser knows it; only its text is replaced.
  const workflowFile = join(root, 'workflows/limits.ts');

  it.each([
    ['the activities barrel', `import { createReleaseActivities } from '../activities';`],
    ['the activities barrel index', `import { createReleaseActivities } from '../activities/index';`],
    ['an activity module', `import { scanTargets } from '../activities/scan';`],
    ['the config loader', `import { loadPolicy } from '../config/loader';`],
  ])('refuses a value import of %s', async (_what, line) => {
    const errors = await errorsFor(`${line}\nexport const used = [${line.match(/{ (\w+) }/)?.[1]}];\n`, workflowFile);
    // The planted import may also close a real cycle through workflows/types; the ban is what must be reported.
    expect(errors).toContainEqual(expect.stringMatching(/^no-restricted-imports: .*deterministic/));
  });

  it('allows a type-only import of the activities barrel', async () => {
    const code = `import type { ReleaseActivities } from '../activities';\nexport type Used = ReleaseActivities;\n`;
    expect(await errorsFor(code, workflowFile)).toEqual([]);
  });
});

describe('import cycles', () => {
  let dir: string;

  beforeAll(async () => {
    // Inside the repository, so the TypeScript resolver and tsconfig cover the planted files (no leading dot:
    // tsconfig's include skips dot folders).
    dir = await mkdtemp(join(root, 'test/lint/planted-'));
    await writeFile(join(dir, 'value-a.ts'), `import { b } from './value-b';\nexport const a = (): number => b + 1;\n`);
    await writeFile(
      join(dir, 'value-b.ts'),
      `import { a } from './value-a';\nexport const b = 1;\nexport const c = a;\n`,
    );
    await writeFile(join(dir, 'type-a.ts'), `import type { B } from './type-b';\nexport interface A { b?: B }\n`);
    await writeFile(join(dir, 'type-b.ts'), `import type { A } from './type-a';\nexport interface B { a?: A }\n`);
    await writeFile(join(dir, 'one-way-a.ts'), `import { d } from './one-way-b';\nexport const e = d + 1;\n`);
    await writeFile(join(dir, 'one-way-b.ts'), `export const d = 1;\n`);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function lintPlanted(name: string): Promise<string[]> {
    const [result] = await eslint.lintFiles([join(dir, name)]);
    if (!result) throw new Error(`ESLint returned no result for ${name}`);
    return result.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
  }

  it('reports a two-file value cycle on both files', async () => {
    expect(await lintPlanted('value-a.ts')).toEqual([expect.stringMatching(/^import-x\/no-cycle: Dependency cycle/)]);
    expect(await lintPlanted('value-b.ts')).toEqual([expect.stringMatching(/^import-x\/no-cycle: Dependency cycle/)]);
  });

  it('lets type-only imports go both ways and a one-way value import pass', async () => {
    expect(await lintPlanted('type-a.ts')).toEqual([]);
    expect(await lintPlanted('one-way-a.ts')).toEqual([]);
  });
});
