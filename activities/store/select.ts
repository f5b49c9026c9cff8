/**
 * Which artifact store a worker uses, from its environment:
 *   MREL_ARTIFACT_STORE   unset or `file`: the filesystem store at MREL_STORE (default `<data dir>/store`);
 *                         `oci://host[:port]/repository`: the registry store, blobs in that repository
 *   MREL_ARTIFACT_CACHE   the registry store's private cache for file readers (default `<data dir>/registry-cache`)
 *   MREL_INSECURE_REGISTRIES  comma-separated hosts spoken to over plain HTTP besides loopback ones
 * Registry credentials come from the Docker config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { dockerCredentialLookup, type RepositoryLocation } from '../registry';
import type { ArtifactStore } from './artifact-store';
import { FilesystemStore } from './filesystem';
import { OciStore } from './oci-store';

const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** The artifact store the environment names; throws an error naming the variable when it is malformed. */
export function artifactStoreFromEnv(env: NodeJS.ProcessEnv, dataDir: string): ArtifactStore {
  const value = env.MREL_ARTIFACT_STORE?.trim() ?? '';
  if (value === '' || value === 'file') {
    return new FilesystemStore(absolute(env.MREL_STORE?.trim() || join(dataDir, 'store')));
  }
  const location = parseOciStoreUrl(value);
  return new OciStore(location, {
    cacheDir: absolute(env.MREL_ARTIFACT_CACHE?.trim() || join(dataDir, 'registry-cache')),
    credentials: dockerCredentialLookup({ env }),
    insecureRegistries: (env.MREL_INSECURE_REGISTRIES ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean),
  });
}

/** Parses `oci://host[:port]/repository`; the error names MREL_ARTIFACT_STORE and never repeats a credential. */
export function parseOciStoreUrl(value: string): RepositoryLocation {
  const problem = (why: string) =>
    new Error(
      `environment variable MREL_ARTIFACT_STORE: ${why}; use "file" (the default) or ` +
        '"oci://host[:port]/repository", e.g. oci://127.0.0.1:5000/modelrelease/store',
    );
  if (!value.startsWith('oci://')) {
    throw problem(`"${value.split(':')[0]?.slice(0, 20) ?? ''}" is not a known store`);
  }
  const rest = value.slice('oci://'.length);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  if (authority.includes('@')) {
    throw problem('credentials do not belong in the store URL: put them in the Docker config file (docker login)');
  }
  if (!HOST.test(authority)) throw problem('the registry must be host or host:port');
  const repository = slash < 0 ? '' : rest.slice(slash + 1);
  if (repository === '') throw problem('the URL names no repository after the registry');
  if (/[@:?#]/.test(repository)) throw problem('the repository may carry no tag, digest or query');
  if (!repository.split('/').every((c) => COMPONENT.test(c))) {
    throw problem(
      `repository "${repository.slice(0, 100)}" must be lower-case letters and digits separated by ".", "_", "-" or "/"`,
    );
  }
  return { registry: authority, repository };
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(path);
}
