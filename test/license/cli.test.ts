/** `mrel license <model-dir>`: what a CI job or pre-commit hook sees, and the exit codes it documents. */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { describe, expect } from 'vitest';
import { createLicenseCommand } from '../../client/commands/license';
import { EXIT } from '../../client/errors';
import { runCommand, type CommandRun } from '../helpers/command';
import { card, MODEL_LICENSE_TEXTS, spdxText, test, writeModel } from './fixtures';

const REPO_CONFIG = fileURLToPath(new URL('../../config', import.meta.url));

function mrelLicense(args: string[], options: { configDir?: string; json?: boolean } = {}): Promise<CommandRun> {
  return runCommand(createLicenseCommand({ configDir: options.configDir ?? REPO_CONFIG }), ['license', ...args], {
    json: options.json,
    usageErrors: 'throw',
  });
}

/** A config dir with the repository's approvers and one policy file `name` with `body`. */
async function configWith(tmp: string, name: string, body: string): Promise<string> {
  const dir = join(tmp, 'config');
  await mkdir(join(dir, 'policies'), { recursive: true });
  await cp(join(REPO_CONFIG, 'approvers.yaml'), join(dir, 'approvers.yaml'));
  await cp(join(REPO_CONFIG, 'policies', 'default.yaml'), join(dir, 'policies', 'default.yaml'));
  await writeFile(join(dir, 'policies', `${name}.yaml`), body);
  return dir;
}

const APPROVAL = 'approval:\n  timeout: 72h\n  environments:\n    dev: { minApprovers: 1, allowedRoles: [ml-lead] }\n';

describe('mrel license', () => {
  test('an MIT model: exit 0 and a readable report', async ({ tmp }) => {
    const dir = await writeModel(join(tmp, 'm'), { 'README.md': card({ license: 'mit' }), LICENSE: spdxText('MIT') });
    const run = await mrelLicense([dir]);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out.split('\n').slice(0, 6)).toEqual([
      'ALLOW  license MIT (permissive): allowed',
      'policy: config/policies/default.yaml',
      '',
      'sources:',
      '  README.md (license): license: mit → MIT',
      '  LICENSE: text matches MIT (similarity 1) → MIT',
    ]);
  });

  test('a Llama 3 model needs review: exit 0 with a note, exit 1 with --fail-on-review', async ({ tmp }) => {
    const dir = await writeModel(join(tmp, 'm'), { LICENSE: MODEL_LICENSE_TEXTS.llama3 });
    const run = await mrelLicense([dir]);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toMatch(/^REVIEW {2}license llama3 \(use-restricted\): needs review by legal/);
    expect(run.out).toContain(
      'note: needs review by legal; a release will wait for their approval (use --fail-on-review to exit 1)',
    );
    const strict = await mrelLicense([dir, '--fail-on-review']);
    expect(strict.code).toBe(EXIT.fail);
    expect(strict.out).toContain('needs review by legal: exiting 1 (--fail-on-review)');
  });

  test('a non-commercial model is denied: exit 1', async ({ tmp }) => {
    const dir = await writeModel(join(tmp, 'm'), { 'README.md': card({ license: 'cc-by-nc-4.0' }) });
    const run = await mrelLicense([dir]);
    expect(run.code).toBe(EXIT.fail);
    expect(run.out).toContain('[high] license.deny README.md (license): license CC-BY-NC-4.0 (non-commercial)');
  });

  test('a model whose card cannot be read: exit 3', async ({ tmp }) => {
    const dir = await writeModel(join(tmp, 'm'), { 'README.md': '---\nlicense: [\n---\n' });
    const run = await mrelLicense([dir]);
    expect(run.code).toBe(EXIT.undecided);
    expect(run.out).toMatch(/^UNDECIDED {2}could not decide the license/);
  });

  test('--format json (and the global --json) print the whole report with the exit code', async ({ tmp }) => {
    const dir = await writeModel(join(tmp, 'm'), {
      'README.md': card({ license: 'apache-2.0' }),
      LICENSE: spdxText('MIT'),
    });
    for (const run of [await mrelLicense([dir, '--format', 'json']), await mrelLicense([dir], { json: true })]) {
      expect(run.code).toBe(EXIT.ok);
      const report = JSON.parse(run.out);
      expect(report).toMatchObject({
        license: 'Apache-2.0 AND MIT',
        verdict: 'warn',
        exitCode: 0,
        conflicts: [{ a: { license: 'Apache-2.0' }, b: { license: 'MIT' } }],
      });
    }
  });

  test('--policy picks the license section of another policy', async ({ tmp }) => {
    const configDir = await configWith(
      tmp,
      'research',
      `${APPROVAL}license:\n  reviewRole: legal\n  categories:\n    non-commercial: review\n  licenses:\n    llama3: allow\n`,
    );
    const nc = await writeModel(join(tmp, 'nc'), { 'README.md': card({ license: 'cc-by-nc-4.0' }) });
    const run = await mrelLicense([nc, '--policy', 'research', '--fail-on-review'], { configDir });
    expect(run.code).toBe(EXIT.fail);
    expect(run.out).toContain('policy: config/policies/research.yaml');
    const llama = await writeModel(join(tmp, 'llama'), { 'README.md': card({ license: 'llama3' }) });
    expect((await mrelLicense([llama, '--policy', 'research'], { configDir })).out).toMatch(/^ALLOW /);
  });

  test('bad usage exits 2 (no such directory); a policy that does not load exits 5, naming file and field', async ({
    tmp,
  }) => {
    const missing = await mrelLicense([join(tmp, 'nope')]);
    expect(missing).toMatchObject({ code: EXIT.usage, out: '' });
    expect(missing.err).toBe(`mrel license: ${join(tmp, 'nope')} is not a directory; give the model's directory`);

    const dir = await writeModel(join(tmp, 'm'), { 'README.md': card({ license: 'mit' }) });
    const unknown = await mrelLicense([dir, '--policy', 'no-such-policy']);
    expect(unknown.code).toBe(EXIT.config);
    expect(unknown.err).toMatch(
      /^mrel license: --policy no-such-policy: config\/policies\/no-such-policy\.yaml does not load\n {2}- not found;/,
    );

    const configDir = await configWith(
      tmp,
      'broken',
      `${APPROVAL}license:\n  categories:\n    permissive: maybe\n  licenses:\n    lama3: allow\n`,
    );
    const broken = await mrelLicense([dir, '--policy', 'broken'], { configDir });
    expect(broken.code).toBe(EXIT.config);
    // The policy loader checks the license section already, so the command reports the policy as not loading.
    expect(broken.err).toMatch(
      /^mrel license: --policy broken: config\/policies\/broken\.yaml does not load\n {2}- license\.categories\.permissive:? must be allow, review or deny$/,
    );
    const typo = await configWith(
      tmp,
      'typo',
      `${APPROVAL}license:\n  reviewRole: lawyers\n  licenses:\n    lama3: allow\n`,
    );
    const badId = await mrelLicense([dir, '--policy', 'typo'], { configDir: typo });
    expect(badId.code).toBe(EXIT.config);
    const [head, idLine, roleLine] = badId.err.split('\n');
    expect(head).toBe('mrel license: --policy typo: config/policies/typo.yaml does not load');
    expect(idLine).toMatch(
      /^ {2}- license\.licenses\["lama3"\]:? is not an SPDX id, a model license id \(e\.g\. llama3\.1, gemma, openrail\) or a LicenseRef-; fix the spelling$/,
    );
    expect(roleLine).toMatch(
      /^ {2}- license\.reviewRole "lawyers" is not a known role \(known: .*\blegal\b.*\); add it under roles: in approvers\.yaml or fix the name$/,
    );
  });

  test('--policy takes a YAML file as well as a name', async ({ tmp }) => {
    const file = join(tmp, 'trial.yaml');
    await writeFile(file, `${APPROVAL}license:\n  reviewRole: legal\n  categories:\n    non-commercial: allow\n`);
    const nc = await writeModel(join(tmp, 'nc'), { 'README.md': card({ license: 'cc-by-nc-4.0' }) });
    expect((await mrelLicense([nc])).code).toBe(EXIT.fail);
    const run = await mrelLicense([nc, '--policy', file]);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toMatch(/^ALLOW /);
    expect(run.out).toContain(`policy: ${file}`);
    const absent = await mrelLicense([nc, '--policy', join(tmp, 'absent.yaml')]);
    expect(absent).toMatchObject({ code: EXIT.config, out: '' });
    expect(absent.err).toContain(`--policy ${join(tmp, 'absent.yaml')}: no such policy file`);
  });

  test('--format sarif is a usage error from commander naming the formats (mrel maps it to exit 2)', async ({
    tmp,
  }) => {
    const dir = await writeModel(join(tmp, 'm'), { 'README.md': card({ license: 'mit' }) });
    const refused = mrelLicense([dir, '--format', 'sarif']);
    await expect(refused).rejects.toBeInstanceOf(CommanderError);
    await expect(refused).rejects.toThrow(/license writes text or json; it has no findings with locations/);
  });
});
