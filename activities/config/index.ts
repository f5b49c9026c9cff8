import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, DEFAULT_CONFIG_DIR, resolveReleaseConfig } from '../../config/loader';
import { EVALUATION_TASK_QUEUE, FailureType } from '../../contract/definitions';
import { POLICY_SECTIONS } from '../gate-policies';
import { resolveDelivery } from '../gitops/delivery-policy';
import { resolveMonitor } from '../monitor/analysis/policy';
import { parseAuthorizedKey, SshSigError } from '../trust/sshsig';
import type { ReleaseConfig, ReleaseRequest } from '../../contract/types';

export interface ConfigActivityDeps {
  configDir?: string;
  /**
   * The task queues the workers serve, which the release schedules its steps on. Default: the queue this activity
   * runs on (the release worker's) and MREL_EVALUATION_TASK_QUEUE, else `evaluation`.
   */
  taskQueues?: { release?: string; evaluation?: string };
  /** How long a step waits for a worker before the release says that no worker polls its queue (default 2 minutes). */
  scheduleToStartTimeout?: string;
}

export function createConfigActivities(deps: ConfigActivityDeps = {}) {
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
        const config = await resolveReleaseConfig(request, POLICY_SECTIONS, configDir);
        checkApproverKeys(config);
        const taskQueues = {
          release: deps.taskQueues?.release ?? Context.current().info.taskQueue,
          evaluation: deps.taskQueues?.evaluation ?? (process.env.MREL_EVALUATION_TASK_QUEUE || EVALUATION_TASK_QUEUE),
        };
        const { scheduleToStartTimeout } = deps;
        // The environment's delivery, resolved for this model: the release renders, syncs and watches by it.
        const delivery = request.model
          ? resolveDelivery(
              {
                delivery: config.gatePolicies.delivery,
                approval: { environments: { [request.environment]: { allowedRoles: config.approval.allowedRoles } } },
              },
              request.environment,
              request.model.name,
              config.policy.file,
            )
          : undefined;
        // The environment's analysis window, templates expanded: the release measures by it after the rollout.
        const monitor = resolveMonitor(
          config.gatePolicies.monitor,
          request.environment,
          config.approval.allowedRoles,
          config.policy.file,
        );
        return {
          ...config,
          taskQueues,
          ...(scheduleToStartTimeout ? { scheduleToStartTimeout } : {}),
          ...(delivery ? { delivery } : {}),
          ...(monitor ? { monitor } : {}),
        };
      } catch (err) {
        if (err instanceof ConfigError) {
          throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig, { problems: err.problems });
        }
        throw err;
      }
    },
  };
}

/**
 * Parses every approver's SSH key as signature checks will: the loader checks their form, this their content (a
 * point on its curve, an RSA modulus of at least 2048 bits), so a bad key fails the release's config, not a decision.
 */
function checkApproverKeys(config: ReleaseConfig): void {
  const problems: string[] = [];
  for (const [id, lines] of Object.entries(config.approverKeys ?? {})) {
    lines.forEach((line, i) => {
      try {
        parseAuthorizedKey(line);
      } catch (err) {
        if (!(err instanceof SshSigError)) throw err;
        problems.push(`approvers.${id}.keys[${i}]: ${err.message}`);
      }
    });
  }
  if (problems.length > 0) throw new ConfigError(config.approversFile.file, problems);
}
