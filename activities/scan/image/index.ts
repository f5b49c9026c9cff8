/**
 * The image and dependency vulnerability gate as a Temporal activity: the pure scan in ./scan, the decision in
 * ./gate, evidence in the store, heartbeats while layers stream, and errors mapped to what Temporal should do.
 */
import { activityContext, throttledHeartbeat } from '../../common/activity-context';
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { describeImagePolicyError, parseImagePolicy, type ImagePolicy } from '../../../config/policy-image';
import { FailureType } from '../../../contract/definitions';
import type { GateInput, GateResult } from '../../../contract/types';
import { loadSourcePolicy } from '../../../config/loader';
import { writeEvidence } from '../../common/gate-kit';
import { checkUrl, policyFetch, SourceNotAllowedError, type SourcePolicy } from '../../common/source-policy';
import { storePath } from '../../acquire';
import { ImageScanError, type ImageScanErrorCode } from './errors';
import { decideImageGate, IMAGE_GATE, MAX_RESULT_FINDINGS } from './gate';
import { parseImageRef, registryHost, type ImageRef } from './reference';
import { lockFilesOf, scanImage, type ImageScanProgress } from './scan';

export { decideImageGate, IMAGE_GATE, MAX_RESULT_FINDINGS } from './gate';
export { ImageScanError, RegistryUnavailableError } from './errors';
export type { ImageScanErrorCode } from './errors';
export { lockFilesOf, scanImage, SCANNER_VERSION } from './scan';
export type { ImageScanOptions, ImageScanReport, LockFileSource } from './scan';
export { toSarif } from './sarif';

export interface ImageScanDeps {
  /** Root of the content-addressed store: lock files are read from it, evidence is written to it. */
  storeRoot: string;
  /** Base for a relative `image.advisoryDir` (default: the worker's working directory). */
  baseDir?: string;
  /** The image scanned when a request names none (the worker's MREL_SERVING_IMAGE). */
  defaultImage?: string;
  /** Basic credentials per registry host. */
  registryCredentials?: Record<string, { username: string; password: string }>;
  /** fetch for the registry and the OSV API. */
  fetch?: typeof fetch;
  /**
   * Where a request's image may be pulled from (hosts and networks of config/sources.yaml, MREL_SOURCE_* when not
   * given). The worker's own default image is the operator's choice and is not checked.
   */
  sourcePolicy?: SourcePolicy;
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

const HEARTBEAT_INTERVAL_MS = 1_000;

export function createImageScanActivities(deps: ImageScanDeps) {
  return {
    /**
     * Scans the release's image (request.image.ref, else the default serving image) and the model repository's lock
     * files for known vulnerabilities, and checks the image config (root user, secrets in env, labels, ports).
     *
     * Pins what it scanned: `metrics.imageDigest` and the annotations `image-digest` / `image-ref` (repo@sha256:…)
     * are what the Deployment must run. Writes `evidence/<release>/image.json` (the full report and findings) and
     * `image.cdx.json` (the CycloneDX 1.6 SBOM). Idempotent (evidence is rewritten with the same content for the
     * same digest and advisories). Heartbeats `{ phase, layer, bytes }`: give it a heartbeat timeout. An unknown
     * image or tag, a refused pull or an unusable policy is non-retryable; a registry or OSV API that is down is a
     * plain error and retried. Anything left unexamined makes the verdict `error`, never `pass`.
     */
    async scanImage(input: GateInput): Promise<GateResult> {
      const context = activityContext();
      const startedAt = new Date().toISOString();
      let policy: ImagePolicy;
      try {
        policy = parseImagePolicy(input.policy);
      } catch (err) {
        const lines = err instanceof z.ZodError ? describeImagePolicyError(err) : [String(err)];
        throw ApplicationFailure.nonRetryable(`policy ${lines.join('; ')}`, FailureType.InvalidConfig);
      }
      const storeRoot = deps.storeRoot ?? input.manifest.storeRoot;
      const ref = input.request.image?.ref ?? deps.defaultImage;
      if (!ref) {
        return {
          gate: IMAGE_GATE,
          verdict: 'error',
          summary: 'no image to scan: the request names no image.ref and the worker has no default serving image',
          metrics: {},
          findings: [],
          startedAt,
          finishedAt: new Date().toISOString(),
        };
      }
      let registryFetch = deps.fetch;
      const requested = input.request.image?.ref;
      if (requested !== undefined) {
        const sources = deps.sourcePolicy ?? (await loadSourcePolicy());
        try {
          await checkImageRef(requested, sources);
        } catch (err) {
          if (err instanceof SourceNotAllowedError) {
            throw ApplicationFailure.nonRetryable(err.message, FailureType.SourceNotAllowed);
          }
          throw err;
        }
        // Token realms and blob redirects come from the registry's answers: each connection is checked too.
        registryFetch = policyFetch(sources, 'image.ref', deps.fetch);
      }
      const lockFiles = lockFilesOf(input.manifest.files).map((f) => ({
        path: f.path,
        read: () => readFile(storePath(input.manifest.storeRoot, f.sha256)),
      }));
      try {
        const report = await scanImage(ref, {
          policy,
          baseDir: deps.baseDir,
          lockFiles,
          registry: { fetch: registryFetch, credentials: deps.registryCredentials },
          fetch: deps.fetch,
          signal: context?.cancellationSignal,
          onProgress: context && throttledHeartbeat<ImageScanProgress>(context, (p) => p.phase, HEARTBEAT_INTERVAL_MS),
        });
        const now = new Date().toISOString();
        const decision = decideImageGate(report, policy, input.waivers, now);
        const { sbom, ...rest } = report;
        const sbomPath = await writeEvidence(storeRoot, input.releaseId, `${IMAGE_GATE}.cdx`, sbom);
        const evidence = await writeEvidence(storeRoot, input.releaseId, IMAGE_GATE, {
          gate: IMAGE_GATE,
          policy,
          verdict: decision.verdict,
          summary: decision.summary,
          findings: decision.findings,
          report: rest,
          sbom: sbomPath,
        });
        return {
          gate: IMAGE_GATE,
          verdict: decision.verdict,
          summary: decision.summary,
          metrics: { ...decision.metrics, sbom: sbomPath },
          findings: decision.findings.slice(0, MAX_RESULT_FINDINGS),
          evidence,
          annotations: decision.annotations,
          // What runs is what was scanned: the Deployment pins the image by the digest resolved here.
          ...(decision.annotations['image-ref'] ? { deployment: { image: decision.annotations['image-ref'] } } : {}),
          startedAt,
          finishedAt: new Date().toISOString(),
        };
      } catch (err) {
        if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason ?? err;
        if (err instanceof ImageScanError) {
          throw ApplicationFailure.nonRetryable(err.message, failureTypes[err.code], { ref, code: err.code });
        }
        throw err;
      }
    },
  };
}

export type ImageScanActivities = ReturnType<typeof createImageScanActivities>;

/**
 * Refuses an image whose registry the source policy does not allow (its host on the hosts list, its addresses public
 * or on the networks list). A reference that does not parse is left to the scan, which names what is wrong with it.
 */
export async function checkImageRef(ref: string, policy: SourcePolicy): Promise<void> {
  let parsed: ImageRef;
  try {
    parsed = parseImageRef(ref);
  } catch {
    return;
  }
  await checkUrl(`https://${registryHost(parsed)}/`, policy, 'image.ref');
}
