/**
 * Every activity of the release worker, built from their real clients. The workflow sees only this type.
 */
import { createAcquireActivities } from './acquire';
import { createConfigActivities } from './config';
import { createGitOpsActivities } from './gitops';
import { createLicenseActivities } from './license';
import { createScanActivities } from './scan';

export interface ReleaseActivityDeps {
  configDir?: string;
  storeRoot: string;
  hfEndpoint?: string;
  hfToken?: string;
  gitops: Parameters<typeof createGitOpsActivities>[0];
}

export function createReleaseActivities(deps: ReleaseActivityDeps) {
  return {
    ...createConfigActivities({ configDir: deps.configDir }),
    ...createAcquireActivities({ storeRoot: deps.storeRoot, hfEndpoint: deps.hfEndpoint, hfToken: deps.hfToken }),
    ...createGitOpsActivities(deps.gitops),
    ...createLicenseActivities({ storeRoot: deps.storeRoot }),
    ...createScanActivities({ storeRoot: deps.storeRoot }),
  };
}

export type ReleaseActivities = ReturnType<typeof createReleaseActivities>;
