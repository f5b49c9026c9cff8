/**
 * The base of every user-facing failure. One shape everywhere: a stable `code` that the CLI maps to an exit code and
 * an activity adapter to a failure type, whether retrying the same input can ever help (`permanent`), and the
 * machine-readable facts behind the message (`details`), which travel as failure details and never hold file
 * content or secrets. No Temporal here: domain code throws these and adapters translate them.
 */
export interface ProductErrorOptions {
  cause?: unknown;
  details?: Readonly<Record<string, unknown>>;
}

export abstract class ProductError extends Error {
  abstract readonly code: string;
  abstract readonly permanent: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(message: string, options: ProductErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.details = options.details ?? {};
  }
}
