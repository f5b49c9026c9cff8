/** Command modules that add subcommands to mrel beyond the release commands in client/cli.ts. */
import type { Command } from 'commander';
import type { CommandContext } from './context';
import { register as cost } from './cost';
import { register as evaluate } from './evaluate';
import { register as fairness } from './fairness';
import { register as license } from './license';
import { register as scan } from './scan';
import { register as scanImage } from './scan-image';

export type RegisterCommands = (program: Command, ctx: CommandContext) => void;

export const COMMAND_MODULES: RegisterCommands[] = [scan, scanImage, license, fairness, evaluate, cost];
