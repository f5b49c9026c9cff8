/**
 * The layer rules in eslint.config.js hold only if ESLint really reports them: these tests plant violations and run
 * the repository's own lint configuration on just those files. Each planted import is checked against the rule that
 * must report it, and a clean control in the same place must pass, so a rule that reports everything fails too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

/**
 * Rule ids and messages of the errors ESLint reports for `code` as if it were the file at `file` (relative to the
 * repository root). An existing file, so the typed parser knows it; only its text is replaced, never written.
 */
async function errorsFor(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  if (!result) throw new Error(`ESLint returned no result for ${file}`);
  return result.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

/** A module whose only import is `line`, with the imported name used as a value. */
function importing(line: string): string {
  const name = line.match(/{ (\w+) }|\* as (\w+)/);
  return `${line}\nexport const used = [${name?.[1] ?? name?.[2]}];\n`;
}

const LAYER = /^import-x\/no-restricted-paths: Unexpected path/;

describe('workflow code', () => {
  const workflowFile = 'workflows/index.ts';

  it.each([
    ['the activities barrel', `import { createReleaseActivities } from '../activities';`],
    ['the activities barrel index', `import { createReleaseActivities } from '../activities/index';`],
    ['an activity module', `import { scanTargets } from '../activities/scan';`],
    ['a Node builtin', `import { readFile } from 'node:fs/promises';`],
    ['an infrastructure library', `import { parse } from 'yaml';`],
  ])('refuses a value import of %s', async (_what, line) => {
    expect(await errorsFor(importing(line), workflowFile)).toContainEqual(
      expect.stringMatching(/^no-restricted-imports: .*deterministic/),
    );
  });

  it.each([
    ['the config loader', `import { loadPolicy } from '../config/loader';`],
    ['the client', `import { startRelease } from '../client/release-client';`],
    ['the scripts', `import { PROJECT_ROOT } from '../scripts/temporal-cli';`],
  ])('refuses any import of %s', async (_what, line) => {
    expect(await errorsFor(importing(line), workflowFile)).toContainEqual(expect.stringMatching(LAYER));
  });

  it('allows a type-only import of the activities barrel and a value import of the contract', async () => {
    const code = `import type { ReleaseActivities } from '../activities';\nimport { RELEASE_TASK_QUEUE } from '../contract/definitions';\nexport type Used = ReleaseActivities;\nexport const queue = RELEASE_TASK_QUEUE;\n`;
    expect(await errorsFor(code, workflowFile)).toEqual([]);
  });
});

describe('config', () => {
  const configFile = 'config/schema.ts';

  it.each([
    ['a value', `import { GATE_POLICY_SECTIONS } from '../activities/gate-policies';`],
    ['a type', `import type { CostPolicy } from '../activities/cost/policy';`],
  ])('refuses %s import of activities: gate validators are passed in, not imported', async (_what, line) => {
    const code = line.startsWith('import type') ? `${line}\nexport type Used = CostPolicy;\n` : importing(line);
    expect(await errorsFor(code, configFile)).toEqual([expect.stringMatching(LAYER)]);
  });

  it('allows the contract and libraries', async () => {
    const code = `import { z } from 'zod';\nimport { zodProblems } from '../contract/problems';\nexport const used = [z, zodProblems];\n`;
    expect(await errorsFor(code, configFile)).toEqual([]);
  });
});

describe('domain code under activities/', () => {
  const domainFile = 'activities/cost/traffic.ts';

  it.each([
    ['@temporalio/activity', `import { Context } from '@temporalio/activity';`],
    ['@temporalio/common', `import { ApplicationFailure } from '@temporalio/common';`],
  ])('refuses %s', async (_what, line) => {
    expect(await errorsFor(importing(line), domainFile)).toEqual([
      expect.stringMatching(/^no-restricted-imports: .*imports nothing of Temporal/),
    ]);
  });

  it('lets a Temporal adapter import Temporal', async () => {
    expect(
      await errorsFor(
        importing(`import { ApplicationFailure } from '@temporalio/common';`),
        'activities/cost/index.ts',
      ),
    ).toEqual([]);
  });

  it('refuses a value import of workflow code', async () => {
    expect(
      await errorsFor(importing(`import { modelReleaseWorkflow } from '../../workflows';`), domainFile),
    ).toContainEqual(expect.stringMatching(/^no-restricted-imports: .*Activities never run workflow code/));
  });

  it('allows the contract and the config loader', async () => {
    const code = `import { durationMs } from '../../contract/duration';\nimport { DEFAULT_CONFIG_DIR } from '../../config/loader';\nexport const used = [durationMs, DEFAULT_CONFIG_DIR];\n`;
    expect(await errorsFor(code, domainFile)).toEqual([]);
  });
});

describe('scripts/ and test/', () => {
  it.each([
    ['client/release-client.ts', '../scripts/temporal-cli'],
    ['workers/settings.ts', '../scripts/temporal-cli'],
    ['activities/cost/traffic.ts', '../../scripts/temporal-cli'],
    ['config/schema.ts', '../scripts/temporal-cli'],
    ['contract/location.ts', '../scripts/temporal-cli'],
  ])('product code (%s) never imports scripts/', async (file, path) => {
    expect(await errorsFor(importing(`import { PROJECT_ROOT } from '${path}';`), file)).toContainEqual(
      expect.stringMatching(LAYER),
    );
  });

  it('a benchmark never imports test/', async () => {
    expect(
      await errorsFor(importing(`import { cachedDir } from '../test/helpers/cached-dir';`), 'bench/cost.ts'),
    ).toEqual([expect.stringMatching(LAYER)]);
  });

  it('a benchmark may import product code and scripts/', async () => {
    const code = `import { PROJECT_ROOT } from '../scripts/temporal-cli';\nimport { loadPricing } from '../config/pricing';\nexport const used = [PROJECT_ROOT, loadPricing];\n`;
    expect(await errorsFor(code, 'bench/cost.ts')).toEqual([]);
  });
});

describe('workers', () => {
  it('refuses the client beyond its connection module', async () => {
    expect(
      await errorsFor(importing(`import { startRelease } from '../client/release-client';`), 'workers/settings.ts'),
    ).toEqual([expect.stringMatching(/^import-x\/no-restricted-paths: .*only client\/connection/)]);
  });

  it('allows the connection and the payload codec they share with the client', async () => {
    const code = `import { loadCodecKeys } from '../client/connection/payload-codec';\nimport { loadTemporalConnectionConfig } from '../client/connection/temporal-connection';\nexport const used = [loadCodecKeys, loadTemporalConnectionConfig];\n`;
    expect(await errorsFor(code, 'workers/settings.ts')).toEqual([]);
  });
});

describe('contract', () => {
  it('refuses packages other than zod and Temporal definitions', async () => {
    expect(await errorsFor(importing(`import { parse } from 'yaml';`), 'contract/location.ts')).toEqual([
      expect.stringMatching(/^no-restricted-imports: .*contract\/ may import only zod/),
    ]);
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
