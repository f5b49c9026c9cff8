/** Command modules that add subcommands to mrel beyond the release commands in client/cli.ts. */
import type { Command } from 'commander';
import type { CommandContext } from './context';
import { register as license } from './license';
import { register as scan } from './scan';

export type RegisterCommands = (program: Command, ctx: CommandContext) => void;

export const COMMAND_MODULES: RegisterCommands[] = [scan, license];
