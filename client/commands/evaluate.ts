/**
 * `mrel evaluate`: the fairness, robustness and explainability gates on a TensorFlow.js model directory and a
 * dataset, without Temporal — what the evaluation worker would decide, for notebooks, pre-merge checks and CI.
 *
 * Exit codes as every gate command (client/errors.ts): 0 every gate passed or warned, 1 a gate failed (a fairness
 * bound exceeded, adversarial accuracy below the minimum), 2 bad usage or a bad model or dataset (the message names
 * the field, or the column and row), 3 a gate could not decide, 5 a policy that does not load.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { initBackend, parseBackendPreference } from '../../activities/evaluate/backend';
import { datasetPath } from '../../activities/evaluate/dataset';
import { EvaluationError } from '../../activities/evaluate/errors';
import { runModelGate, type ModelGate } from '../../activities/evaluate/gates';
import { directoryReader, readerIOHandler } from '../../activities/evaluate/model';
import type { EvaluationPolicy } from '../../activities/evaluate/policy';
import { prepareEvaluation } from '../../activities/evaluate/prepare';
import type { GateResult, Verdict } from '../../contract/types';
import { collect, evaluationError, evaluationSection, parseList, parsePrivileged, renderVerdict } from './fairness';
import { gateCommand } from './gate-command';
import type { RegisterCommands } from './index';

const ALL_GATES: ModelGate[] = ['fairness', 'robustness', 'explain'];

interface EvaluateOptions {
  model: string;
  data: string;
  protected: string;
  label?: string;
  favorable?: string;
  features?: string;
  threshold?: number;
  privileged: string[];
  gates: string;
  backend?: string;
  evidence?: string;
}

/** Builds the `evaluate` command; `configDir` is where `--policy` names are looked up. */
export function createEvaluateCommand(options: { configDir?: string } = {}): RegisterCommands {
  return gateCommand<EvaluateOptions, EvaluationPolicy>(
    {
      name: 'evaluate',
      description:
        'run the fairness, robustness and explain gates on a TensorFlow.js model and a dataset (no Temporal)',
      configure: (command) =>
        command
          .requiredOption('--model <dir>', 'model directory (model.json + weight shards)')
          .requiredOption(
            '--data <file>',
            'CSV or JSON Lines (.jsonl) dataset with features, label and protected columns',
          )
          .requiredOption('--protected <columns>', 'protected attribute column(s), comma-separated')
          .option('--label <column>', "label column (default: the model metadata's label)")
          .option('--favorable <value>', "favorable label value (default: the model metadata's favorable)")
          .option('--features <columns>', "feature columns in input order (default: the model metadata's features)")
          .option('--threshold <p>', 'decision threshold on the second class (default 0.5)', Number)
          .option('--privileged <column=value>', 'privileged group for AIF360 metrics (repeatable)', collect, [])
          .option('--gates <list>', 'gates to run, comma-separated', ALL_GATES.join(','))
          .addOption(
            new Option('--backend <name>', 'tfjs backend')
              .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
              .env('TFJS_BACKEND'),
          )
          .option('--evidence <dir>', 'also write each gate’s full evidence as <dir>/<gate>.json'),
      policy: { section: 'evaluation', parse: evaluationSection },
      mapError: evaluationError,
      run: async ({ options: opts, policy: loaded }) => {
        const gates = parseList(opts.gates);
        const unknown = gates.filter((g) => !(ALL_GATES as string[]).includes(g));
        if (unknown.length > 0 || gates.length === 0) {
          throw new EvaluationError(
            'InvalidEvaluationConfig',
            `--gates ${opts.gates}: unknown gate(s) ${unknown.join(', ') || '(none given)'} (gates: ${ALL_GATES.join(', ')})`,
          );
        }
        const policy = loaded.policy;
        policy.fairness.privileged = { ...policy.fairness.privileged, ...parsePrivileged(opts.privileged) };
        const backend = await initBackend(parseBackendPreference(opts.backend));
        const prep = await prepareEvaluation({
          modelId: resolve(opts.model),
          handler: readerIOHandler(directoryReader(opts.model)),
          datasetPath: datasetPath(opts.data),
          protectedAttributes: parseList(opts.protected),
          overrides: {
            label: opts.label,
            favorable: opts.favorable,
            features: opts.features === undefined ? undefined : parseList(opts.features),
            threshold: opts.threshold,
          },
        });
        const results: GateResult[] = [];
        const reports: Record<string, unknown> = {};
        try {
          for (const gate of gates as ModelGate[]) {
            const outcome = await runModelGate(gate, prep, policy, {
              backend,
              waivers: [],
              writeEvidence:
                opts.evidence === undefined ? undefined : (name, data) => saveEvidence(opts.evidence!, name, data),
            });
            results.push(outcome.result);
            reports[gate] = outcome.evidence.report;
          }
        } finally {
          prep.model.dispose();
        }
        return {
          verdict: worst(results.map((r) => r.verdict)),
          report: { backend: backend.name, results, reports },
          text: () =>
            [
              `backend: ${backend.name}`,
              ...results.map((r) => `${r.gate}: ${renderVerdict(r.verdict, r.summary, r.findings)}`),
            ].join('\n'),
        };
      },
    },
    options,
  );
}

/** The `evaluate` command with the repository's config/ directory. */
export const register: RegisterCommands = createEvaluateCommand();

const ORDER: Verdict[] = ['pass', 'warn', 'error', 'fail'];

/** The most severe verdict, ranked as the gate kit ranks them: a fail outranks an error, which outranks warn. */
function worst(verdicts: Verdict[]): Verdict {
  return verdicts.reduce<Verdict>((a, b) => (ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a), 'pass');
}

async function saveEvidence(dir: string, gate: string, data: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${gate}.json`);
  await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}
