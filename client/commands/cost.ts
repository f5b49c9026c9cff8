/**
 * `mrel cost`: the FinOps commands.
 *
 *   mrel cost report --gitops <repo> [--utilization <csv> | --prometheus <url> --query <q>] [--format text|json]
 *   mrel cost estimate <model-dir> [--traffic <yaml>] [--throughput <n> --backend <b>] [--format text|json]
 *
 * Exit codes: 0 done (estimate: pass or warn) · 1 report: sprawl found and --fail-on-sprawl; estimate: the gate
 * would fail (no instance type fits, over a hard budget) · 2 bad usage, unreadable input or config, or the estimate
 * could not be made · 4 Prometheus (or the Git remote) cannot be reached.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { Option, type Command } from 'commander';
import { parse } from 'yaml';
import { ConfigError, loadApprovers, loadPolicy, DEFAULT_CONFIG_DIR } from '../../config/loader';
import { loadPricing, DEFAULT_PRICING_FILE, type PricingCatalog } from '../../config/pricing';
import { parseCostPolicy, type CostPolicy } from '../../config/policy-cost';
import { usd, usdFine } from '../../activities/cost/budget';
import { CostError, SourceUnavailableError } from '../../activities/cost/errors';
import { estimateReleaseCost, type CostEvidence } from '../../activities/cost/estimate';
import { parseHistoryCsv, prometheusRange } from '../../activities/cost/history';
import { openGitOpsRepo, sprawlReport, type SprawlReport } from '../../activities/cost/sprawl';
import { parseDuration } from '../../activities/cost/traffic';
import type { ArtifactFile, GateInput, GateResult, ReleaseRequest, Verdict } from '../../contract/types';
import type { CommandContext, Io } from './context';
import type { RegisterCommands } from './index';

export const COST_EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 4 } as const;

interface CommonOptions {
  format?: 'text' | 'json';
  pricing?: string;
  policy?: string;
  configDir?: string;
}

interface ReportOptions extends CommonOptions {
  gitops: string;
  branch: string;
  utilization?: string;
  prometheus?: string;
  query?: string;
  since: string;
  step: string;
  failOnSprawl?: boolean;
}

interface EstimateOptions extends CommonOptions {
  traffic?: string;
  environment: string;
  team?: string;
  costCenter?: string;
  throughput?: string;
  backend?: string;
  gate?: string[];
}

export const register: RegisterCommands = (program, ctx) => {
  const cost = program.command('cost').description('FinOps: cost estimates, budgets and model sprawl');
  const common = (cmd: Command): Command =>
    cmd
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
      .addOption(new Option('--pricing <file>', 'pricing catalog').env('MREL_PRICING_FILE'))
      .option('--policy <name>', 'policy in config/policies whose cost: section applies', 'default')
      .addOption(new Option('--config-dir <dir>', 'config directory').env('MREL_CONFIG_DIR'));

  common(
    cost
      .command('report')
      .description('list every model version a GitOps repository deploys, its cost, and sprawl')
      .requiredOption('--gitops <repo>', 'GitOps repository: a work tree, a bare repository or a Git URL')
      .option('--branch <branch>', 'branch of a cloned repository', 'main')
      .option('--utilization <csv>', 'CSV of timestamp,model,environment,requests_per_second (or requests)')
      .option('--prometheus <url>', 'Prometheus base URL for utilization')
      .option('--query <promql>', 'range query yielding requests/s per series labelled model and environment/namespace')
      .option('--since <duration>', 'utilization window ending now (Prometheus)', '7d')
      .option('--step <duration>', 'utilization step (Prometheus)', '1h')
      .option('--fail-on-sprawl', 'exit 1 when sprawl is found'),
  ).action(async (opts: ReportOptions) => run(ctx, () => report(ctx, opts)));

  common(
    cost
      .command('estimate')
      .description('estimate what serving a model directory costs, as the cost gate would')
      .argument('<model-dir>', 'directory with the model files (safetensors, GGUF or tfjs model.json)')
      .option('--traffic <yaml>', 'a traffic profile, or a release request file with traffic:, team:, costCenter:')
      .option('--environment <env>', 'target environment (risk premium exposure)', 'production')
      .option('--team <team>', 'team (budget)')
      .option('--cost-center <cc>', 'cost center (budget)')
      .option('--throughput <n>', 'measured throughput (rows/s, or tokens/s for a tokensPerRequest profile)')
      .option('--backend <name>', 'backend the throughput was measured on (see pricing.yaml backends)')
      .option('--gate <name=verdict...>', 'earlier gate verdicts for the risk premium, e.g. scan=pass fairness=warn'),
  ).action(async (dir: string, opts: EstimateOptions) => run(ctx, () => estimate(ctx, dir, opts)));
};

async function run(ctx: CommandContext, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (err instanceof SourceUnavailableError) {
      ctx.io.err(`error: ${err.message}`);
      ctx.setExit(COST_EXIT.unavailable);
    } else if (err instanceof CostError) {
      for (const p of err.problems) ctx.io.err(`error: ${p}`);
      ctx.setExit(COST_EXIT.usage);
    } else if (err instanceof ConfigError) {
      ctx.io.err(err.message);
      ctx.setExit(COST_EXIT.usage);
    } else if (err instanceof UsageError) {
      ctx.io.err(`error: ${err.message}`);
      ctx.setExit(COST_EXIT.usage);
    } else {
      throw err;
    }
  }
}

class UsageError extends Error {}

function wantsJson(ctx: CommandContext, opts: CommonOptions): boolean {
  return opts.format === 'json' || ctx.json();
}

async function costPolicy(opts: CommonOptions): Promise<CostPolicy> {
  const configDir = opts.configDir ?? DEFAULT_CONFIG_DIR;
  const approvers = await loadApprovers(configDir);
  const policy = await loadPolicy(opts.policy ?? 'default', approvers, configDir);
  const parsed = parseCostPolicy((policy as Record<string, unknown>).cost);
  if ('problems' in parsed) throw new ConfigError(policy.file, parsed.problems);
  return parsed.policy;
}

async function catalogOf(opts: CommonOptions): Promise<PricingCatalog> {
  return loadPricing(opts.pricing ?? DEFAULT_PRICING_FILE);
}

// ---------------------------------------------------------------------------------------------------------------
// report

async function report(ctx: CommandContext, opts: ReportOptions): Promise<void> {
  if (opts.utilization && opts.prometheus) throw new UsageError('give --utilization or --prometheus, not both');
  if (opts.prometheus && !opts.query) throw new UsageError('--prometheus needs --query <promql>');
  const [catalog, policy] = await Promise.all([catalogOf(opts), costPolicy(opts)]);
  let utilization: { source: string; series: ReturnType<typeof parseHistoryCsv> } | undefined;
  if (opts.utilization) {
    let text: string;
    try {
      text = await readFile(opts.utilization, 'utf8');
    } catch (err) {
      throw new UsageError(`${opts.utilization} cannot be read: ${(err as Error).message}`);
    }
    utilization = { source: `csv ${opts.utilization}`, series: parseHistoryCsv(text, opts.utilization) };
  } else if (opts.prometheus) {
    const since = parseDuration(opts.since);
    const step = parseDuration(opts.step);
    if (!since || !step) throw new UsageError('--since and --step take durations such as 7d and 1h');
    const endMs = Date.now();
    const series = await prometheusRange({
      url: opts.prometheus,
      query: opts.query as string,
      startMs: endMs - since * 1000,
      endMs,
      stepSeconds: step,
    });
    utilization = { source: `prometheus ${opts.prometheus} ${opts.query as string}`, series };
  }
  let repo;
  try {
    repo = await openGitOpsRepo(opts.gitops, opts.branch);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let result: SprawlReport;
  try {
    result = await sprawlReport(repo.dir, opts.gitops, {
      catalog,
      utilization,
      overprovisionFactor: policy.sprawl.overprovisionFactor,
      idleRequestsPerSecond: policy.sprawl.idleRequestsPerSecond,
      headroom: policy.headroom,
    });
  } finally {
    await repo.close();
  }
  if (wantsJson(ctx, opts)) ctx.io.out(JSON.stringify(result, null, 2));
  else printReport(ctx.io, result);
  ctx.setExit(opts.failOnSprawl && result.flags.length > 0 ? COST_EXIT.failed : COST_EXIT.ok);
}

function printReport(io: Io, r: SprawlReport): void {
  const rows = r.versions.map((v) => [
    v.model,
    v.environment,
    v.version,
    v.state,
    v.replicas === undefined ? '' : String(v.replicas),
    v.instanceType ?? '',
    v.monthlyDeployed !== undefined ? usd(v.monthlyDeployed) : v.estimate ? `(${usd(v.estimate.monthlyTco)})` : 'n/a',
    v.utilization ? v.utilization.meanRps.toFixed(2) : '',
  ]);
  table(io, ['model', 'environment', 'version', 'state', 'replicas', 'instance type', 'monthly', 'mean req/s'], rows);
  io.out('');
  io.out(
    `${r.totals.liveVersions} live, ${r.totals.supersededVersions} superseded; live cost ${usd(r.totals.monthlyLive)}/month` +
      (r.utilization
        ? `; utilization from ${r.utilization.source} (${r.utilization.matched} of ${r.totals.liveVersions} endpoints matched)`
        : ''),
  );
  if (r.flags.length === 0) {
    io.out('no sprawl found');
    return;
  }
  io.out(`sprawl (${r.flags.length}), could save ${usd(r.totals.monthlySavings)}/month:`);
  for (const f of r.flags) {
    io.out(`  [${f.kind}] ${f.message}${f.monthlySavings ? ` — ${usd(f.monthlySavings)}/month` : ''}`);
  }
}

function table(io: Io, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  io.out(line(header));
  for (const r of rows) io.out(line(r));
}

// ---------------------------------------------------------------------------------------------------------------
// estimate

async function walk(root: string, dir = root): Promise<ArtifactFile[]> {
  const files: ArtifactFile[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(root, full)));
    else if (entry.isFile()) {
      files.push({ path: relative(root, full).split(sep).join('/'), size: (await stat(full)).size, sha256: '' });
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

async function readTraffic(path: string | undefined): Promise<Partial<ReleaseRequest>> {
  if (!path) return {};
  let doc: unknown;
  try {
    doc = parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`${path} cannot be read as YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new UsageError(`${path} holds no traffic profile`);
  const d = doc as Partial<ReleaseRequest> & Record<string, unknown>;
  // A whole release request (traffic: inside) or just the traffic profile.
  if ('traffic' in d) return d;
  return { traffic: d };
}

async function estimate(ctx: CommandContext, dirArg: string, opts: EstimateOptions): Promise<void> {
  const dir = resolve(dirArg);
  let files: ArtifactFile[];
  try {
    files = await walk(dir);
  } catch (err) {
    throw new UsageError(`${dirArg} cannot be read: ${(err as Error).message}`);
  }
  const [catalog, policy, fromFile] = await Promise.all([catalogOf(opts), costPolicy(opts), readTraffic(opts.traffic)]);
  const earlier: GateResult[] = [];
  const at = new Date().toISOString();
  if (opts.throughput !== undefined) {
    const value = Number(opts.throughput);
    if (!(value > 0)) throw new UsageError('--throughput must be a positive number');
    if (!opts.backend) throw new UsageError('--throughput needs --backend (e.g. tensorflow)');
    const tokens = typeof (fromFile.traffic as Record<string, unknown> | undefined)?.tokensPerRequest === 'number';
    earlier.push({
      gate: 'evaluate',
      verdict: 'pass',
      summary: 'measured throughput given on the command line',
      metrics: { [tokens ? 'throughputTokensPerSecond' : 'throughputRowsPerSecond']: value, backend: opts.backend },
      findings: [],
      startedAt: at,
      finishedAt: at,
    });
  }
  for (const g of opts.gate ?? []) {
    const [name, verdict] = g.split('=');
    if (!name || !['pass', 'warn', 'fail', 'error'].includes(verdict ?? '')) {
      throw new UsageError(`--gate ${g}: use name=pass|warn|fail|error`);
    }
    earlier.push({
      gate: name,
      verdict: verdict as Verdict,
      summary: '',
      metrics: {},
      findings: [],
      startedAt: at,
      finishedAt: at,
    });
  }
  const team = opts.team ?? fromFile.team;
  const costCenter = opts.costCenter ?? fromFile.costCenter;
  const request: ReleaseRequest = {
    model: { name: fromFile.model?.name ?? 'model', version: fromFile.model?.version ?? '0', source: `file://${dir}` },
    environment: opts.environment,
    policy: opts.policy ?? 'default',
    requestedBy: 'mrel cost estimate',
    ...(fromFile.traffic ? { traffic: fromFile.traffic } : {}),
    ...(team ? { team } : {}),
    ...(costCenter ? { costCenter } : {}),
  };
  const input: GateInput = {
    releaseId: `estimate/${request.model.name}`,
    request,
    manifest: {
      model: request.model.name,
      version: request.model.version,
      source: request.model.source,
      resolvedRevision: dir,
      files,
      totalSize: files.reduce((s, f) => s + f.size, 0),
      storeRoot: dir,
      manifestDigest: '',
    },
    policy,
    waivers: [],
    earlier,
  };
  const { result, evidence } = await estimateReleaseCost(input, {
    catalog,
    locate: (file) => join(dir, ...file.path.split('/')),
  });
  if (wantsJson(ctx, opts)) ctx.io.out(JSON.stringify({ result, evidence }, null, 2));
  else printEstimate(ctx.io, result, evidence);
  ctx.setExit(
    result.verdict === 'fail' ? COST_EXIT.failed : result.verdict === 'error' ? COST_EXIT.usage : COST_EXIT.ok,
  );
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function printEstimate(io: Io, result: GateResult, e: CostEvidence): void {
  io.out(`${result.verdict}: ${result.summary}`);
  if (e.footprint) {
    const f = e.footprint;
    io.out(
      `model: ${f.parameters.toLocaleString('en-US')} parameters, ${bytes(f.storedBytes)} stored, ` +
        `${bytes(f.memoryBytes)} loaded (${Object.entries(f.byDtype)
          .map(([k, d]) => `${k} ${d.parameters.toLocaleString('en-US')}`)
          .join(', ')})`,
    );
  }
  if (e.throughput) io.out(`throughput: ${e.throughput.detail}`);
  if (e.demand) {
    const d = e.demand;
    io.out(
      `traffic: ${d.source}, peak ${d.demand.peakRps.toFixed(2)} req/s, average ${d.demand.averageRps.toFixed(2)} req/s` +
        (d.forecast
          ? `; held-out sMAPE ${(d.forecast.holdout.smape * 100).toFixed(1)}%, RMSE ${d.forecast.holdout.rmse.toFixed(2)}`
          : '') +
        (d.note ? ` (${d.note})` : ''),
    );
  }
  if (e.tco) {
    io.out(
      `monthly: compute ${usd(e.tco.compute)} + storage ${usd(e.tco.storage)} + risk premium ${usd(e.tco.riskPremium)} = ${usd(e.tco.total)}`,
    );
  }
  if (e.sensitivity) {
    io.out('sensitivity:');
    table(
      io,
      ['traffic', 'peak req/s', 'instance type', 'replicas', 'monthly', 'per 1k req'],
      e.sensitivity.map((s) => [
        `×${s.trafficFactor}`,
        s.peakRps.toFixed(2),
        s.instanceType ?? 'no fit',
        s.replicas === undefined ? '' : String(s.replicas),
        s.monthlyTotal === undefined ? '' : usd(s.monthlyTotal),
        s.costPer1kRequests === undefined ? '' : usdFine(s.costPer1kRequests),
      ]),
    );
  }
  if (e.riskPremium && e.riskPremium.monthly > 0) {
    io.out(
      `risk premium (incident cost ${usd(e.riskPremium.incidentCost)} × exposure ${e.riskPremium.exposure}): ` +
        e.riskPremium.terms.map((t) => `${t.gate} ${t.state} ${usd(t.expectedCost)}`).join(', '),
    );
  }
  if (result.requiredApprovals?.length) {
    io.out(`requires approval: ${result.requiredApprovals.map((a) => `${a.role} (${a.reason})`).join('; ')}`);
  }
  if (e.pricing.file) io.out(`prices: ${e.pricing.file} taken ${e.pricing.pricesTakenAt}`);
}
