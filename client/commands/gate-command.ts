/**
 * The one adapter every gate command of mrel (scan, scan-image, license, fairness, evaluate, cost) is built on, so
 * that each has the same `--format`, `--policy` and `--config-dir`, reads its policy through the loader and
 * validators the worker uses, and ends with a code from the one exit-code table (client/errors.ts, EXIT).
 *
 * A gate command declares its name, arguments and options, the policy section it reads, and `run`, which returns
 * the verdict, the JSON report, the text rendering and (for gates with findings) the SARIF log. The adapter parses
 * the options, loads the policy, picks the format, writes the output and sets the exit code.
 */
import { stat } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError, DEFAULT_CONFIG_DIR, readPolicyYaml } from '../../config/yaml-file';
import { WalkError } from '../../activities/formats/walk';
import { zodProblems } from '../../contract/problems';
import type { Verdict } from '../../contract/types';
import { InvalidPolicy } from '../../activities/gate/gate';
import { CommandError, EXIT, type ExitCode } from '../errors';
import type { CommandContext } from './context';
import type { RegisterCommands } from './index';

/** The policy every gate command applies unless `--policy` names another: config/policies/default.yaml. */
export const DEFAULT_POLICY = 'default';

/** What a gate command's run decided, in every form the adapter can write. */
export interface GateOutcome {
  verdict: Verdict;
  /** The `--format json` document; the adapter puts `verdict` and `exitCode` in front. */
  report: object;
  /** The `--format text` rendering (the default). */
  text(): string;
  /** The SARIF 2.1.0 log, for gates whose findings have locations (`--format sarif`). */
  sarif?(): unknown;
  /** Further documents by format name (scan-image: `cyclonedx`), as declared in the command's `documents`. */
  documents?: Record<string, () => unknown>;
  /** A warn exits 1 (`--fail-on-review`, `--fail-on-sprawl`): the user asked to stop on it. */
  failOnWarn?: boolean;
}

/** The policy a command's run gets: the gate's section, parsed, and where it came from. */
export interface GatePolicy<P> {
  policy: P;
  /** Absent when the command ran without a policy (only where `policy.optional` allows it). */
  source?: { name: string; file: string; digest: string };
  /** The config directory the policy came from (pricing.yaml and the like live beside it). */
  configDir: string;
}

export interface GateCommandSpec<O, P> {
  name: string;
  description: string;
  /** Adds the command's own arguments and options (not --format, --policy or --config-dir). */
  configure(command: Command): Command;
  policy: {
    /** The policy file's section this gate reads (`scan`, `license`, `image`, `evaluation`, `cost`). */
    section: string;
    /** The gate's parser of that section, the one its worker uses; `file` names the source in its errors. */
    parse(section: unknown, file: string, context: { knownRoles: readonly string[] }): P;
    /** Without --policy the command only measures and judges nothing (fairness); otherwise DEFAULT_POLICY applies. */
    optional?: boolean;
    /** Roles the section names (a review role), each with its field: checked against approvers.yaml's roles. */
    roles?(policy: P): { field: string; role: string }[];
    /**
     * Load the whole policy as the worker does (its approval frame, every role against approvers.yaml) because the
     * section names reviewers; otherwise only the file and this section are read, keeping the command's start fast.
     */
    approvers?: boolean;
  };
  /** True when the gate's findings can be written as SARIF 2.1.0. */
  sarif?: boolean;
  /** Further output formats: name → what it is (for --help). */
  documents?: Record<string, string>;
  /** Turns the gate's own errors into CommandErrors (others propagate: they are bugs). */
  mapError?(err: unknown): CommandError | undefined;
  run(input: { args: unknown[]; options: O; policy: GatePolicy<P> }): Promise<GateOutcome>;
}

interface AdapterOptions {
  format?: string;
  policy?: string;
  configDir?: string;
}

/** Exit code of a verdict: pass and warn 0 (warn 1 when asked), fail 1, error 3. */
export function verdictExit(verdict: Verdict, failOnWarn = false): ExitCode {
  switch (verdict) {
    case 'pass':
      return EXIT.ok;
    case 'warn':
      return failOnWarn ? EXIT.fail : EXIT.ok;
    case 'fail':
      return EXIT.fail;
    case 'error':
      return EXIT.undecided;
  }
}

/** The formats a command writes, in the order --help and errors list them. */
export function formatsOf(spec: Pick<GateCommandSpec<unknown, unknown>, 'sarif' | 'documents'>): string[] {
  return ['text', 'json', ...(spec.sarif ? ['sarif'] : []), ...Object.keys(spec.documents ?? {})];
}

/**
 * Registers a gate command on `parent` (the mrel program, or a command group such as `cost`). `configDir`, when
 * given, replaces MREL_CONFIG_DIR and --config-dir (tests point it at their own config/).
 */
export function gateCommand<O, P>(spec: GateCommandSpec<O, P>, options: { configDir?: string } = {}): RegisterCommands {
  return (parent, ctx) => {
    const formats = formatsOf(spec);
    const optional = spec.policy.optional === true;
    const command = spec.configure(parent.command(spec.name).description(spec.description));
    command
      .addOption(
        new Option('--format <format>', `output: ${formats.join(', ')} (default text; json with mrel --json)`)
          .choices(formats)
          .argParser((value: string) => {
            if (formats.includes(value)) return value;
            const sarifNote = value === 'sarif' ? `; it has no findings with locations to write as SARIF` : '';
            throw new InvalidArgumentError(`${spec.name} writes ${listOr(formats)}${sarifNote}.`);
          }),
      )
      .option(
        '--policy <name|file>',
        `policy whose ${spec.policy.section}: section applies: a name in config/policies, or a YAML file ` +
          (optional ? '(default: none, the metrics are computed but not judged)' : `(default: ${DEFAULT_POLICY})`),
      )
      .addOption(
        new Option('--config-dir <dir>', "config directory (default: the repository's config/)").env('MREL_CONFIG_DIR'),
      )
      .action(async (...params: unknown[]) => {
        const self = params.at(-1) as Command;
        const opts = self.opts<AdapterOptions & O>();
        const label = commandPath(self);
        try {
          const configDir = options.configDir ?? opts.configDir ?? DEFAULT_CONFIG_DIR;
          const policy = await loadGatePolicy(spec.policy, opts.policy ?? (optional ? undefined : DEFAULT_POLICY), {
            configDir,
          });
          const outcome = await spec.run({ args: self.processedArgs, options: opts, policy });
          write(ctx, outcome, opts.format ?? (ctx.json() ? 'json' : 'text'));
        } catch (err) {
          const known = err instanceof CommandError ? err : (spec.mapError?.(err) ?? commonError(err));
          if (!known) throw err;
          ctx.io.err(`mrel ${label}: ${known.message}`);
          for (const p of known.problems) ctx.io.err(`  - ${p}`);
          ctx.setExit(known.exitCode);
        }
      });
  };
}

function write(ctx: CommandContext, outcome: GateOutcome, format: string): void {
  const code = verdictExit(outcome.verdict, outcome.failOnWarn);
  if (format === 'json') {
    const { verdict: _verdict, exitCode: _exitCode, ...rest } = outcome.report as Record<string, unknown>;
    ctx.io.out(JSON.stringify({ verdict: outcome.verdict, exitCode: code, ...rest }, null, 2));
  } else if (format === 'sarif' && outcome.sarif) {
    ctx.io.out(JSON.stringify(outcome.sarif(), null, 2));
  } else if (outcome.documents?.[format]) {
    ctx.io.out(JSON.stringify(outcome.documents[format](), null, 2));
  } else {
    ctx.io.out(outcome.text());
  }
  ctx.setExit(code);
}

/**
 * Loads `--policy`: a name (config/policies/<name>.yaml) or a path to a YAML file, through the loader the worker
 * uses (the file's frame and every role against approvers.yaml), then parses the gate's own section with the gate's
 * own parser. The other gates' sections are the worker's to check: loading every gate's validators would cost each
 * command the start-up of all of them. Every problem is a CommandError `config` (exit 5) naming the file and field.
 */
export async function loadGatePolicy<P>(
  spec: GateCommandSpec<unknown, P>['policy'],
  ref: string | undefined,
  { configDir }: { configDir: string },
): Promise<GatePolicy<P>> {
  if (ref === undefined) return { policy: spec.parse(undefined, 'built-in defaults', { knownRoles: [] }), configDir };
  const isFile = /[\\/]/.test(ref) || /\.ya?ml$/i.test(ref);
  let loaded: { name: string; file: string; digest: string; data: Record<string, unknown> };
  let knownRoles: string[] = [];
  try {
    if (isFile) {
      const info = await stat(ref).catch(() => undefined);
      if (!info?.isFile()) {
        throw new CommandError('config', `--policy ${ref}: no such policy file; give a YAML file or a policy name`);
      }
    }
    if (spec.approvers) {
      const loader = await import('../../config/loader');
      const approvers = await loader.loadApprovers(configDir);
      const policy = isFile
        ? await loader.loadPolicyFile(ref, approvers, {}, configDir)
        : await loader.loadPolicy(ref, approvers, {}, configDir);
      loaded = { ...policy, data: policy as unknown as Record<string, unknown> };
      knownRoles = Object.keys(approvers.roles);
    } else {
      const read = await readPolicyYaml(ref, configDir, isFile);
      const data = read.loaded.data;
      if (typeof data !== 'object' || data === null || Array.isArray(data)) {
        throw new ConfigError(read.loaded.file, ["must be a mapping with approval: and the gates' sections"]);
      }
      loaded = {
        name: read.name,
        file: read.loaded.file,
        digest: read.loaded.digest,
        data: data as Record<string, unknown>,
      };
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new CommandError('config', `--policy ${ref}: ${err.file} does not load`, err.problems, { cause: err });
    }
    throw err;
  }
  const section = loaded.data[spec.section];
  let policy: P;
  try {
    policy = spec.parse(section, loaded.file, { knownRoles });
  } catch (err) {
    throw new CommandError(
      'config',
      `--policy ${ref}: ${loaded.file} does not load`,
      sectionProblems(err, spec.section).map((line) => line.replace(`${loaded.file}: `, '')),
      {
        cause: err,
      },
    );
  }
  // A review role approvers.yaml does not define could never approve: the worker refuses it at load, and so does this.
  const known = knownRoles;
  const unknown = (spec.roles?.(policy) ?? []).filter(({ role }) => !known.includes(role));
  if (unknown.length > 0) {
    throw new CommandError(
      'config',
      `--policy ${ref}: ${loaded.file} does not load`,
      unknown.map(
        ({ field, role }) =>
          `${field} "${role}" is not a known role (known: ${known.join(', ')}); add it under roles: in approvers.yaml or fix the name`,
      ),
    );
  }
  return { policy, source: { name: loaded.name, file: loaded.file, digest: loaded.digest }, configDir };
}

/** One line per bad field of a gate section, whichever way the gate's parser reports it. */
function sectionProblems(err: unknown, section: string): string[] {
  if (err instanceof InvalidPolicy) return err.problems;
  // zod and zod/mini errors alike (the scan section uses the mini build, which `instanceof ZodError` would not see).
  if (err instanceof Error && Array.isArray((err as { issues?: unknown }).issues)) {
    return zodProblems(err as unknown as Parameters<typeof zodProblems>[0], section);
  }
  return (err as Error).message.split('\n');
}

/** Config files the gate reads itself (pricing.yaml) fail as the policy does. */
function commonError(err: unknown): CommandError | undefined {
  if (err instanceof ConfigError) return new CommandError('config', `${err.file} does not load`, err.problems);
  // A model directory the gates would refuse once acquired (a link out of it, a special file) is bad input here.
  if (err instanceof WalkError) return new CommandError('usage', err.message, undefined, { cause: err });
  return undefined;
}

/** `scan`, or `cost estimate` for a command in a group. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function listOr(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}
