import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, DEFAULT_CONFIG_DIR, resolveReleaseConfig } from '../../config/loader';
import { FailureType } from '../../contract/definitions';
import type { ReleaseConfig, ReleaseRequest } from '../../contract/types';

export function createConfigActivities(deps: { configDir?: string } = {}) {
  const configDir = deps.configDir ?? DEFAULT_CONFIG_DIR;
  return {
    /**
     * Reads the release's policy and config/approvers.yaml and returns them as one snapshot (with content digests)
     * that the workflow keeps in its history. Invalid config is permanent (InvalidConfig); read errors are retried.
     */
    async loadReleaseConfig(
      request: Pick<ReleaseRequest, 'policy' | 'environment'> & { model?: { name: string; version: string } },
    ): Promise<ReleaseConfig> {
      try {
        return await resolveReleaseConfig(request, configDir);
      } catch (err) {
        if (err instanceof ConfigError) {
          throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig, { problems: err.problems });
        }
        throw err;
      }
    },
  };
}
