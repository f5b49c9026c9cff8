/** Runs one mrel command module in-process, the way client/cli.ts wires it, with its output and exit code captured. */
import { Command } from 'commander';
import type { CommandContext } from '../../client/commands/context';
import type { RegisterCommands } from '../../client/commands/index';

export interface CommandRun {
  code: number;
  out: string;
  err: string;
}

/**
 * `await runCommand(register, ['scan', 'model/'])`. `--json` before the command works as in mrel; `json: true` sets it
 * without the flag. Commander's own usage errors (unknown option, bad choice, missing argument) end as exit code 2,
 * as mrel maps them, or are rethrown with `usageErrors: 'throw'` for tests that look at the error itself.
 */
export async function runCommand(
  register: RegisterCommands,
  args: string[],
  options: { json?: boolean; usageErrors?: 'exit' | 'throw' } = {},
): Promise<CommandRun> {
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  const program = new Command('mrel')
    .option('--json')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.push(s.trimEnd()), writeErr: (s) => err.push(s.trimEnd()) });
  const ctx: CommandContext = {
    io: { out: (l) => out.push(l), err: (l) => err.push(l) },
    setExit: (c) => {
      code = c;
    },
    json: () => options.json ?? program.opts<{ json?: boolean }>().json === true,
    client: () => Promise.reject(new Error('the gate commands need no Temporal')),
  };
  register(program, ctx);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (options.usageErrors === 'throw') throw e;
    code = (e as { exitCode?: number }).exitCode === 0 ? 0 : 2;
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Runs the whole mrel CLI in-process against the Temporal server at `address`, with its output and exit code. */
export async function runMrel(address: string, args: string[]): Promise<CommandRun> {
  const { runCli } = await import('../../client/cli');
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--address', address, ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
