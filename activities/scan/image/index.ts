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
import { ImageScanError, type ImageScanErrorCode } from './errors';
import { imageGate, type ImageGateDeps } from './image-gate';

export { decideImageGate, IMAGE_GATE } from './gate';
export { ImageScanError, RegistryUnavailableError } from './errors';
export type { ImageScanErrorCode } from './errors';
export { lockFilesOf, scanImage, SCANNER_VERSION } from './scan';
export type { ImageScanOptions, ImageScanReport, LockFileSource } from './scan';
export { toSarif } from './sarif';

export interface ImageScanDeps extends ImageGateDeps {
  /** Lock files are read from it, the evidence and SBOM are stored in it. */
  store: ArtifactStore;
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
  };
}

export type ImageScanActivities = ReturnType<typeof createImageScanActivities>;

export { checkImageRef, imageGate } from './image-gate';
