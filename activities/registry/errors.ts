/**
 * Failures of registry access with stable codes. Permanent ones (refused credentials, a missing blob or manifest, a
 * rejected upload) cannot be cured by retrying; RegistryUnavailableError (unreachable, 429, 5xx) is worth a retry.
 * Messages name the registry, repository and digest, never a credential.
 */
import { ProductError } from '../../contract/errors';

export type RegistryErrorCode =
  /** The registry or its token service refused the credentials (or anonymous access). */
  | 'RegistryAccessDenied'
  /** The repository, manifest or blob does not exist. */
  | 'RegistryNotFound'
  /** The registry refused what was sent (a manifest or upload it cannot accept). */
  | 'RegistryRejected'
  /** The registry configuration (a store URL, a Docker config file, a credential helper) is unusable. */
  | 'RegistryConfigInvalid';

export class RegistryError extends ProductError {
  readonly permanent = true;
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, { ...options });
  }
}

/** The registry could not be reached or answered 429/5xx: worth retrying. */
export class RegistryUnavailableError extends ProductError {
  readonly code = 'RegistryUnavailable';
  readonly permanent = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options });
  }
}

/** Why a request failed, in a word where Node gives one (ECONNREFUSED, ENOTFOUND). */
export function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}
