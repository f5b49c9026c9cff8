/**
 * What can go wrong while publishing to the GitOps repository, as classes the activity wrapper maps to retryable or
 * non-retryable failures. This file knows nothing of Temporal.
 */
import { ProductError } from '../../contract/errors';

/** The remote refused the push for a reason a retry will not change (a hook, a protected branch). */
export class GitOpsRejectedError extends ProductError {
  readonly code = 'GitOpsRejected';
  readonly permanent = true;
}

/** The remote could not be read or written (missing, unreachable, refused the connection); worth retrying. */
export class GitRemoteUnavailableError extends ProductError {
  readonly code = 'GitRemoteUnavailable';
  readonly permanent = false;
}

/** Other writers kept moving the branch for every attempt; worth retrying later. */
export class GitPushConflictError extends ProductError {
  readonly code = 'GitPushConflict';
  readonly permanent = false;
}

/** A rendered path would land outside the work tree. */
export class UnsafePathError extends ProductError {
  readonly code = 'UnsafePath';
  readonly permanent = true;
}

/** Reverting the release's commit conflicts with later changes to the same lines: a person must resolve it. */
export class RevertConflictError extends ProductError {
  readonly code = 'RevertConflict';
  readonly permanent = true;
}

/** The commit to revert is not on the branch (never pushed there, or the branch was rewritten). */
export class ReleaseCommitNotFoundError extends ProductError {
  readonly code = 'ReleaseCommitNotFound';
  readonly permanent = true;
}
