/**
 * A metric's `successCondition` and `failureCondition`, evaluated as Argo Rollouts evaluates them, in CEL (the Common
 * Expression Language, @marcbachmann/cel-js) rather than Argo's `expr`: a non-Turing-complete language with no access
 * to anything but `result`, so a policy can never run code on a worker.
 *
 * What Argo users will notice:
 * - `result` is the provider's result: a number (a Prometheus scalar), a list of numbers (a vector, `result[0]`), or
 *   a map (drift and bias: `result.datasetDrift`, `result.metrics.demographicParityDifference.breached`).
 * - Argo's `len(x)`, `isNaN(x)`, `isInf(x)` and `default(x, d)` exist as functions; CEL's own `size(x)` works too.
 *   `default` replaces null only: a field that is absent is an error in CEL, written `has(result.x) ? result.x : d`.
 * - Numbers compare across int and double (`result[0] <= 1` works); a NaN compares false with everything.
 * - `&&` and `||` are CEL's: `false && <error>` is false, so `len(result) > 0 && result[0] < 1.0` is safe on `[]`.
 * - Argo's `all(result, {# > 1})` is `result.all(x, x > 1)`; `any` is `result.exists(x, …)`.
 */
import { Environment, type ParseError } from '@marcbachmann/cel-js';
import type { MeasurementPhase } from '../../../contract/monitoring';

/** Longest condition accepted: conditions are one-liners, and the limit bounds the parse. */
export const MAX_CONDITION_CHARS = 1024;

function length(value: unknown): bigint {
  if (Array.isArray(value) || typeof value === 'string') return BigInt(value.length);
  if (value instanceof Map || value instanceof Set) return BigInt(value.size);
  if (value instanceof Uint8Array) return BigInt(value.length);
  if (value !== null && typeof value === 'object') return BigInt(Object.keys(value).length);
  throw new TypeError('len() takes a list, a map or a string');
}

const environment = new Environment({
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 500, maxDepth: 50, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
})
  .registerVariable('result', 'dyn')
  .registerFunction('len(dyn): int', length)
  .registerFunction('isNaN(dyn): bool', (x: unknown) => typeof x === 'number' && Number.isNaN(x))
  .registerFunction('isInf(dyn): bool', (x: unknown) => x === Infinity || x === -Infinity)
  .registerFunction('default(dyn, dyn): dyn', (x: unknown, fallback: unknown) => x ?? fallback);

type Compiled = ReturnType<typeof environment.parse>;

const cache = new Map<string, Compiled>();

/** The first line of a CEL error and where it points, without the expression itself. */
function describe(err: unknown): string {
  const error = err as Partial<ParseError> & { message?: string };
  const first = String(error.message ?? err).split('\n')[0] ?? 'invalid expression';
  const column = (error as { range?: { start?: number } }).range?.start;
  return typeof column === 'number' ? `${first} (at character ${column + 1})` : first;
}

/** Parses and type-checks a condition; throws an Error whose message says what is wrong (not the expression). */
export function compileCondition(text: string): Compiled {
  const known = cache.get(text);
  if (known) return known;
  if (text.trim() === '') throw new Error('is empty; write an expression over result, e.g. result[0] >= 0.95');
  if (text.length > MAX_CONDITION_CHARS) throw new Error(`must be at most ${MAX_CONDITION_CHARS} characters`);
  let compiled: Compiled;
  try {
    compiled = environment.parse(text);
  } catch (err) {
    throw new Error(`does not parse: ${describe(err)}`);
  }
  const checked = compiled.check();
  if (!checked.valid) throw new Error(`does not type-check: ${describe(checked.error)}`);
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new Error(`gives ${checked.type}, not true or false; compare the result, e.g. result[0] >= 0.95`);
  }
  if (cache.size > 1000) cache.clear();
  cache.set(text, compiled);
  return compiled;
}

/** Why a condition cannot be used (for config checks), or undefined when it compiles. */
export function conditionProblem(text: string): string | undefined {
  try {
    compileCondition(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface Conditions {
  successCondition?: string;
  failureCondition?: string;
}

export interface ConditionOutcome {
  phase: MeasurementPhase;
  /** Which condition decided, or what went wrong. */
  message?: string;
}

function evaluate(field: keyof Conditions, text: string, result: unknown): boolean {
  let value: unknown;
  try {
    value = compileCondition(text)({ result });
  } catch (err) {
    throw new Error(`${field}: ${describe(err)}`);
  }
  if (typeof value !== 'boolean') throw new Error(`${field} gave ${typeof value}, not true or false`);
  return value;
}

/**
 * Argo Rollouts' EvaluateResult: both conditions are evaluated (an error in either is an Error measurement); a true
 * failureCondition fails; without a failureCondition a false successCondition fails, without a successCondition a
 * false failureCondition succeeds; with both and neither true the measurement is Inconclusive; with neither it
 * succeeds.
 */
export function evaluateConditions(conditions: Conditions, result: unknown): ConditionOutcome {
  const { successCondition, failureCondition } = conditions;
  let success = false;
  let failure = false;
  try {
    if (successCondition !== undefined) success = evaluate('successCondition', successCondition, result);
    if (failureCondition !== undefined) failure = evaluate('failureCondition', failureCondition, result);
  } catch (err) {
    return { phase: 'Error', message: (err as Error).message };
  }
  if (successCondition === undefined && failureCondition === undefined) return { phase: 'Successful' };
  if (failure) return { phase: 'Failed', message: 'failureCondition is true' };
  if (failureCondition === undefined && !success) return { phase: 'Failed', message: 'successCondition is false' };
  if (successCondition !== undefined && !success) {
    return { phase: 'Inconclusive', message: 'neither successCondition nor failureCondition is true' };
  }
  return { phase: 'Successful' };
}
