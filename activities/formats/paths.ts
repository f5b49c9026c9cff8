/**
 * Model-relative paths: where a reference inside one model file (a TF.js shard, ONNX external data) points, and
 * whether it stays in the model.
 */
import { posix } from 'node:path';

/**
 * Resolves `reference` against the directory of `fromPath` (both model-relative, forward slashes). Undefined when
 * it is absolute, a URL, or climbs out of the model directory.
 */
export function resolveInside(fromPath: string, reference: string): string | undefined {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(reference) || reference.startsWith('/') || reference.startsWith('\\'))
    return undefined;
  const base = fromPath.includes('!') ? fromPath.slice(fromPath.lastIndexOf('!') + 1) : fromPath;
  const joined = posix.normalize(posix.join(posix.dirname(base), reference.replace(/\\/g, '/')));
  if (joined === '..' || joined.startsWith('../') || joined.startsWith('/')) return undefined;
  return joined;
}
