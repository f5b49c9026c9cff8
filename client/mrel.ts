/** Entry point of the `mrel` CLI (see client/cli.ts for commands and exit codes). */
import { runCli } from './cli';

process.exitCode = await runCli(process.argv.slice(2));
