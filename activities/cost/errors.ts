/**
 * The cost gate's user-facing failures, each with a stable code. The gate turns them into an `error` or `fail`
 * verdict naming the reason; the CLI maps them to its exit codes.
 */
import { ProductError } from '../../contract/errors';

export type CostErrorCode =
  /** No weight file in the manifest could be read, or a weight header is corrupt. */
  | 'UnreadableModel'
  /** request.traffic is missing, malformed, negative, or its history cannot be used. */
  | 'InvalidTraffic'
  /** The pricing catalog or the policy's cost section is invalid. */
  | 'InvalidConfig'
  /** A Prometheus or CSV source answered, but not with usable data (bad query, 4xx, empty result). */
  | 'InvalidHistory'
  /** Neither a measured nor a declared throughput is usable. */
  | 'NoThroughput';

export class CostError extends ProductError {
  readonly permanent = true;
  constructor(
    readonly code: CostErrorCode,
    message: string,
    /** One line per problem when there are several (e.g. each bad traffic field). */
    readonly problems: string[] = [message],
    options?: { cause?: unknown },
  ) {
    super(message, { ...options, details: { problems } });
  }
}

/** A source (Prometheus) could not be reached or answered 5xx: transient, worth retrying. */
export class SourceUnavailableError extends ProductError {
  readonly code = 'SourceUnavailable';
  readonly permanent = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options });
  }
}
