/**
 * The CLI's user-facing errors and the one exit-code table every mrel command uses, release commands and gate
 * commands alike. Kept apart from the Temporal client so the CLI can name them without loading it.
 */

/**
 * mrel's exit codes: what a CI step or a script branches on. A code means the same thing on every command; README
 * (The CLI) prints this table.
 */
export const EXIT = {
  /** Done: the gate passed or only warned; a release command did what it was asked (--wait: released or awaiting). */
  ok: 0,
  /**
   * The gate failed (or warned under --fail-on-review / --fail-on-sprawl); the release did not go through; a decision
   * was refused or came after the end.
   */
  fail: 1,
  /** Bad usage or input: an unknown option or --format, a missing argument, an unreadable or invalid input file. */
  usage: 2,
  /**
   * The gate could not decide (its verdict is `error`: something went unexamined or unread), or the command could
   * not finish for a reason nobody foresaw (on stderr). Not a verdict on the model: fix the cause and run again.
   */
  undecided: 3,
  /**
   * Something needed cannot be reached: Temporal, a release worker (a decision then did not apply), a registry, the
   * OSV API, Prometheus, a Git remote. Worth retrying.
   */
  unavailable: 4,
  /** The configuration is invalid: --policy does not load or its gate section is wrong, or approvers or pricing. */
  config: 5,
  /** What the command names does not exist: no such release, image or tag. */
  notFound: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * The start API's user-facing errors, one class with a stable code the CLI maps to an exit code.
 */
export class ReleaseClientError extends Error {
  constructor(
    readonly code: 'INVALID_REQUEST' | 'NOT_FOUND' | 'RELEASE_ENDED' | 'UNAVAILABLE' | 'WORKER_UNAVAILABLE',
    message: string,
    readonly problems: string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ReleaseClientError';
  }
}

/** The exit code of each ReleaseClientError. */
export const RELEASE_ERROR_EXIT: Record<ReleaseClientError['code'], ExitCode> = {
  INVALID_REQUEST: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  RELEASE_ENDED: EXIT.fail,
  UNAVAILABLE: EXIT.unavailable,
  WORKER_UNAVAILABLE: EXIT.unavailable,
};

/**
 * A gate command that cannot give a verdict for a reason the user fixes: bad input (`usage`), a policy that does not
 * load (`config`), something unreachable (`unavailable`) or absent (`notFound`). The message names the file, flag or
 * field; `problems` are printed one per line under it.
 */
export class CommandError extends Error {
  constructor(
    readonly code: 'usage' | 'config' | 'unavailable' | 'notFound' | 'undecided',
    message: string,
    readonly problems: string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CommandError';
  }

  get exitCode(): ExitCode {
    return EXIT[this.code];
  }
}
