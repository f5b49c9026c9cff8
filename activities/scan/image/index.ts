/**
 * The image and dependency vulnerability gate's activity: the gate module (./image-gate.ts) through the shared
 * gate adapter, with permanent scan errors mapped to non-retryable failures.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../../contract/definitions';
import type { GateInput, GateResult } from '../../../contract/types';
import { SourceNotAllowedError } from '../../common/source-policy';
import { runGateActivity } from '../../gate/activity';
import type { ArtifactStore } from '../../store/artifact-store';
import { RegistryError, type RegistryErrorCode, type CredentialLookup } from '../../registry';
import { activityContext, throttledHeartbeat } from '../../common/activity-context';
import { ImageScanError, type ImageScanErrorCode } from './errors';
import { imageGate, type ImageGateDeps } from './image-gate';
import { pushScannedImage, type PushImageInput, type PushImageResult, type PushProgress } from './push';

export { decideImageGate, IMAGE_GATE } from './gate';
export { ImageScanError, RegistryUnavailableError } from './errors';
export type { ImageScanErrorCode } from './errors';
export { lockFilesOf, scanImage, SCANNER_VERSION } from './scan';
export type { ImageScanOptions, ImageScanReport, LockFileSource } from './scan';
export { toSarif } from './sarif';
export {
  DOCKER_DAEMON_PREFIX,
  DockerEngineUnavailableError,
  dockerEngineOptions,
  dockerFromEnv,
  isDaemonRef,
} from './docker-engine';
export { pushScannedImage } from './push';
export type { PushImageDeps, PushImageInput, PushImageResult, PushProgress } from './push';

export interface ImageScanDeps extends ImageGateDeps {
  /** Lock files are read from it, the evidence and SBOM are stored in it. */
  store: ArtifactStore;
  /** Credentials for pushImage's target registry (default: the Docker config file). */
  pushCredentials?: CredentialLookup;
  /** Plain-HTTP registries pushImage may push to besides loopback ones. */
  insecureRegistries?: readonly string[];
}

/** Failure types of permanent scan errors. */
const failureTypes: Record<ImageScanErrorCode, string> = {
  InvalidImageRef: FailureType.InvalidRequest,
  ImageNotFound: FailureType.ImageNotFound,
  ImageAccessDenied: FailureType.SourceRejected,
  DigestMismatch: FailureType.DigestMismatch,
  UnsupportedImage: FailureType.UnsupportedSource,
  InvalidConfig: FailureType.InvalidConfig,
};

/** Failure types of permanent registry errors while pushing. */
const registryFailureTypes: Record<RegistryErrorCode, string> = {
  RegistryAccessDenied: FailureType.SourceRejected,
  RegistryNotFound: FailureType.ImageNotFound,
  RegistryRejected: FailureType.SourceRejected,
  RegistryConfigInvalid: FailureType.InvalidConfig,
};

export function createImageScanActivities(deps: ImageScanDeps) {
  const gate = imageGate(deps);
  return {
    /**
     * Scans the release's image (request.image.ref, else the default serving image) and the model repository's lock
     * files for known vulnerabilities, and checks the image config (root user, secrets in env, labels, ports).
     *
     * Pins what it scanned: `metrics.imageDigest`, the annotations `image-digest` / `image-ref` (repo@sha256:…) and
     * `deployment.image` are what the Deployment must run. Stores the full evidence and the CycloneDX 1.6 SBOM (an
     * attachment) by digest; the same digest and advisories give the same bytes. Heartbeats `{ step, phase, layer,
     * bytes }`: give it a heartbeat timeout. An unknown image or tag, a refused pull or an unusable policy is
     * non-retryable; a registry or OSV API that is down is a plain error and retried. Anything left unexamined makes
     * the verdict `error`, never `pass`.
     */
    async scanImage(input: GateInput): Promise<GateResult> {
      try {
        return await runGateActivity(gate, input, deps);
      } catch (err) {
        if (err instanceof SourceNotAllowedError) {
          throw ApplicationFailure.nonRetryable(err.message, FailureType.SourceNotAllowed);
        }
        if (err instanceof ImageScanError) {
          throw ApplicationFailure.nonRetryable(err.message, failureTypes[err.code], {
            ref: input.request.image?.ref,
            code: err.code,
          });
        }
        throw err;
      }
    },

    /**
     * Pushes the local image the gate scanned (`docker-daemon:…`, see PushImageInput) to `target` by digest and
     * returns `target@sha256:<manifest digest>` (PushImageResult.ref), what the Deployment must run. Pushes the
     * engine's export unchanged (config and layers as exported, an OCI manifest built from them) and refuses a source
     * whose image ID is no longer `imageId`. Idempotent: blobs and the manifest the registry holds are not sent again,
     * and a retry returns the same digest. Heartbeats `{ step, blob, bytes }`: give it a heartbeat timeout. A missing
     * local image, a moved tag, refused credentials or a rejected upload are non-retryable; an engine or registry
     * that is down is a plain error and retried.
     */
    async pushImage(input: PushImageInput): Promise<PushImageResult> {
      const context = activityContext();
      const heartbeat = context && throttledHeartbeat<PushProgress>(context, (p) => `${p.step}:${p.blob ?? ''}`);
      try {
        return await pushScannedImage(input, {
          docker: deps.docker,
          credentials: deps.pushCredentials,
          insecureRegistries: deps.insecureRegistries,
          fetch: deps.fetch,
          signal: context?.cancellationSignal,
          onProgress: (p) => heartbeat?.(p),
        });
      } catch (err) {
        if (err instanceof ImageScanError) {
          throw ApplicationFailure.nonRetryable(err.message, failureTypes[err.code], {
            source: input.source,
            target: input.target,
            code: err.code,
          });
        }
        if (err instanceof RegistryError) {
          throw ApplicationFailure.nonRetryable(err.message, registryFailureTypes[err.code], {
            target: input.target,
            code: err.code,
          });
        }
        throw err;
      }
    },
  };
}

export type ImageScanActivities = ReturnType<typeof createImageScanActivities>;

export { checkImageRef, imageGate } from './image-gate';
