/**
 * Failures of the acquire stage. Each permanent failure has its own class with a stable `code`, which the activity
 * wrapper maps onto the FailureType of the same name; anything else (SourceUnavailableError, I/O errors) is transient.
 * This file knows nothing of Temporal so the domain code can run and be tested on its own.
 */
import { ProductError } from '../../contract/errors';
import { zodProblems, type IssueLike } from '../../contract/problems';

export type AcquireErrorCode =
  | 'InvalidRequest'
  | 'DigestMismatch'
  | 'UnsafePath'
  | 'EmptyModel'
  | 'SourceNotFound'
  | 'SourceRejected'
  | 'UnsupportedSource';

/** A permanent failure: retrying the same request cannot succeed. */
export abstract class AcquireError extends ProductError {
  abstract override readonly code: AcquireErrorCode;
  readonly permanent = true;
  /** Machine-readable facts behind the message (file path, digests, URL, status), passed on as failure details. */
  declare readonly details: Record<string, string | number>;

  constructor(message: string, details: Record<string, string | number> = {}, options?: ErrorOptions) {
    super(message, { ...options, details });
  }
}

export class InvalidRequestError extends AcquireError {
  readonly code = 'InvalidRequest';
}

export class DigestMismatchError extends AcquireError {
  readonly code = 'DigestMismatch';

  constructor(
    readonly path: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch for ${path}: expected sha256 ${expected}, got ${actual}`, { path, expected, actual });
  }
}

export class UnsafePathError extends AcquireError {
  readonly code = 'UnsafePath';
}

export class EmptyModelError extends AcquireError {
  readonly code = 'EmptyModel';
}

export class SourceNotFoundError extends AcquireError {
  readonly code = 'SourceNotFound';
}

export class SourceRejectedError extends AcquireError {
  readonly code = 'SourceRejected';
}

export class UnsupportedSourceError extends AcquireError {
  readonly code = 'UnsupportedSource';
}

/** A transient failure (5xx, network, truncated transfer): worth retrying, so deliberately not an AcquireError. */
export class SourceUnavailableError extends ProductError {
  readonly code = 'SourceUnavailable';
  readonly permanent = false;
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options });
  }
}

/** Validation issues as one line that names each field: `model.version: use letters, digits, ...`. */
export function formatIssues(issues: readonly IssueLike[], root: string): string {
  return zodProblems({ issues }, root).join('; ');
}
