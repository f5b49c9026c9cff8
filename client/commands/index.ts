/**
 * Command modules that add subcommands to mrel beyond the release commands in client/cli.ts. Each loads only when
 * its command is used (or for help): `mrel scan` in a pre-commit hook does not load TensorFlow.js, the image
 * scanner or the Temporal client.
 */
import type { Command } from 'commander';
import type { CommandContext } from './context';

export type RegisterCommands = (program: Command, ctx: CommandContext) => void;

export const COMMAND_MODULES: Record<string, () => Promise<RegisterCommands>> = {
  scan: async () => (await import('./scan')).register,
  'scan-image': async () => (await import('./scan-image')).register,
  license: async () => (await import('./license')).register,
  fairness: async () => (await import('./fairness')).register,
  evaluate: async () => (await import('./evaluate')).register,
  cost: async () => (await import('./cost')).register,
  drift: async () => (await import('./drift')).register,
  verify: async () => (await import('./verify')).register,
  'codec-server': async () => (await import('./codec-server')).register,
  'admission-webhook': async () => (await import('./admission-webhook')).register,
};
