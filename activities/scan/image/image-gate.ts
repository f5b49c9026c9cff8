/**
 * The image and dependency gate on the gate contract: scans the release's image (request.image.ref, else the
 * worker's default serving image) and the model repository's lock files for known vulnerabilities, checks the image
 * config, and pins what it scanned (the Deployment runs `repo@sha256:…`). The SBOM is an attachment of the evidence.
 */
import type Docker from 'dockerode';
import { z } from 'zod';
import { loadSourcePolicy } from '../../../config/loader';
import { checkUrl, policyFetch, type SourcePolicy } from '../../common/source-policy';
import { CannotDecide, defineGate, InvalidPolicy, type Gate } from '../../gate/gate';
import { isDaemonRef } from './docker-engine';
import { decideImageGate, IMAGE_GATE } from './gate';
import { describeImagePolicyError, parseImagePolicy, type ImagePolicy } from './policy';
import { parseImageRef, registryHost, type ImageRef } from './reference';
import { lockFilesOf, scanImage, type ImageScanProgress, type ImageScanReport } from './scan';

export interface ImageGateDeps {
  /** Base for a relative `image.advisoryDir` (default: the worker's working directory). */
  baseDir?: string;
  /** The image scanned when a request names none (the worker's MREL_SERVING_IMAGE). */
  defaultImage?: string;
  /** Basic credentials per registry host. */
  registryCredentials?: Record<string, { username: string; password: string }>;
  /** fetch for the registry and the OSV API. */
  fetch?: typeof fetch;
  /** Where a request's image may be pulled from; config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
  /** The engine `docker-daemon:` images are read from (default: the one DOCKER_HOST names). */
  docker?: Docker;
}

export function imageGate(deps: ImageGateDeps): Gate<ImagePolicy, ImageScanReport> {
  return defineGate<ImagePolicy, ImageScanReport>({
    name: IMAGE_GATE,
    section: 'image',
    activity: 'scanImage',
    queue: 'release',
    when: (request) => request.image !== undefined,
    parsePolicy(section, file) {
      try {
        return parseImagePolicy(section);
      } catch (err) {
        throw new InvalidPolicy(
          file,
          'image',
          err instanceof z.ZodError ? describeImagePolicyError(err) : [String(err)],
        );
      }
    },
    async run(ctx) {
      const ref = ctx.request.image?.ref ?? deps.defaultImage;
      if (!ref) {
        throw new CannotDecide(
          'image.no-image',
          'no image to scan: the request names no image.ref and the worker has no default serving image',
        );
      }
      let registryFetch = deps.fetch;
      const requested = ctx.request.image?.ref;
      if (requested !== undefined) {
        const sources = deps.sourcePolicy ?? (await loadSourcePolicy());
        await checkImageRef(requested, sources);
        // Token realms and blob redirects come from the registry's answers: each connection is checked too.
        registryFetch = policyFetch(sources, 'image.ref', deps.fetch);
      }
      const lockFiles = lockFilesOf(ctx.manifest.files).map((f) => ({
        path: f.path,
        read: () => ctx.store.read(f.sha256, 64 * 1024 * 1024),
      }));
      return scanImage(ref, {
        policy: ctx.policy,
        baseDir: deps.baseDir,
        lockFiles,
        registry: { fetch: registryFetch, credentials: deps.registryCredentials },
        docker: deps.docker,
        fetch: deps.fetch,
        signal: ctx.signal,
        onProgress: (p: ImageScanProgress) => ctx.progress({ ...p, step: p.phase }),
      });
    },
    judge(report, policy, ctx) {
      const decision = decideImageGate(report, policy, ctx.waivers, ctx.now);
      const { sbom, ...rest } = report;
      return {
        verdict: decision.verdict,
        summary: decision.summary,
        findings: decision.findings,
        metrics: decision.metrics,
        evidence: rest,
        annotations: decision.annotations,
        // What runs is what was scanned: the Deployment pins the image by the digest resolved here. A local engine's
        // image runs only once pushImage has pushed it by digest: that digest is the Deployment's.
        ...(decision.annotations['image-ref'] && report.image.transport !== 'docker-daemon'
          ? { deployment: { image: decision.annotations['image-ref'] } }
          : {}),
        attachments: [{ name: 'sbom.cdx.json', data: sbom }],
      };
    },
  });
}

/**
 * Refuses an image whose registry the source policy does not allow (its host on the hosts list, its addresses public
 * or on the networks list); a local engine's image (`docker-daemon:`) has no registry to check. A reference that
 * does not parse is left to the scan, which names what is wrong with it.
 */
export async function checkImageRef(ref: string, policy: SourcePolicy): Promise<void> {
  // The local engine is no network source: DOCKER_HOST is checked when the engine is reached (loopback only).
  if (isDaemonRef(ref)) return;
  let parsed: ImageRef;
  try {
    parsed = parseImageRef(ref);
  } catch {
    return;
  }
  await checkUrl(`https://${registryHost(parsed)}/`, policy, 'image.ref');
}
