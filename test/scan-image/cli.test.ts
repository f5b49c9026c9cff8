/** `mrel scan-image` against the real dockerd and registry: outputs and documented exit codes. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { beforeAll, describe, expect } from 'vitest';
import { createScanImageCommand } from '../../client/commands/scan-image';
import { EXIT } from '../../client/errors';
import { runCommand, type CommandRun } from '../helpers/command';
import { freePort } from '../../scripts/docker-test-env';
import { dockerTest as test } from './docker-env';
import {
  DEBIAN_OPENSSL,
  FIXED,
  GHSA_LODASH,
  GHSA_PILLOW,
  GHSA_REQUESTS,
  GOOD_CONFIG,
  runtimeFiles,
  VULNERABLE,
  writeAdvisoryDir,
} from './fixtures';
import { buildAndPush } from './images';

let advisories: string;
beforeAll(async () => {
  advisories = await writeAdvisoryDir([DEBIAN_OPENSSL, GHSA_PILLOW, GHSA_LODASH, GHSA_REQUESTS]);
});

function mrel(...args: string[]): Promise<CommandRun> {
  return runCommand(createScanImageCommand(), ['scan-image', ...args], { usageErrors: 'throw' });
}

describe('mrel scan-image', () => {
  test('exit 0 and a text summary for a clean image; 1 with SARIF and CycloneDX for a vulnerable one', async ({
    docker,
  }) => {
    const clean = `${docker.registry}/cli/server:clean`;
    const vulnerable = `${docker.registry}/cli/server:vulnerable`;
    await buildAndPush(docker.docker, { tag: clean, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const digest = await buildAndPush(docker.docker, {
      tag: vulnerable,
      files: runtimeFiles(VULNERABLE),
      instructions: GOOD_CONFIG,
    });

    const ok = await mrel(clean, '--advisories', advisories);
    expect(ok.code).toBe(EXIT.ok);
    expect(ok.out).toMatch(/^PASS: 127\.0\.0\.1:\d+\/cli\/server@sha256:[0-9a-f]{64}: 5 packages, 0 vulnerabilities/);

    const sarif = await mrel(vulnerable, '--advisories', advisories, '--format', 'sarif');
    expect(sarif.code).toBe(EXIT.fail);
    const log = JSON.parse(sarif.out);
    expect(log.version).toBe('2.1.0');
    expect(log.runs[0].results.map((r: { ruleId: string }) => r.ruleId)).toEqual([
      'CVE-2021-23337',
      'CVE-2023-4863',
      'CVE-2023-5363',
      'CVE-2023-5363',
    ]);
    const rules = log.runs[0].tool.driver.rules as { id: string; helpUri?: string }[];
    expect(rules.map((r) => r.id).sort()).toEqual(['CVE-2021-23337', 'CVE-2023-4863', 'CVE-2023-5363']);
    for (const result of log.runs[0].results as { ruleId: string; ruleIndex: number; level: string }[]) {
      expect(rules[result.ruleIndex]!.id).toBe(result.ruleId);
      expect(['error', 'warning', 'note']).toContain(result.level);
    }

    const bom = JSON.parse((await mrel(vulnerable, '--advisories', advisories, '--format', 'cyclonedx')).out);
    expect(bom.specVersion).toBe('1.6');
    expect(bom.metadata.component.version).toBe(digest);
    expect(bom.vulnerabilities).toHaveLength(4);

    const lenient = await mrel(vulnerable, '--advisories', advisories, '--fail-on', 'critical', '--format', 'json');
    expect(lenient.code).toBe(EXIT.ok);
    expect(JSON.parse(lenient.out)).toMatchObject({ verdict: 'warn', metrics: { imageDigest: digest } });
  });

  test('lock files given with --lock are scanned with the image', async ({ docker }) => {
    const tag = `${docker.registry}/cli/server:locks`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const dir = await mkdtemp(join(tmpdir(), 'mrel-locks-'));
    const requirements = join(dir, 'requirements.txt');
    await writeFile(requirements, 'requests==2.30.0\n');
    const result = await mrel(tag, '--advisories', advisories, '--lock', requirements, '--fail-on', 'medium');
    expect(result.code).toBe(EXIT.fail);
    expect(result.out).toContain(`CVE-2023-32681         model:${requirements}#requests@2.30.0`);
  });

  test('exit 6 for an unknown tag, 4 for an unreachable registry, 2 for bad usage, 3 when undecided', async ({
    docker,
  }) => {
    const missing = await mrel(`${docker.registry}/cli/none:1`, '--advisories', advisories);
    expect(missing).toMatchObject({ code: EXIT.notFound, err: expect.stringContaining('was not found') });

    const down = await mrel(`127.0.0.1:${await freePort()}/cli/server:1`, '--advisories', advisories);
    expect(down).toMatchObject({
      code: EXIT.unavailable,
      err: expect.stringContaining('cannot be reached'),
    });

    const badRef = await mrel('Not A Ref', '--advisories', advisories);
    expect(badRef).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('is not valid') });
    await expect(mrel('x', '--fail-on', 'severe')).rejects.toBeInstanceOf(CommanderError);

    const tag = `${docker.registry}/cli/server:no-advisories`;
    await buildAndPush(docker.docker, { tag, files: runtimeFiles(FIXED), instructions: GOOD_CONFIG });
    const undecided = await mrel(tag, '--advisories', join(advisories, 'missing'));
    expect(undecided.code).toBe(EXIT.undecided);
    expect(undecided.out).toMatch(/^ERROR: .*scan incomplete \(advisories-unavailable\)/);
  });
});
