/**
 * mrel — the release CLI. Every command, release and gate commands alike, exits with a code from the one table in
 * client/errors.ts (EXIT): 0 done/pass/warn, 1 fail or not through, 2 bad usage or input, 3 could not decide,
 * 4 unavailable (a decision that timed out was not applied and never will be), 5 invalid config or policy,
 * 6 no such release or image. README (The CLI) prints it.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { parseDocument } from 'yaml';
import type { Client } from '@temporalio/client';
import type { DecideInput, DecideOutcome, ReleaseStatus } from '../contract/types';
import type { DecisionSignature, SignedWaiver } from '../contract/decision-payload';
import type { DecisionToSign } from './sign';
import { EXIT, RELEASE_ERROR_EXIT, ReleaseClientError } from './errors';
import type { ClientOptions } from './release-client';
import { COMMAND_MODULES, type RegisterCommands } from './commands';
import type { Io } from './commands/context';
import { renderStatus } from './format';

export { EXIT } from './errors';

/** The release commands defined here; they need the Temporal client, which loads only when one of them runs. */
const RELEASE_COMMANDS = ['start', 'status', 'approve', 'reject', 'retry', 'rollback', 'keep', 'watch', 'list'];
/** Global options that take a value (so their value is not taken for the command name). */
const GLOBAL_VALUE_OPTIONS = ['--address', '--namespace', '--profile'];

/** The Temporal client half of the start API, loaded on first use. */
const releaseClient = () => import('./release-client');

/**
 * The command modules an invocation needs: the one it names; none for a release command; all of them for help, no
 * command or an unknown one (commander then lists, or rejects with, every command). `mrel scan` in a pre-commit hook
 * so loads neither TensorFlow.js, nor the image scanner, nor the Temporal client.
 */
export async function commandModulesFor(argv: readonly string[]): Promise<RegisterCommands[]> {
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (GLOBAL_VALUE_OPTIONS.includes(arg)) i++;
    else if (!arg.startsWith('-')) positional.push(arg);
  }
  const [first, second] = positional;
  const command = first === 'help' ? second : first;
  if (command !== undefined && RELEASE_COMMANDS.includes(command)) return [];
  const load = COMMAND_MODULES[command ?? ''];
  if (load) return [await load()];
  return Promise.all(Object.values(COMMAND_MODULES).map((m) => m()));
}

interface GlobalOptions extends ClientOptions {
  json?: boolean;
}

/** Request files larger than this are refused unread: a request is a page of YAML, not a data set. */
export const MAX_REQUEST_FILE_BYTES = 2 * 1024 * 1024;
/** How many times YAML aliases may repeat anchored values: enough for real files, far too few for a "billion laughs". */
const MAX_YAML_ALIASES = 100;
/** Parse problems reported per file; the first ones are what needs fixing. */
const MAX_PARSE_PROBLEMS = 10;

/**
 * Reads a request file (YAML or JSON). Relative `file://` model sources and datasets resolve against its directory.
 * Throws only ReleaseClientError (INVALID_REQUEST), naming the file and never quoting its content.
 */
export async function readRequestFile(path: string): Promise<unknown> {
  const unusable = (what: string, problems: string[] = []) =>
    new ReleaseClientError('INVALID_REQUEST', `${path}: ${what}`, problems);
  let text: string;
  try {
    const info = await stat(path);
    // Devices and pipes (/dev/zero, a FIFO) would be read forever; directories fail obscurely.
    if (!info.isFile()) throw unusable('is not a regular file; give the path of a YAML or JSON request file');
    if (info.size > MAX_REQUEST_FILE_BYTES) {
      throw unusable(`is ${info.size} bytes; a request file may have at most ${MAX_REQUEST_FILE_BYTES}`);
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof ReleaseClientError) throw err;
    throw unusable(`cannot be read (${(err as Error).message})`);
  }
  let data: unknown;
  try {
    // Warnings (odd keys, unknown tags) would go to the process's stderr as Node warnings; errors are reported here.
    const doc = parseDocument(text, { logLevel: 'error' });
    if (doc.errors.length > 0) {
      const problems = doc.errors
        .slice(0, MAX_PARSE_PROBLEMS)
        .map((e) => firstLine(e.message))
        .concat(doc.errors.length > MAX_PARSE_PROBLEMS ? [`… and ${doc.errors.length - MAX_PARSE_PROBLEMS} more`] : []);
      throw unusable('is not valid YAML or JSON', problems);
    }
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    if (err instanceof ReleaseClientError) throw err;
    if (err instanceof ReferenceError) {
      throw unusable('expands YAML aliases too often (a resource exhaustion attack?)', [
        `aliases (*name) may repeat anchored values at most ${MAX_YAML_ALIASES} times; write the values out`,
      ]);
    }
    if (err instanceof RangeError) throw unusable('nests too deeply to be a release request');
    throw unusable('is not valid YAML or JSON', [firstLine((err as Error).message)]);
  }
  const base = dirname(resolve(path));
  const absolute = (uri: unknown): unknown => {
    if (typeof uri !== 'string' || !uri.startsWith('file://')) return uri;
    const rest = uri.slice('file://'.length);
    return isAbsolute(rest) ? uri : `file://${resolve(base, rest)}`;
  };
  if (isPlainObject(data)) {
    if (isPlainObject(data.model)) data.model.source = absolute(data.model.source);
    if (isPlainObject(data.evaluation)) data.evaluation.dataset = absolute(data.evaluation.dataset);
  }
  return data;

  function firstLine(message: string): string {
    const line = message.split('\n')[0] ?? message;
    return line.length > 200 ? `${line.slice(0, 200)}…` : line;
  }
  function isPlainObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

export function buildProgram(
  io: Io,
  outcome: { exitCode: number; clients: Client[] },
  connect: (o: ClientOptions) => Promise<Client> = async (o) => (await releaseClient()).connectClient(o),
  commandModules: RegisterCommands[] = [],
): Command {
  const setExit = (code: number): void => {
    outcome.exitCode = code;
  };
  const program = new Command('mrel')
    .description('Release machine-learning models through modelrelease (Temporal).')
    // No defaults here: unset, the Temporal config profile decides, then localhost:7233 and `default`.
    .addOption(
      new Option('--address <host:port>', 'Temporal frontend (default: the profile, else localhost:7233)').env(
        'TEMPORAL_ADDRESS',
      ),
    )
    .addOption(
      new Option('--namespace <ns>', 'Temporal namespace (default: the profile, else default)').env(
        'TEMPORAL_NAMESPACE',
      ),
    )
    .addOption(
      new Option('--profile <name>', 'profile of the Temporal config file (TEMPORAL_CONFIG_FILE)').env(
        'TEMPORAL_PROFILE',
      ),
    )
    .option('--json', 'print machine-readable JSON')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const print = (value: unknown, text: string): void => io.out(globals().json ? JSON.stringify(value, null, 2) : text);
  const client = async (): Promise<Client> => {
    const { address, namespace, profile } = globals();
    const c = await connect({ address, namespace, profile });
    outcome.clients.push(c);
    return c;
  };

  program
    .command('start')
    .description('start a release from a request file (YAML or JSON); the same release twice returns the running one')
    .argument('<request>', 'release request file')
    .option('--wait', 'follow stage progress until the release ends or awaits approval')
    .option('--task-queue <queue>', 'task queue of the release worker')
    .action(async (file: string, opts: { wait?: boolean; taskQueue?: string }) => {
      const request = await readRequestFile(file);
      const c = await client();
      const { startRelease } = await releaseClient();
      const started = await startRelease(c, request, { taskQueue: opts.taskQueue });
      if (!globals().json) {
        io.out(`${started.started ? 'started' : 'already exists'}: ${started.releaseId} (run ${started.runId})`);
      }
      if (!opts.wait) {
        if (globals().json) print(started, '');
        return;
      }
      const status = await follow(c, started.releaseId, globals().json ? () => {} : io.out);
      print({ ...started, status }, renderStatus(status));
      setExit(TERMINAL.includes(status.stage) && status.stage !== 'released' ? EXIT.fail : EXIT.ok);
    });

  program
    .command('status')
    .description('show a release: stage, gates, approvals, what is awaited from whom')
    .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
    .action(async (id: string) => {
      const { getRelease } = await releaseClient();
      const status = await getRelease(await client(), id);
      print(status, renderStatus(status));
    });

  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(decision)
      .description(`${decision} a release (answered at once: counted, or refused with why)`)
      .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
      .requiredOption('--as <approver>', 'your approver id in config/approvers.yaml')
      .option('--comment <text>', 'why (shown in the status and the evidence)')
      .option(
        '--sign-with <key>',
        'sign the decision with this SSH key (ssh-keygen -Y sign): a private key file, or the .pub of a key in ssh-agent',
      )
      .option('--payload-out <file>', 'write the payload to sign by hand (ssh-keygen -Y sign) and send nothing')
      .option('--signed-payload <file>', 'send the decision signed by hand: <file> and the <file>.sig beside it')
      .action(async (id: string, opts: DecisionOptions) => {
        const { decide } = await releaseClient();
        const c = await client();
        const signing = await decisionSigning(c, id, { decision, ...pick(opts, 'comment') }, opts);
        if (signing.written) return;
        const input: DecideInput = { approver: opts.as, decision, ...signing.fields, ...signing.signed };
        const answer: DecideOutcome = await decide(c, id, input);
        const text = answer.accepted
          ? `${decision === 'approve' ? 'approved' : 'rejected'} ${id} as ${opts.as}\n\n${renderStatus(answer.status)}`
          : `refused: ${answer.reason ?? 'no reason given'}`;
        print(answer, text);
        if (!answer.accepted) setExit(EXIT.fail);
      });
  }

  program
    .command('waive')
    .description(
      "accept named findings of one gate until an expiry (the policy's waivers: section); the gate is judged again",
    )
    .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
    .requiredOption('--as <approver>', 'your approver id in config/approvers.yaml')
    .option('--gate <gate>', 'the gate whose findings are waived, e.g. scan')
    .option('--rule <id>', 'a rule id to waive (repeat for more)', (v: string, all: string[] = []) => [...all, v])
    .option('--justification <text>', 'why this risk is accepted (recorded in the evidence)')
    .option('--expires <when>', 'an ISO time, or a duration from now such as 30d')
    .option('--comment <text>', 'a note beside the justification')
    .option('--sign-with <key>', 'sign the waive with this SSH key, as for approve')
    .option('--payload-out <file>', 'write the payload to sign by hand (ssh-keygen -Y sign) and send nothing')
    .option('--signed-payload <file>', 'send the waive signed by hand: <file> and the <file>.sig beside it')
    .action(
      async (
        id: string,
        opts: DecisionOptions & { gate?: string; rule?: string[]; justification?: string; expires?: string },
      ) => {
        const { waiveRelease } = await releaseClient();
        const { parseDuration } = await import('../contract/duration');
        const c = await client();
        const span = opts.expires === undefined ? undefined : parseDuration(opts.expires);
        const given = {
          ...pick(opts, 'gate', 'justification'),
          ...(opts.rule === undefined ? {} : { ruleIds: opts.rule }),
          ...(opts.expires === undefined
            ? {}
            : { expiresAt: span !== undefined ? new Date(Date.now() + span).toISOString() : opts.expires }),
        };
        // Signed by hand, the waiver is the one in the payload file; otherwise every part of it is needed here.
        const missing = (['gate', 'rule', 'justification', 'expires'] as const).filter((k) => opts[k] === undefined);
        if (opts.signedPayload === undefined && missing.length > 0) {
          throw new ReleaseClientError(
            'INVALID_REQUEST',
            `waive needs ${missing.map((k) => `--${k}`).join(', ')} (or --signed-payload with a signed waiver)`,
          );
        }
        const signing = await decisionSigning(
          c,
          id,
          { decision: 'waive', ...pick(opts, 'comment'), waiver: given as SignedWaiver },
          opts,
        );
        if (signing.written) return;
        const waiver = signing.waiver ?? (given as SignedWaiver);
        const answer = await waiveRelease(c, id, {
          approver: opts.as,
          ...waiver,
          ...signing.fields,
          ...signing.signed,
        });
        const text = answer.accepted
          ? `waived ${waiver.ruleIds.join(', ')} of ${waiver.gate} for ${id} until ${waiver.expiresAt}; the gate is judged again\n\n${renderStatus(answer.status)}`
          : `refused: ${answer.reason ?? 'no reason given'}`;
        print(answer, text);
        if (!answer.accepted) setExit(EXIT.fail);
      },
    );

  /**
   * How a decision is signed: with a key (--sign-with), by hand (--payload-out writes the payload and sends nothing;
   * --signed-payload sends it with the .sig beside it), or not at all.
   */
  async function decisionSigning(
    c: Client,
    id: string,
    decision: DecisionToSign,
    opts: DecisionOptions,
  ): Promise<{
    written?: true;
    fields?: { comment?: string };
    signed?: Required<DecisionSignature>;
    waiver?: SignedWaiver;
  }> {
    const ways = (['signWith', 'payloadOut', 'signedPayload'] as const).filter((k) => opts[k] !== undefined);
    if (ways.length > 1) {
      throw new ReleaseClientError(
        'INVALID_REQUEST',
        'give one of --sign-with, --payload-out and --signed-payload: they are three ways to sign the same decision',
      );
    }
    const sign = await import('./sign');
    const fields = decision.comment === undefined ? {} : { comment: decision.comment };
    if (opts.signWith !== undefined) {
      return { fields, signed: await sign.signReleaseDecision(c, id, decision, { keyFile: opts.signWith }) };
    }
    if (opts.payloadOut !== undefined) {
      const { payload, fields: signedFields } = await sign.releaseDecisionPayload(c, id, decision);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(opts.payloadOut, payload, { mode: 0o600 });
      const { DECISION_NAMESPACE } = await import('../contract/decision-payload');
      const text =
        `wrote the ${decision.decision} payload for ${id} (run ${signedFields.runId}, model ${signedFields.manifestDigest}, ` +
        `signed at ${signedFields.signedAt}) to ${opts.payloadOut}; nothing was sent.\n` +
        `Sign it:  ssh-keygen -Y sign -n ${DECISION_NAMESPACE} -f <your key> ${opts.payloadOut}\n` +
        `Send it:  the same command with --signed-payload ${opts.payloadOut} instead of --payload-out ` +
        '(within the hour: older signatures are refused)';
      print({ payloadFile: opts.payloadOut, ...signedFields, decision: decision.decision }, text);
      return { written: true };
    }
    if (opts.signedPayload !== undefined) {
      const read = await sign.readHandSignedDecision(opts.signedPayload, {
        releaseId: id,
        decision: decision.decision,
        ...fields,
        ...(decision.waiver === undefined ? {} : { waiver: decision.waiver }),
      });
      return {
        fields: read.comment === undefined ? {} : { comment: read.comment },
        signed: read.signature,
        ...(read.waiver ? { waiver: read.waiver } : {}),
      };
    }
    return { fields };
  }

  program
    .command('watch')
    .description('follow a release live until it ends or awaits someone: stages, gate progress, retries')
    .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
    .option('--interval <ms>', 'how often to look', (v) => Number.parseInt(v, 10), 1000)
    .action(async (id: string, opts: { interval: number }) => {
      if (!Number.isInteger(opts.interval) || opts.interval < 100) {
        throw new ReleaseClientError(
          'INVALID_REQUEST',
          '--interval must be a whole number of milliseconds, at least 100',
        );
      }
      const c = await client();
      const status = await follow(c, id, globals().json ? () => {} : io.out, opts.interval);
      if (globals().json) print(status, '');
      setExit(TERMINAL.includes(status.stage) && status.stage !== 'released' ? EXIT.fail : EXIT.ok);
    });

  program
    .command('retry')
    .description('try a failed step again (a GitOps commit the remote refused, once the remote is fixed)')
    .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
    .requiredOption('--as <who>', 'who asks for the retry (recorded in the history)')
    .action(async (id: string, opts: { as: string }) => {
      const { retryRelease } = await releaseClient();
      const status = await retryRelease(await client(), id, opts.as);
      print(
        { releaseId: id, retried: status.retrying?.step },
        `asked ${id} to retry ${status.retrying?.step ?? 'its step'} (last failure: ${status.retrying?.lastFailure ?? '?'})`,
      );
    });

  for (const decision of ['rollback', 'keep'] as const) {
    program
      .command(decision)
      .description(
        decision === 'rollback'
          ? 'roll back a release paused on a stalled rollout or a breached monitoring window (a revert commit; the rollback is watched)'
          : 'keep a release paused on a stalled rollout (watched once more) or a breached monitoring window (the window goes on without that metric)',
      )
      .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
      .requiredOption(
        '--as <approver>',
        'your approver id, with a role the delivery policy names for rollout decisions',
      )
      .option('--comment <text>', 'why (shown in the status and the evidence)')
      .option('--sign-with <key>', 'sign the decision with this SSH key, as for approve')
      .option('--payload-out <file>', 'write the payload to sign by hand (ssh-keygen -Y sign) and send nothing')
      .option('--signed-payload <file>', 'send the decision signed by hand: <file> and the <file>.sig beside it')
      .action(async (id: string, opts: DecisionOptions) => {
        const { decideRollout } = await releaseClient();
        const c = await client();
        const signing = await decisionSigning(c, id, { decision, ...pick(opts, 'comment') }, opts);
        if (signing.written) return;
        const answer = await decideRollout(c, id, decision, {
          approver: opts.as,
          ...signing.fields,
          ...signing.signed,
        });
        const text = answer.accepted
          ? `${decision === 'rollback' ? 'rolling back' : 'keeping'} ${id} as ${opts.as}\n\n${renderStatus(answer.status)}`
          : `refused: ${answer.reason ?? 'no reason given'}`;
        print(answer, text);
        if (!answer.accepted) setExit(EXIT.fail);
      });
  }

  program
    .command('list')
    .description('list releases (visibility query on the search attributes)')
    .option('--model <name>', 'ModelName')
    .option('--stage <stage>', 'ReleaseStage, e.g. approval, released, failed')
    .option('--environment <env>', 'TargetEnvironment')
    .option('--risk <level>', 'RiskLevel: low, medium or high (from the gate verdicts)')
    .option('--limit <n>', 'at most this many', (v) => Number.parseInt(v, 10), 100)
    .action(async (opts: { model?: string; stage?: string; environment?: string; risk?: string; limit: number }) => {
      const { listReleases } = await releaseClient();
      const releases = await listReleases(await client(), opts);
      const rows = releases.map((r) =>
        [r.releaseId, r.stage ?? '?', `risk ${r.risk ?? '-'}`, r.workflowStatus, r.startTime.toISOString()].join('  '),
      );
      print(releases, rows.length > 0 ? rows.join('\n') : 'no releases match');
    });

  for (const register of commandModules) {
    register(program, { io, setExit, json: () => globals().json === true, client });
  }
  return program;
}

/**
 * Follows a release until it ends or awaits someone (approval, or a retry signal), printing each change once: the
 * stage, each gate's verdict as it lands, running activities with their heartbeat progress and attempts, retries.
 */
async function follow(
  client: Client,
  id: string,
  out: (line: string) => void,
  intervalMs = 1_000,
): Promise<ReleaseStatus> {
  const { getRelease } = await releaseClient();
  const seen = new Set<string>();
  const say = (line: string): void => {
    if (seen.has(line)) return;
    seen.add(line);
    out(line);
  };
  for (;;) {
    const status = await getRelease(client, id);
    say(`stage ${status.stage}`);
    for (const g of status.gates) say(`  ${g.gate}: ${g.verdict} — ${g.summary}`);
    for (const p of status.pending ?? []) {
      const progress = p.progress === undefined ? '' : ` ${clipLine(JSON.stringify(p.progress))}`;
      say(
        `  … ${p.activity} ${p.state}, attempt ${p.attempt}${progress}${p.lastFailure ? ` (last failure: ${p.lastFailure})` : ''}`,
      );
    }
    if (status.retrying) {
      const r = status.retrying;
      say(
        `  retrying ${r.step}: attempt ${r.attempt} failed: ${r.lastFailure}; ${r.nextRetryAt ? `next try ${r.nextRetryAt}` : `waiting for ${r.waitingFor}`}`,
      );
    }
    if (status.awaiting)
      say(`  awaiting ${status.awaiting.approvalsMissing} approval(s) from ${status.awaiting.from.join(', ')}`);
    if (status.served) say(`  (${status.served.reason})`);
    if (status.rollout && status.stage === 'monitor')
      say(`  rollout ${status.rollout.state}${status.rollout.reason ? `: ${status.rollout.reason}` : ''}`);
    const paused = status.rollout?.state === 'paused';
    if (TERMINAL.includes(status.stage) || status.stage === 'approval' || status.retrying?.waitingFor || paused)
      return status;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// Spelled out rather than imported: contract/types would load zod on every start of the CLI.
const TERMINAL: readonly string[] = ['released', 'rejected', 'expired', 'failed', 'rolled-back'];

function clipLine(text: string, max = 160): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(
  argv: string[],
  io: Io = { out: (l) => console.log(l), err: (l) => console.error(l) },
  connect?: (o: ClientOptions) => Promise<Client>,
): Promise<number> {
  const outcome = { exitCode: EXIT.ok as number, clients: [] as Client[] };
  const program = buildProgram(io, outcome, connect, await commandModulesFor(argv));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return outcome.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof ReleaseClientError) {
      io.err(`mrel: ${err.message}`);
      for (const p of err.problems) io.err(`  - ${p}`);
      return RELEASE_ERROR_EXIT[err.code];
    }
    // A bug or an unforeseen failure: the command could not finish, which is not a verdict on the release.
    io.err(`mrel: ${(err as Error).message}`);
    return EXIT.undecided;
  } finally {
    await Promise.all(outcome.clients.map((c) => c.connection.close()));
  }
}

/** The options approve, reject and waive share: who decides, a comment, and how the decision is signed. */
interface DecisionOptions {
  as: string;
  comment?: string;
  signWith?: string;
  payloadOut?: string;
  signedPayload?: string;
}

/** The named keys of `from` that are set. */
function pick<T extends object, K extends keyof T>(from: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) out[key] = from[key];
  return out;
}
