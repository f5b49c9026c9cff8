/**
 * `mrel fairness`: group fairness metrics from a dataset of labels and predictions (no model, no Temporal), with
 * Fairlearn's and AIF360's definitions and seeded bootstrap intervals. With `--policy` it also judges them by the
 * policy's evaluation.fairness bounds; without, it only computes them (verdict pass, "not judged").
 *
 * Exit codes as every gate command (client/errors.ts): 0 computed (with --policy: within the bounds or only
 * warnings), 1 a bound is exceeded, 2 bad usage or bad data (the message names the column and row), 3 the gate
 * could not decide (e.g. a metric undefined, insufficientData: error), 5 a policy that does not load.
 */
import { datasetPath } from '../../activities/evaluate/dataset';
import { EvaluationError } from '../../activities/evaluate/errors';
import { BETWEEN_GROUP_METRICS } from '../../activities/evaluate/fairness';
import {
  addRows,
  emptyGroupCounts,
  fairnessReport,
  reportColumns,
  type FairnessReport,
} from '../../activities/evaluate/fairness-report';
import { gateResult, judgeFairness } from '../../activities/evaluate/judge';
import { parseEvaluationPolicy, type EvaluationPolicy } from '../../activities/evaluate/policy';
import { loadPredictionTable } from '../../activities/evaluate/table';
import type { Finding, Verdict } from '../../contract/types';
import { CommandError } from '../errors';
import { gateCommand } from './gate-command';
import type { RegisterCommands } from './index';

interface FairnessOptions {
  data: string;
  label: string;
  prediction: string;
  protected: string;
  favorable: string;
  privileged: string[];
  minGroupSize?: number;
  resamples?: number;
  seed?: number;
  confidence?: number;
  intersections: boolean;
}

/** `--privileged sex=male --privileged race=white` → { sex: 'male', race: 'white' }. */
export function parsePrivileged(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0 || at === v.length - 1)
      throw new EvaluationError('InvalidEvaluationConfig', `--privileged ${v}: write column=value`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

/** A comma-separated column list. */
export function parseList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Repeated options (`--privileged a=x --privileged b=y`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const integer = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n))
    throw new EvaluationError('InvalidEvaluationConfig', `${name} ${v}: must be a whole number`);
  return n;
};

/** Evaluation errors (bad data, model, columns, flags) are the user's to fix: exit 2; the message names the place. */
export function evaluationError(err: unknown): CommandError | undefined {
  if (!(err instanceof EvaluationError)) return undefined;
  const [first, ...rest] = err.message.split('\n');
  return new CommandError('usage', first ?? err.message, rest, { cause: err });
}

/** The section parser of the evaluation gates, with the policy file named in its errors. */
export const evaluationSection = (section: unknown, file: string): EvaluationPolicy =>
  parseEvaluationPolicy(section, file);

/** Builds the `fairness` command; `configDir` is where `--policy` names are looked up. */
export function createFairnessCommand(options: { configDir?: string } = {}): RegisterCommands {
  return gateCommand<FairnessOptions, EvaluationPolicy>(
    {
      name: 'fairness',
      description: 'group fairness metrics from labels and predictions in a CSV or JSON Lines file (no model)',
      configure: (command) =>
        command
          .requiredOption('--data <file>', 'CSV or JSON Lines (.jsonl) dataset')
          .requiredOption('--label <column>', 'the true outcome')
          .requiredOption('--prediction <column>', "the model's predicted outcome")
          .requiredOption('--protected <columns>', 'protected attribute column(s), comma-separated')
          .option('--favorable <value>', 'the favorable outcome value', '1')
          .option('--privileged <column=value>', 'privileged group for AIF360 metrics (repeatable)', collect, [])
          .option(
            '--min-group-size <n>',
            'smaller groups are reported but not compared (default 30)',
            integer('--min-group-size'),
          )
          .option('--resamples <n>', 'bootstrap resamples (default 1000; 0: no intervals)', integer('--resamples'))
          .option('--seed <n>', 'bootstrap seed', integer('--seed'))
          .option('--confidence <level>', 'confidence level of the intervals (default 0.95)', Number)
          .option('--no-intersections', 'do not compare intersections of several protected attributes'),
      policy: { section: 'evaluation', parse: evaluationSection, optional: true },
      mapError: evaluationError,
      run: async ({ options: opts, policy: loaded }) => {
        const policy = loaded.policy;
        const fairness = {
          ...policy.fairness,
          minGroupSize: opts.minGroupSize ?? policy.fairness.minGroupSize,
          intersections: opts.intersections,
          confidence: opts.confidence ?? policy.fairness.confidence,
          bootstrap: {
            resamples: opts.resamples ?? policy.fairness.bootstrap.resamples,
            seed: opts.seed ?? policy.fairness.bootstrap.seed,
          },
          privileged: { ...policy.fairness.privileged, ...parsePrivileged(opts.privileged) },
        };
        const table = await loadPredictionTable(datasetPath(opts.data), {
          label: opts.label,
          prediction: opts.prediction,
          favorable: opts.favorable,
          protected: parseList(opts.protected),
        });
        const columns = reportColumns(table.groups, fairness.intersections);
        const counts = emptyGroupCounts(columns);
        addRows(counts, columns, table.yTrue, table.yPred, 0, table.rows);
        const report = fairnessReport(columns, counts, fairness);
        if (loaded.source === undefined) {
          return {
            verdict: 'pass',
            report: { judged: false, summary: 'metrics computed, not judged (give --policy to judge them)', ...report },
            text: () => renderFairness(report),
          };
        }
        const now = new Date().toISOString();
        const { result } = gateResult({
          gate: 'fairness',
          judgement: judgeFairness(report, fairness),
          waivers: [],
          extraMetrics: { rows: table.rows },
          startedAt: now,
          finishedAt: now,
        });
        return {
          verdict: result.verdict,
          report: { judged: true, summary: result.summary, findings: result.findings, ...report },
          text: () => `${renderFairness(report)}\n\n${renderVerdict(result.verdict, result.summary, result.findings)}`,
        };
      },
    },
    options,
  );
}

/** The `fairness` command with the repository's config/ directory. */
export const register: RegisterCommands = createFairnessCommand();

const num = (v: number | undefined): string => (v === undefined ? '-' : Number.isFinite(v) ? v.toFixed(4) : String(v));

/** The report as a table per attribute. */
export function renderFairness(report: FairnessReport): string {
  const lines: string[] = [];
  for (const [name, a] of Object.entries(report.attributes)) {
    lines.push(`${name}${a.privileged ? ` (privileged: ${a.privileged})` : ''}`);
    lines.push('  group            count  selection    tpr      fpr      accuracy  precision');
    for (const [value, g] of Object.entries(a.groups)) {
      const note = a.insufficientGroups.includes(value) ? '  (insufficient data)' : '';
      lines.push(
        `  ${value.padEnd(15)} ${String(g.count).padStart(6)}  ${num(g.selectionRate).padStart(9)}  ${num(g.tpr).padStart(7)}  ${num(g.fpr).padStart(7)}  ${num(g.accuracy).padStart(8)}  ${num(g.precision).padStart(9)}${note}`,
      );
    }
    const metrics = BETWEEN_GROUP_METRICS;
    for (const m of metrics) {
      const v = a[m];
      if (v === undefined) continue;
      const ci = a.ci[m];
      const interval = ci ? `  [${num(ci.lower)}, ${num(ci.upper)}]` : '';
      lines.push(`  ${m.padEnd(28)} ${num(v)}${interval}`);
    }
    lines.push('');
  }
  const first = Object.values(report.attributes)[0];
  if (first && first.bootstrap.resamples > 0) {
    lines.push(
      `intervals: ${Math.round(first.bootstrap.confidence * 100)}% percentile bootstrap, ${first.bootstrap.resamples} resamples, seed ${first.bootstrap.seed}`,
    );
  }
  return lines.join('\n').trimEnd();
}

export function renderVerdict(verdict: Verdict, summary: string, findings: Finding[]): string {
  const lines = [`${verdict.toUpperCase()}  ${summary}`];
  for (const f of findings) lines.push(`  [${f.severity}] ${f.ruleId} ${f.location}: ${f.message}`);
  return lines.join('\n');
}
