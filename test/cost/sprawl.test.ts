/**
 * The sprawl report and the `mrel cost` commands over a GitOps repository written by the gitops stage's own renderer,
 * committed to a real bare repository.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { simpleGit } from 'simple-git';
import { describe, expect } from 'vitest';
import { parse, stringify } from 'yaml';
import { renderRelease } from '../../activities/gitops/render';
import { sprawlReport, type SprawlReport } from '../../activities/cost/sprawl';
import { register } from '../../client/commands/cost';
import { EXIT } from '../../client/errors';
import { runCommand, type CommandRun } from '../helpers/command';
import { DEFAULT_CONFIG_DIR } from '../../config/loader';
import type { GateResult, GitOpsReleaseInput } from '../../contract/types';
import { earlierGate, referenceWeights, test } from './fixtures';

function costGate(replicas: number, instanceType = 'g5.xlarge'): GateResult {
  return {
    ...earlierGate('cost', 'pass', {
      instanceType,
      replicas,
      capacityPerReplicaRps: 50,
      headroom: 0.25,
      monthlyCompute: 734.38 * replicas,
      monthlyStorage: 1,
      monthlyRiskPremium: 100,
      monthlyTco: 734.38 * replicas + 101,
      peakRps: 40 * replicas,
    }),
    deployment: {
      replicas,
      nodeSelector: { 'node.kubernetes.io/instance-type': instanceType },
      labels: { 'modelrelease.io/instance-type': instanceType },
    },
  };
}

function release(model: string, version: string, environment: string, gates: GateResult[]): GitOpsReleaseInput {
  return {
    releaseId: `release/${model}/${version}/${environment}`,
    runId: 'run-1',
    request: {
      model: { name: model, version, source: `hf://acme/${model}@main` },
      environment,
      policy: 'default',
      team: 'nlp',
      costCenter: 'cc-1234',
      requestedBy: 'ci',
    },
    manifest: {
      model,
      version,
      source: `hf://acme/${model}@main`,
      resolvedRevision: 'abc',
      files: [{ path: 'model.safetensors', size: 10, sha256: 'a'.repeat(64) }],
      totalSize: 10,
      manifestDigest: 'b'.repeat(64),
    },
    gates,
    approvals: [],
    policy: { name: 'default', digest: 'c'.repeat(64) },
  };
}

async function writeRelease(root: string, input: GitOpsReleaseInput): Promise<void> {
  for (const [path, content] of renderRelease(input)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/**
 * sentiment: 1.0.0 then 1.1.0 in production (1.0.0 superseded), 1.1.0 in staging; someone scaled production to 7
 * replicas by hand and left a canary overlay of 1.0.0 in the production namespace. ranker: released before the cost
 * gate existed, no estimate.
 */
async function gitopsTree(root: string): Promise<void> {
  await writeRelease(root, release('sentiment', '1.0.0', 'production', [costGate(2)]));
  await writeRelease(root, release('sentiment', '1.1.0', 'production', [costGate(2)]));
  await writeRelease(root, release('sentiment', '1.1.0', 'staging', [costGate(1, 'g6.xlarge')]));
  await writeRelease(root, release('ranker', '3.0.0', 'production', [earlierGate('scan', 'pass')]));
  const patchFile = join(root, 'apps/sentiment/overlays/production/deployment-patch.yaml');
  const patch = parse(await readFile(patchFile, 'utf8')) as { spec: { replicas: number } };
  patch.spec.replicas = 7;
  await writeFile(patchFile, stringify(patch));
  const canary = join(root, 'apps/sentiment/overlays/production-canary');
  await mkdir(canary, { recursive: true });
  const old = renderRelease(release('sentiment', '1.0.0', 'production', [costGate(1)]));
  await writeFile(
    join(canary, 'deployment-patch.yaml'),
    old.get('apps/sentiment/overlays/production/deployment-patch.yaml') as string,
  );
  await writeFile(
    join(canary, 'kustomization.yaml'),
    stringify({ namespace: 'production', resources: ['../../base'] }),
  );
}

const hourly = (model: string, environment: string, rate: (h: number) => number): string[] =>
  Array.from(
    { length: 24 * 21 },
    (_, h) =>
      `${new Date(Date.UTC(2025, 0, 6) + h * 3600_000).toISOString()},${model},${environment},${rate(h).toFixed(3)}`,
  );

describe('sprawlReport', () => {
  test('lists every version per environment with its estimate, and flags sprawl', async ({ tmp }) => {
    await gitopsTree(tmp);
    const report = await sprawlReport(tmp, tmp);
    const rows = report.versions.map((v) => [v.model, v.environment, v.version, v.state, v.replicas, v.instanceType]);
    expect(rows).toEqual([
      ['ranker', 'production', '3.0.0', 'live', 1, undefined],
      ['sentiment', 'production', '1.0.0', 'live', 1, 'g5.xlarge'],
      ['sentiment', 'production', '1.1.0', 'live', 7, 'g5.xlarge'],
      ['sentiment', 'staging', '1.1.0', 'live', 1, 'g6.xlarge'],
    ]);
    // 1.1.0 was sized for 2 replicas at $734.38 each; 7 deployed cost 5 more.
    const prod = report.versions.find((v) => v.version === '1.1.0' && v.environment === 'production');
    expect(prod?.monthlyDeployed).toBeCloseTo(734.38 * 2 + 101 + 5 * 734.38, 6);
    expect(report.flags.map((f) => [f.kind, f.model, f.environment, f.versions])).toEqual([
      ['multiple-live-versions', 'sentiment', 'production', ['1.0.0', '1.1.0']],
      ['no-estimate', 'ranker', 'production', ['3.0.0']],
      ['overprovisioned', 'sentiment', 'production', ['1.1.0']],
    ]);
    expect(report.flags[2]?.message).toBe('sentiment@1.1.0 in production runs 7 replicas; the cost gate sized 2');
    expect(report.flags[2]?.monthlySavings).toBeCloseTo(5 * 734.38, 6);
    expect(report.totals).toMatchObject({ liveVersions: 4, supersededVersions: 0 });
  });

  test('finds idle endpoints and forecast need from a utilization history', async ({ tmp }) => {
    await gitopsTree(tmp);
    const csv = [
      'timestamp,model,environment,requests_per_second',
      ...hourly('sentiment', 'staging', () => 0),
      // Peaks at 60 req/s: ⌈60 × 1.25 / 50⌉ = 2 replicas needed, 7 deployed.
      ...hourly('sentiment', 'production', (h) => 40 + 20 * Math.sin((2 * Math.PI * h) / 24)),
    ].join('\n');
    const { parseHistoryCsv } = await import('../../activities/cost/history');
    const report = await sprawlReport(tmp, tmp, {
      utilization: { source: 'csv', series: parseHistoryCsv(csv, 'u.csv') },
    });
    expect(report.utilization).toEqual({ source: 'csv', series: 2, matched: 3 });
    const staging = report.versions.find((v) => v.environment === 'staging');
    expect(staging?.utilization?.meanRps).toBe(0);
    expect(report.flags.find((f) => f.kind === 'idle')).toMatchObject({ model: 'sentiment', environment: 'staging' });
    const prod = report.versions.find((v) => v.version === '1.1.0' && v.environment === 'production');
    expect(prod?.utilization?.neededReplicas).toBe(2);
    expect(report.flags.find((f) => f.kind === 'overprovisioned')?.message).toBe(
      'sentiment@1.1.0 in production runs 7 replicas; its forecast traffic needs 2',
    );
  });
});

function mrel(...args: string[]): Promise<CommandRun> {
  return runCommand(register, args);
}

describe('mrel cost report', () => {
  test('reads a bare GitOps repository, prints the table and the sprawl, exits 1 with --fail-on-sprawl', async ({
    tmp,
  }) => {
    const work = join(tmp, 'work');
    await mkdir(work);
    await gitopsTree(work);
    const git = simpleGit({
      baseDir: work,
      config: ['user.name=T', 'user.email=t@example.invalid', 'commit.gpgsign=false'],
    });
    await git.raw(['init', '-q', '--initial-branch=main']);
    await git.raw(['add', '.']);
    await git.raw(['commit', '-q', '-m', 'releases']);
    const bare = join(tmp, 'gitops.git');
    await simpleGit({ baseDir: tmp }).raw(['clone', '-q', '--bare', work, bare]);

    const text = await mrel('cost', 'report', '--gitops', bare);
    expect(text.code).toBe(EXIT.ok);
    expect(text.out).toMatch(/^model\s+environment\s+version\s+state\s+replicas\s+instance type\s+monthly/);
    expect(text.out).toMatch(/sentiment\s+production\s+1\.1\.0\s+live\s+7\s+g5\.xlarge\s+\$5,241\.66/);
    expect(text.out).toContain('[multiple-live-versions] 2 versions of sentiment are live in production');
    expect(text.out).toContain(
      '[overprovisioned] sentiment@1.1.0 in production runs 7 replicas; the cost gate sized 2 — $3,671.90/month',
    );

    const json = await mrel('cost', 'report', '--gitops', bare, '--format', 'json', '--fail-on-sprawl');
    expect(json.code).toBe(EXIT.fail);
    const report = JSON.parse(json.out) as SprawlReport;
    expect(report.flags).toHaveLength(3);
  });

  test('exits 2 naming the problem for a missing repository or a bad utilization file', async ({ tmp }) => {
    const missing = await mrel('cost', 'report', '--gitops', join(tmp, 'nowhere'));
    expect(missing.code).toBe(EXIT.usage);
    expect(missing.err).toMatch(/cannot read the GitOps repository .*nowhere/);
    await gitopsTree(tmp);
    await writeFile(join(tmp, 'u.csv'), 'when,who\n1,2\n');
    const bad = await mrel('cost', 'report', '--gitops', tmp, '--utilization', join(tmp, 'u.csv'));
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toMatch(/u\.csv: the header needs a timestamp column/);
  });

  test('exits 4 when Prometheus cannot be reached', async ({ tmp }) => {
    await gitopsTree(tmp);
    const r = await mrel('cost', 'report', '--gitops', tmp, '--prometheus', 'http://127.0.0.1:9', '--query', 'up');
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.err).toMatch(/Prometheus at http:\/\/127\.0\.0\.1:9 cannot be reached/);
  });
});

describe('mrel cost estimate', () => {
  test('estimates a model directory with a traffic file and measured throughput', async ({ tmp }) => {
    await referenceWeights('safetensors', join(tmp, 'model.safetensors'));
    await writeFile(
      join(tmp, 'request.yaml'),
      stringify({
        team: 'nlp',
        traffic: { averageRequestsPerSecond: 20, peakRequestsPerSecond: 60, latencySloMs: 200 },
      }),
    );
    const r = await mrel(
      'cost',
      'estimate',
      tmp,
      '--traffic',
      join(tmp, 'request.yaml'),
      '--throughput',
      '400',
      '--backend',
      'tensorflow',
      '--gate',
      'scan=pass',
      'fairness=warn',
    );
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/^pass: \S+ × \d+ \(on-demand, (aws|gcp) [a-z0-9-]+\): \$[\d,.]+\/month compute/);
    expect(r.out).toContain('model: 66,083 parameters');
    expect(r.out).toContain('throughput: measured by evaluate: 400 rows/s on backend tensorflow');
    expect(r.out).toMatch(
      /sensitivity:\ntraffic\s+peak req\/s\s+instance type\s+replicas\s+monthly\s+per 1k req\n×0\.5\s+30\.00/,
    );
    expect(r.out).toMatch(
      /risk premium \(incident cost \$25,000\.00 × exposure 1\): scan pass \$25\.00, license missing/,
    );
    expect(r.out).toContain(`prices: ${join(DEFAULT_CONFIG_DIR, 'pricing.yaml')} taken 2024-11-15`);
  });

  test('exits 3 (undecided) when the estimate cannot be made', async ({ tmp }) => {
    await writeFile(join(tmp, 'weights.bin'), Buffer.alloc(100));
    const r = await mrel('cost', 'estimate', tmp, '--format', 'json');
    expect(r.code).toBe(EXIT.undecided);
    const { result } = JSON.parse(r.out) as { result: GateResult };
    expect(result.verdict).toBe('error');
  });
});
