/**
 * Turns zod issues into field-named problem lines. Kept apart from the loader so that policy modules the loader
 * checks can use it without importing the loader back.
 */
import type { z } from 'zod';

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(top level)';
}

/** One line per zod issue: `field.path message`. */
export function zodProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${formatPath(issue.path)} ${issue.message}`);
}
