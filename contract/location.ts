/** A finding's `location`: `file` or `file:offset`. Apart from types.ts so report writers need no schema library. */
export function location(path: string, offset?: number): string {
  return offset === undefined ? path : `${path}:${offset}`;
}
