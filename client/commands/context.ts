/** What a CLI command module gets from the mrel program: output, the exit code, and the global options. */
import type { Client } from '@temporalio/client';
import type { ExitCode } from '../errors';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface CommandContext {
  io: Io;
  /** Sets the process exit code for this invocation: a code from the one table, EXIT in client/errors.ts. */
  setExit(code: ExitCode): void;
  /** True when --json was given. */
  json(): boolean;
  /** A connected Temporal client (closed by the program when the command ends). */
  client(): Promise<Client>;
}
