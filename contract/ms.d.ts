/**
 * Types of the `ms` package (3.0.0-canary.1): it ships them, but its `exports` map has no `types` condition, so
 * TypeScript's bundler resolution does not find them. Only what contract/duration.ts uses.
 */
declare module 'ms' {
  export type StringValue = string;
  /** Milliseconds of a duration such as `72h` or `2 minutes`; NaN when the text is not one. */
  export default function ms(value: StringValue): number;
}
