/**
 * Every activity of the release worker, built from their real clients. The workflow sees only this type.
 */
import { createAcquireActivities } from './acquire';
import type { SourcePolicy } from './common/source-policy';
import { createConfigActivities } from './config';
import { createCostActivities } from './cost';
import { createGitOpsActivities } from './gitops';
import { createLicenseActivities } from './license';
import { createMeasureActivities, createMonitorActivities, type MonitorDeps } from './monitor';
import { createNotifyActivities, type NotifyDeps } from './notify';
import { createScanActivities } from './scan';
import { createImageScanActivities } from './scan/image';
import type { ArtifactStore } from './store/artifact-store';
import { verifyDecision, type DecisionToVerify, type DecisionVerdict } from './trust/verify-decision';
import { FilesystemStore } from './store/filesystem';

export interface ReleaseActivityDeps {
  configDir?: string;
  /** The artifact store; a filesystem store at `storeRoot` when not given. */
  store?: ArtifactStore;
  storeRoot: string;
  hfEndpoint?: string;
  hfToken?: string;
  /** Where model sources may come from (loadSourcePolicy); config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
  /** PEM certificates trusted for https model sources besides the bundled roots (MREL_SOURCE_CA_FILE). */
  sourceCa?: string;
  gitops: Parameters<typeof createGitOpsActivities>[0];
  /** The hardware price catalog; default config/pricing.yaml. */
  pricingFile?: string;
  /** Base directory for a relative `image.advisoryDir` (default: the worker's working directory). */
  advisoryBaseDir?: string;
  /** Where notification links point (the Temporal UI) and the namespace. */
  notify?: NotifyDeps;
  /** The task queues the release schedules its steps on, and how long a step waits for a worker (config activity). */
  taskQueues?: { release?: string; evaluation?: string };
  scheduleToStartTimeout?: string;
  /** The cluster the rollout watch follows; from MREL_KUBECONFIG, KUBECONFIG or in-cluster when not given. */
  monitor?: MonitorDeps;
  /** The model servers' inference log (MREL_INFERENCE_LOG_DIR), which the drift and bias metrics read. */
  inferenceLogDir?: string;
}

export function createReleaseActivities(deps: ReleaseActivityDeps) {
  const store = deps.store ?? new FilesystemStore(deps.storeRoot);
  return {
    ...createConfigActivities({
      configDir: deps.configDir,
      taskQueues: deps.taskQueues,
      scheduleToStartTimeout: deps.scheduleToStartTimeout,
    }),
    ...createAcquireActivities({
      store,
      hfEndpoint: deps.hfEndpoint,
      hfToken: deps.hfToken,
      sourcePolicy: deps.sourcePolicy,
      sourceCa: deps.sourceCa,
    }),
    ...createGitOpsActivities({ store, ...deps.gitops }),
    ...createLicenseActivities({ store }),
    ...createScanActivities({ store }),
    ...createImageScanActivities({
      store,
      baseDir: deps.advisoryBaseDir,
      sourcePolicy: deps.sourcePolicy,
    }),
    ...createCostActivities({
      store,
      pricingFile: deps.pricingFile,
      sourcePolicy: deps.sourcePolicy,
    }),
    ...createMonitorActivities({
      repository: { repoUrl: deps.gitops.repoUrl, branch: deps.gitops.branch, workRoot: deps.gitops.workRoot },
      ...deps.monitor,
    }),
    // A monitor policy's Prometheus address is held to the same hosts and networks as a request's Prometheus.
    ...createMeasureActivities({ store, inferenceLogDir: deps.inferenceLogDir, sourcePolicy: deps.sourcePolicy }),
    ...createNotifyActivities(deps.notify ?? { uiUrl: 'http://localhost:8233', namespace: 'default' }),
    /**
     * A decision's SSH signature against the approver's keys (a local activity of the release's decision handlers):
     * pure apart from `now`, which the workflow passes, so the verdict in history is what an audit reaches again.
     */
    async verifyDecision(input: Omit<DecisionToVerify, 'now'> & { now: string }): Promise<DecisionVerdict> {
      return verifyDecision({ ...input, now: new Date(input.now) });
    },
  };
}

export type ReleaseActivities = ReturnType<typeof createReleaseActivities>;
