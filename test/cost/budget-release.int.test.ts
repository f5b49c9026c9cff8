/**
 * The budget gate's three outcomes through the whole release: under the soft limit the release waits for the usual
 * approvals; between soft and hard it also needs finops; over the hard limit it fails before approval.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { decide, getRelease, startRelease } from '../../client/release-client';
import type { ReleaseStatus } from '../../contract/types';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

let env: ReleaseEnv;
let configDir: string;

beforeAll(async () => {
  env = await createReleaseEnv('budget');
  configDir = join(env.dir, 'config');
  await cp(FIXTURE_CONFIG_DIR, configDir, { recursive: true });
  const policyFile = join(configDir, 'policies', 'default.yaml');
  const policy = parse(await readFile(policyFile, 'utf8')) as { cost: Record<string, unknown> };
  policy.cost.budgets = {
    teams: {
      roomy: { soft: 1_000_000, hard: 2_000_000 },
      tight: { soft: 1, hard: 1_000_000 },
      broke: { soft: 1, hard: 2 },
    },
  };
  await writeFile(policyFile, stringify(policy));
  env.settings.configDir = configDir;
  await env.startWorker();
});
afterAll(async () => env?.close());

async function release(team: string) {
  const request = await env.model(`budget-${team}`, '1.0.0', { environment: 'staging', team });
  const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue, configDir });
  return releaseId;
}

describe('budget gate through the workflow', () => {
  it('under the soft limit: pass, the usual approval releases it', async () => {
    const id = await release('roomy');
    const waiting = await eventually(
      () => getRelease(env.client, id),
      (s) => s.stage === 'approval',
    );
    expect(waiting.gates.find((g) => g.gate === 'cost')).toMatchObject({ verdict: 'pass' });
    expect(waiting.awaiting?.missingRoles).toEqual([]);
    await decide(env.client, id, { approver: 'amara', decision: 'approve' });
    expect(((await env.client.workflow.getHandle(id).result()) as ReleaseStatus).stage).toBe('released');
  });

  it('between soft and hard: warn, and finops must approve as well', async () => {
    const id = await release('tight');
    const waiting = await eventually(
      () => getRelease(env.client, id),
      (s) => s.stage === 'approval',
    );
    const cost = waiting.gates.find((g) => g.gate === 'cost');
    expect(cost?.verdict).toBe('warn');
    expect(cost?.summary).toMatch(/soft limit/);
    expect(waiting.awaiting?.missingRoles).toEqual([expect.objectContaining({ role: 'finops', count: 1 })]);
    expect(waiting.awaiting?.from).toEqual(['fabian']);
    const afterAmara = await decide(env.client, id, { approver: 'amara', decision: 'approve' });
    expect(afterAmara.status.awaiting?.approvalsMissing).toBe(1);
    await decide(env.client, id, { approver: 'fabian', decision: 'approve', comment: 'within the quarter plan' });
    const done = (await env.client.workflow.getHandle(id).result()) as ReleaseStatus;
    expect(done.stage).toBe('released');
    expect(done.approvals.map((a) => a.approver)).toEqual(['amara', 'fabian']);
  });

  it('over the hard limit: fail before approval, with the budget named', async () => {
    const id = await release('broke');
    await env.client.workflow
      .getHandle(id)
      .result()
      .catch(() => undefined);
    const status = await getRelease(env.client, id);
    expect(status.stage).toBe('failed');
    expect(status.reason).toMatch(/^cost fail: .*hard limit/);
    expect(status.approvals).toEqual([]);
  });
});
