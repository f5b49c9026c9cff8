/**
 * Errors of the image scan with stable codes. The activity maps the permanent ones to non-retryable failures; the
 * CLI maps them to exit codes. Anything else (network, 5xx, a daemon that is down) is transient.
 */
import { ProductError } from '../../../contract/errors';

export type ImageScanErrorCode =
  /** The reference is not a valid image reference. */
  | 'InvalidImageRef'
  /** The registry answered that the repository, tag or digest does not exist. */
  | 'ImageNotFound'
  /** The registry refused our credentials (or anonymous access). */
  | 'ImageAccessDenied'
  /** A manifest or blob did not hash to the digest it was fetched by. */
  | 'DigestMismatch'
  /** The manifest is of a kind this gate cannot read (e.g. Docker schema 1, no platform match). */
  | 'UnsupportedImage'
  /** The gate's configuration is unusable (missing advisory directory, bad trivy path). */
  | 'InvalidConfig';

/** A permanent image-scan failure: retrying will not change the answer. */
export class ImageScanError extends ProductError {
  readonly permanent = true;
  constructor(
    readonly code: ImageScanErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, { ...options });
  }
}

/** The registry could not be reached or answered 5xx/429: worth retrying (the shared registry client's error). */
export { RegistryUnavailableError } from '../../registry/errors';
