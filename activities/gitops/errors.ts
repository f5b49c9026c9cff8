/**
 * What can go wrong while publishing to the GitOps repository, as classes the activity wrapper maps to retryable or
 * non-retryable failures. Plain `Error`s: this file knows nothing of Temporal.
 */

/** The remote refused the push for a reason a retry will not change (a hook, a protected branch). */
export class GitOpsRejectedError extends Error {
  override readonly name = 'GitOpsRejectedError';
}

/** The remote could not be read or written (missing, unreachable, refused the connection); worth retrying. */
export class GitRemoteUnavailableError extends Error {
  override readonly name = 'GitRemoteUnavailableError';
}

/** Other writers kept moving the branch for every attempt; worth retrying later. */
export class GitPushConflictError extends Error {
  override readonly name = 'GitPushConflictError';
}

/** A rendered path would land outside the work tree. */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}
