import { UnsafePathError } from './errors';

/**
 * Refuse a manifest path that could name anything outside the model root, or that has two spellings.
 * Manifest paths end up as file names in later stages (scanners, images, GitOps evidence), so they must be plain,
 * normalised, relative paths with forward slashes: one spelling per file keeps the manifest digest meaningful.
 *
 * @param origin where the path came from, for the message (e.g. `hf://org/repo sibling`)
 */
export function assertSafeRelativePath(path: string, origin: string): void {
  const refuse = (why: string): never => {
    throw new UnsafePathError(`${origin} ${JSON.stringify(path)} is refused: ${why}`, { path, origin });
  };
  if (path.length === 0) refuse('the path is empty');
  if (path.includes('\0')) refuse('it contains a NUL byte');
  if (path.includes('\\')) refuse('it contains a backslash (use forward slashes)');
  if (path.startsWith('/')) refuse('it is absolute (paths are relative to the model root)');
  for (const segment of path.split('/')) {
    if (segment === '..') refuse('it has a ".." segment that would escape the model root');
    if (segment === '.' || segment === '') refuse('it is not normalised (no ".", empty segments or trailing "/")');
  }
}
