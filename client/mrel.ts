/** Entry point of the `mrel` CLI (see client/cli.ts for commands and exit codes). */
import { runCli } from './cli';

// A reader that went away (`mrel scan models/ | head`) ends the output, not the command: what is left to print is
// dropped and the command finishes with its own exit code, instead of dying on EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stream.destroy();
  });
}

process.exitCode = await runCli(process.argv.slice(2));
