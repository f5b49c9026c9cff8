/**
 * Errors of the image scan with stable codes. The activity maps the permanent ones to non-retryable failures; the
 * CLI maps them to exit codes. Anything else (network, 5xx, a daemon that is down) stays a plain Error: transient.
 */

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
export class ImageScanError extends Error {
  constructor(
    readonly code: ImageScanErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImageScanError';
  }
}

/** The registry could not be reached or answered 5xx/429: worth retrying. */
export class RegistryUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryUnavailableError';
  }
}
