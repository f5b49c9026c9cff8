/**
 * One duration grammar for the whole product: the one Temporal uses for its own durations (the `ms` package:
 * `90s`, `30m`, `72h`, `7d`, `2w`, `1.5h`, `2 minutes`). Policies, traffic profiles, settings and activity options
 * all read durations through here, so a value that works in one place works in every other. `ms` at the exact
 * version @temporalio/common pins, not Temporal's own helper: loading @temporalio/common would cost every `mrel`
 * command ~50 ms at start.
 */
import ms from 'ms';
import { z } from 'zod';

const EXAMPLES = 'such as 90s, 30m, 72h, 7d or 2w';

/** Milliseconds, or undefined when `text` is not a positive duration in Temporal's grammar. */
export function parseDuration(text: string): number | undefined {
  if (text.length > 32) return undefined;
  let value: number | undefined;
  try {
    value = ms(text);
  } catch {
    return undefined;
  }
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
}

/** Milliseconds of a duration already validated (throws with the accepted forms otherwise). */
export function durationMs(text: string): number {
  const value = parseDuration(text);
  if (value === undefined) throw new RangeError(`${JSON.stringify(text.slice(0, 32))} is not a duration ${EXAMPLES}`);
  return value;
}

/** A positive duration string, bounded, with the accepted forms in the message. */
export const durationSchema = z
  .string()
  .max(32, `must be at most 32 characters (a duration ${EXAMPLES})`)
  .refine((text) => parseDuration(text) !== undefined, { message: `must be a positive duration ${EXAMPLES}` });
