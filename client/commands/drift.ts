/**
 * `mrel drift`: data drift between a reference dataset and current data, per feature and for the dataset, with
 * Evidently's defaults and scipy's statistics (activities/monitor/drift), no Temporal. With `--policy` the policy's
 * `monitor.drift` overrides methods and thresholds per feature.
 *
 * Exit codes as every gate command (client/errors.ts): 0 no dataset drift, 1 dataset drift, 2 bad usage or bad data
 * (the message names the file, column and line), 5 a policy that does not load.
 */
import { InvalidPolicy } from '../../activities/gate/gate';
import { DEFAULT_DRIFT_POLICY, parseDriftPolicy, type DriftPolicy } from '../../activities/monitor/drift/policy';
import { DriftDataError } from '../../activities/monitor/drift/read';
import { driftReport, type DriftReport } from '../../activities/monitor/drift/report';
import { CommandError } from '../errors';
import { parseList } from './fairness';
import { gateCommand } from './gate-command';
import type { RegisterCommands } from './index';

interface DriftOptions {
  reference: string;
  current: string;
  columns?: string;
  categorical?: string;
}

/** Builds the `drift` command; `configDir` is where `--policy` names are looked up. */
export function createDriftCommand(options: { configDir?: string } = {}): RegisterCommands {
  return gateCommand<DriftOptions, DriftPolicy>(
    {
      name: 'drift',
      description: 'data drift per feature between a reference and current CSV or JSON Lines file (Evidently defaults)',
      configure: (command) =>
        command
          .requiredOption('--reference <file>', 'the data the model was evaluated on (CSV, or JSON Lines: .jsonl)')
          .requiredOption('--current <file>', 'the data the model is served now (CSV, or JSON Lines: .jsonl)')
          .option('--columns <columns>', "columns to compare, comma-separated (default: all of the reference's)")
          .option('--categorical <columns>', 'columns to treat as categories even where their values are numbers'),
      policy: {
        section: 'monitor',
        parse: (section, file) => parseDriftPolicy(section, file),
        optional: true,
      },
      mapError: (err) => {
        if (err instanceof DriftDataError) return new CommandError('usage', err.message, undefined, { cause: err });
        if (err instanceof InvalidPolicy) return new CommandError('config', err.message, err.problems, { cause: err });
        return undefined;
      },
      run: async ({ options: opts, policy: loaded }) => {
        const report = await driftReport({
          reference: opts.reference,
          current: opts.current,
          columns: opts.columns === undefined ? undefined : parseList(opts.columns),
          categorical: opts.categorical === undefined ? [] : parseList(opts.categorical),
          policy: loaded.policy ?? DEFAULT_DRIFT_POLICY,
        });
        return {
          verdict: report.datasetDrift ? 'fail' : 'pass',
          report,
          text: () => renderDrift(report),
        };
      },
    },
    options,
  );
}

/** The `drift` command with the repository's config/ directory. */
export const register: RegisterCommands = createDriftCommand();

const num = (v: number | undefined): string =>
  v === undefined
    ? '-'
    : Number.isFinite(v)
      ? Math.abs(v) < 1e-4 && v !== 0
        ? v.toExponential(2)
        : v.toFixed(4)
      : String(v);

/** One line per feature, then the dataset's verdict. */
export function renderDrift(report: DriftReport): string {
  const lines = ['column                 type         method         statistic  threshold  psi      drifted'];
  for (const [name, c] of Object.entries(report.columns)) {
    lines.push(
      `${name.padEnd(22)} ${c.type.padEnd(12)} ${c.method.padEnd(14)} ${num(c.statistic).padStart(9)}  ${num(c.threshold).padStart(9)}  ${num(c.psi).padStart(7)}  ${c.drifted ? 'yes' : 'no'}`,
    );
  }
  const drifted = Object.values(report.columns).filter((c) => c.drifted).length;
  lines.push('');
  lines.push(
    `${report.datasetDrift ? 'DRIFT' : 'NO DRIFT'}  ${drifted} of ${Object.keys(report.columns).length} features drifted (share ${num(report.driftedShare)})`,
  );
  return lines.join('\n');
}
