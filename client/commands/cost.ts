/**
 * `mrel cost`: the FinOps commands, on the gate-command adapter like every gate command.
 *
 *   mrel cost report --gitops <repo> [--utilization <csv> | --prometheus <url> --query <q>] [--format text|json]
 *   mrel cost estimate <model-dir> [--traffic <yaml>] [--throughput <n> --backend <b>] [--format text|json]
 *
 * Exit codes as every gate command (client/errors.ts): 0 done (estimate: pass or warn; report: sprawl is a warn) ·
 * 1 estimate: the gate would fail (no instance type fits, over a hard budget); report: sprawl with --fail-on-sprawl ·
 * 2 bad usage or unreadable input · 3 the estimate could not be made (verdict error) · 4 Prometheus (or the Git
 * remote) cannot be reached · 5 a policy or pricing catalog that does not load.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { parse } from 'yaml';
import { loadPricing, DEFAULT_PRICING_FILE, type PricingCatalog } from '../../config/pricing';
import { costPolicyRoles, parseCostPolicy, type CostPolicy } from '../../activities/cost/policy';
import { usd, usdFine } from '../../activities/cost/budget';
import { CostError, SourceUnavailableError } from '../../activities/cost/errors';
import { estimateReleaseCost, type CostEvidence, type CostInput } from '../../activities/cost/estimate';
import { walkModelDirectory } from '../../activities/formats/walk';
import { parseHistoryCsv, prometheusRange } from '../../activities/cost/history';
import { openGitOpsRepo, sprawlReport, type SprawlReport } from '../../activities/cost/sprawl';
import { parseDuration } from '../../contract/duration';
import type { ArtifactFile, EarlierGate, GateResult, ReleaseRequest, Verdict } from '../../contract/types';
import { CommandError } from '../errors';
import type { Io } from './context';
import { gateCommand, type GateCommandSpec, type GatePolicy } from './gate-command';
import type { RegisterCommands } from './index';

interface CommonOptions {
  pricing?: string;
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

const COST_POLICY: GateCommandSpec<unknown, CostPolicy>['policy'] = {
  section: 'cost',
  approvers: true,
  parse: (section) => {
    const parsed = parseCostPolicy(section);
    if ('problems' in parsed) throw new Error(parsed.problems.join('\n'));
    return parsed.policy;
  },
  roles: (policy) => costPolicyRoles(policy).map((role) => ({ field: 'cost: review role', role })),
};

/** The pricing option both commands take. */
const pricingOption = (cmd: Command): Command =>
  cmd.addOption(new Option('--pricing <file>', 'pricing catalog').env('MREL_PRICING_FILE'));

/** Cost errors name what to fix: the configuration (exit 5), anything else the input (exit 2). */
function costError(err: unknown): CommandError | undefined {
  if (err instanceof SourceUnavailableError) return new CommandError('unavailable', err.message, [], { cause: err });
  if (err instanceof CostError) {
    const extra = err.problems.length === 1 && err.problems[0] === err.message ? [] : err.problems;
    return new CommandError(err.code === 'InvalidConfig' ? 'config' : 'usage', err.message, extra, { cause: err });
  }
  return undefined;
}

/** Lines a printer writes, as one text. */
function linesOf(print: (io: Io) => void): string {
  const lines: string[] = [];
  print({ out: (l) => lines.push(l), err: (l) => lines.push(l) });
  return lines.join('\n');
}

/** Builds the `cost` group; `configDir`, when given, is where policies load from (tests). */
export function createCostCommands(options: { configDir?: string } = {}): RegisterCommands {
  return (program, ctx) => {
    const cost = program.command('cost').description('FinOps: cost estimates, budgets and model sprawl');
    gateCommand<ReportOptions, CostPolicy>(
      {
        name: 'report',
        description: 'list every model version a GitOps repository deploys, its cost, and sprawl',
        configure: (cmd) =>
          pricingOption(cmd)
            .requiredOption('--gitops <repo>', 'GitOps repository: a work tree, a bare repository or a Git URL')
            .option('--branch <branch>', 'branch of a cloned repository', 'main')
            .option('--utilization <csv>', 'CSV of timestamp,model,environment,requests_per_second (or requests)')
            .option('--prometheus <url>', 'Prometheus base URL for utilization')
            .option(
              '--query <promql>',
              'range query yielding requests/s per series labelled model and environment/namespace',
            )
            .option('--since <duration>', 'utilization window ending now (Prometheus)', '7d')
            .option('--step <duration>', 'utilization step (Prometheus)', '1h')
            .option('--fail-on-sprawl', 'exit 1 when sprawl is found'),
        policy: COST_POLICY,
        mapError: costError,
        run: async ({ options: opts, policy }) => {
          const result = await report(opts, policy);
          return {
            // Sprawl is worth a look, not a failure, unless the user asked to stop on it.
            verdict: result.flags.length > 0 ? 'warn' : 'pass',
            failOnWarn: opts.failOnSprawl === true,
            report: result,
            text: () => linesOf((io) => printReport(io, result)),
          };
        },
      },
      options,
    )(cost, ctx);
    gateCommand<EstimateOptions, CostPolicy>(
      {
        name: 'estimate',
        description: 'estimate what serving a model directory costs, as the cost gate would',
        configure: (cmd) =>
          pricingOption(cmd)
            .argument('<model-dir>', 'directory with the model files (safetensors, GGUF or tfjs model.json)')
            .option(
              '--traffic <yaml>',
              'a traffic profile, or a release request file with traffic:, team:, costCenter:',
            )
            .option('--environment <env>', 'target environment (risk premium exposure)', 'production')
            .option('--team <team>', 'team (budget)')
            .option('--cost-center <cc>', 'cost center (budget)')
            .option('--throughput <n>', 'measured throughput (rows/s, or tokens/s for a tokensPerRequest profile)')
            .option('--backend <name>', 'backend the throughput was measured on (see pricing.yaml backends)')
            .option(
              '--gate <name=verdict...>',
              'earlier gate verdicts for the risk premium, e.g. scan=pass fairness=warn',
            ),
        policy: COST_POLICY,
        mapError: costError,
        run: async ({ args, options: opts, policy }) => {
          const [dir] = args as [string];
          const { result, evidence } = await estimate(dir, opts, policy);
          return {
            verdict: result.verdict,
            report: { result, evidence },
            text: () => linesOf((io) => printEstimate(io, result, evidence)),
          };
        },
      },
      options,
    )(cost, ctx);
  };
}

/** The `cost` commands with the repository's config/ directory (or --config-dir, MREL_CONFIG_DIR). */
export const register: RegisterCommands = createCostCommands();

async function catalogOf(opts: CommonOptions): Promise<PricingCatalog> {
  return loadPricing(opts.pricing ?? DEFAULT_PRICING_FILE);
}

// ---------------------------------------------------------------------------------------------------------------
// report

async function report(opts: ReportOptions, { policy }: GatePolicy<CostPolicy>): Promise<SprawlReport> {
  if (opts.utilization && opts.prometheus)
    throw new CommandError('usage', 'give --utilization or --prometheus, not both');
  if (opts.prometheus && !opts.query) throw new CommandError('usage', '--prometheus needs --query <promql>');
  const catalog = await catalogOf(opts);
  let utilization: { source: string; series: ReturnType<typeof parseHistoryCsv> } | undefined;
  if (opts.utilization) {
    let text: string;
    try {
      text = await readFile(opts.utilization, 'utf8');
    } catch (err) {
      throw new CommandError('usage', `${opts.utilization} cannot be read: ${(err as Error).message}`);
    }
    utilization = { source: `csv ${opts.utilization}`, series: parseHistoryCsv(text, opts.utilization) };
  } else if (opts.prometheus) {
    const since = parseDuration(opts.since);
    const step = parseDuration(opts.step);
    if (!since || !step) throw new CommandError('usage', '--since and --step take durations such as 7d and 1h');
    const endMs = Date.now();
    const series = await prometheusRange({
      url: opts.prometheus,
      query: opts.query as string,
      startMs: endMs - since,
      endMs,
      stepSeconds: step / 1000,
    });
    utilization = { source: `prometheus ${opts.prometheus} ${opts.query as string}`, series };
  }
  let repo;
  try {
    repo = await openGitOpsRepo(opts.gitops, opts.branch);
  } catch (err) {
    throw new CommandError('usage', (err as Error).message);
  }
  try {
    return await sprawlReport(repo.dir, opts.gitops, {
      catalog,
      utilization,
      overprovisionFactor: policy.sprawl.overprovisionFactor,
      idleRequestsPerSecond: policy.sprawl.idleRequestsPerSecond,
      headroom: policy.headroom,
    });
  } finally {
    await repo.close();
  }
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

/** The model directory as acquire would list it (activities/formats/walk.ts): the files the cost gate would size. */
async function walk(root: string): Promise<ArtifactFile[]> {
  const { files } = await walkModelDirectory(root);
  return files.map((f) => ({ path: f.path, size: f.size, sha256: '' }));
}

async function readTraffic(path: string | undefined): Promise<Partial<ReleaseRequest>> {
  if (!path) return {};
  let doc: unknown;
  try {
    doc = parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new CommandError('usage', `${path} cannot be read as YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new CommandError('usage', `${path} holds no traffic profile`);
  const d = doc as Partial<ReleaseRequest> & Record<string, unknown>;
  // A whole release request (traffic: inside) or just the traffic profile.
  if ('traffic' in d) return d;
  return { traffic: d };
}

async function estimate(
  dirArg: string,
  opts: EstimateOptions,
  { policy, source }: GatePolicy<CostPolicy>,
): Promise<{ result: GateResult; evidence: CostEvidence }> {
  const dir = resolve(dirArg);
  let files: ArtifactFile[];
  try {
    files = await walk(dir);
  } catch (err) {
    throw new CommandError('usage', `${dirArg} cannot be read: ${(err as Error).message}`);
  }
  const [catalog, fromFile] = await Promise.all([catalogOf(opts), readTraffic(opts.traffic)]);
  const earlier: EarlierGate[] = [];
  if (opts.throughput !== undefined) {
    const value = Number(opts.throughput);
    if (!(value > 0)) throw new CommandError('usage', '--throughput must be a positive number');
    if (!opts.backend) throw new CommandError('usage', '--throughput needs --backend (e.g. tensorflow)');
    const tokens = typeof (fromFile.traffic as Record<string, unknown> | undefined)?.tokensPerRequest === 'number';
    earlier.push({
      gate: 'evaluate',
      verdict: 'pass',
      throughput: { unit: tokens ? 'tokens' : 'rows', perSecond: value, backend: opts.backend },
    });
  }
  for (const g of opts.gate ?? []) {
    const [name, verdict] = g.split('=');
    if (!name || !['pass', 'warn', 'fail', 'error'].includes(verdict ?? '')) {
      throw new CommandError('usage', `--gate ${g}: use name=pass|warn|fail|error`);
    }
    earlier.push({ gate: name, verdict: verdict as Verdict });
  }
  const team = opts.team ?? fromFile.team;
  const costCenter = opts.costCenter ?? fromFile.costCenter;
  const request: ReleaseRequest = {
    model: { name: fromFile.model?.name ?? 'model', version: fromFile.model?.version ?? '0', source: `file://${dir}` },
    environment: opts.environment,
    policy: source?.name ?? 'default',
    requestedBy: 'mrel cost estimate',
    ...(fromFile.traffic ? { traffic: fromFile.traffic } : {}),
    ...(team ? { team } : {}),
    ...(costCenter ? { costCenter } : {}),
  };
  const input: CostInput = {
    releaseId: `estimate/${request.model.name}`,
    request,
    manifest: {
      model: request.model.name,
      version: request.model.version,
      source: request.model.source,
      resolvedRevision: dir,
      files,
      totalSize: files.reduce((s, f) => s + f.size, 0),
      manifestDigest: '',
    },
    policy,
    waivers: [],
    earlier,
  };
  return estimateReleaseCost(input, {
    catalog,
    locate: (file) => join(dir, ...file.path.split('/')),
  });
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
