/**
 * The one way a validation failure becomes problem lines: `field.path[2].name: what to do`. Every door (config files,
 * the start API, the CLI, policy sections, environment variables) words its problems the same way, so a user who
 * learnt to read one can read them all. Structural types only: zod and zod/mini errors both fit.
 */

/** The part of a zod issue a problem line needs. */
export interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** `a.b[2].c`, with `prefix` (itself a path such as `cost` or `request.traffic`) in front; `(top level)` when empty. */
export function problemPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(top level)';
}

/** One line per issue: `a.b[2].c: message`. */
export function zodProblems(error: { readonly issues: readonly IssueLike[] }, prefix = ''): string[] {
  return error.issues.map((issue) => `${problemPath(issue.path, prefix)}: ${issue.message}`);
}
