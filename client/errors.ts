/**
 * The start API's user-facing errors, one class with a stable code the CLI maps to an exit code. Kept apart from the
 * Temporal client so the CLI can name them without loading it.
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
