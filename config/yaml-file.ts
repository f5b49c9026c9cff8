/**
 * Reading one YAML file of config/: the file's name in every error, its digest, and no alias bombs. Apart from the
 * schemas (loader.ts) so that a command that reads one policy section does not build every config schema at start.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { ProductError } from '../contract/errors';

/** The repository's config/ directory; MREL_CONFIG_DIR overrides it. */
export const DEFAULT_CONFIG_DIR = process.env.MREL_CONFIG_DIR ?? fileURLToPath(new URL('.', import.meta.url));

/** Invalid configuration: permanent until someone fixes the file, so never retried. */
export class ConfigError extends ProductError {
  readonly code = 'INVALID_CONFIG';
  readonly permanent = true;
  constructor(
    readonly file: string,
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'), { ...options, details: { file, problems } });
  }
}

export interface LoadedYaml {
  file: string;
  data: unknown;
  digest: string;
}

/**
 * Reads and parses one YAML file, naming it `file` in every error. `whatToDo` follows "not found" (empty: the
 * caller treats a missing file as absent).
 */
export async function readYamlFile(path: string, file: string, whatToDo: string): Promise<LoadedYaml> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(file, [`not found; ${whatToDo}`], { cause: err });
    }
    throw new ConfigError(file, [`cannot be read: ${(err as Error).message}`], { cause: err });
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `is not valid YAML: ${e.message.split('\n')[0]}`),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // toJS refuses to expand aliases past a bound (a "billion laughs" document): that is invalid YAML for us too.
    throw new ConfigError(file, [`is not valid YAML: ${(err as Error).message.split('\n')[0]}`], { cause: err });
  }
  return { file, data, digest: createHash('sha256').update(text).digest('hex') };
}

export function displayPath(configDir: string, path: string): string {
  const rel = relative(join(configDir, '..'), path);
  return rel.startsWith('..') ? path : rel;
}

/**
 * Reads a policy named by `ref`: a name (config/policies/<name>.yaml, checked as a name) or the path of a YAML file
 * anywhere (`mrel scan --policy ./strict.yaml`, to try a policy before it is committed; named by its base name).
 */
export async function readPolicyYaml(
  ref: string,
  configDir = DEFAULT_CONFIG_DIR,
  asFile = /[\\/]/.test(ref) || /\.ya?ml$/i.test(ref),
): Promise<{ name: string; loaded: LoadedYaml }> {
  if (asFile) {
    const path = resolve(ref);
    return {
      name: basename(ref).replace(/\.ya?ml$/, ''),
      loaded: await readYamlFile(path, displayPath(configDir, path), 'give the path of a policy YAML file'),
    };
  }
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(ref)) {
    throw new ConfigError(`policies/${ref}.yaml`, [`"${ref}" is not a policy name (lower-case, digits, "-", "_")`]);
  }
  const path = join(configDir, 'policies', `${ref}.yaml`);
  return {
    name: ref,
    loaded: await readYamlFile(
      path,
      displayPath(configDir, path),
      `the request names policy "${ref}"; create config/policies/${ref}.yaml or name an existing policy`,
    ),
  };
}
