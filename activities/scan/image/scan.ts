/**
 * One image scan, end to end and free of Temporal: resolve the reference (a registry's, or a local Docker engine's
 * `docker-daemon:…`) to a digest, read the config, stream the layers into an inventory, add the model repository's lock files, match against OSV advisories (offline directory,
 * optionally the OSV API), merge trivy's report when configured, and build the CycloneDX SBOM.
 */
import { resolve as resolvePath } from 'node:path';
import type Docker from 'dockerode';
import type { ImagePolicy } from './policy';
import { AdvisoryIndex, indexKey, loadAdvisoryDirectory, type LoadStats } from './advisory-db';
import { buildCycloneDx, type CycloneDxBom } from './cyclonedx';
import {
  DockerEngineImages,
  dockerFromEnv,
  engineAddress,
  isDaemonRef,
  OCI_MEDIA_TYPES,
  parseDaemonRef,
  pinnedDaemonRef,
} from './docker-engine';
import { ImageScanError } from './errors';
import { inspectImageConfig, type ConfigFacts, type ImageConfigBlob } from './image-config';
import {
  collectImageFiles,
  LayerCollector,
  type CollectOptions,
  type CollectResult,
  type LayerStats,
  type ScanProblem,
} from './layers';
import { isLockFile, parseLockFile } from './lockfiles';
import { matchPackages, type VulnerabilityMatch } from './match';
import { queryOsvApi } from './osv-api';
import { inventoryImage, type OsRelease, type Package } from './packages';
import { parseImageRef, pinnedRef } from './reference';
import { isPlainHttp, RegistryClient, type RegistryClientOptions } from './registry';
import { mergeTrivy, runTrivy } from './trivy';
import { ecosystemBase } from './versions';

export const SCANNER_VERSION = '0.1.0';

/** A lock or requirement file from the model repository. */
export interface LockFileSource {
  path: string;
  read(): Promise<Buffer>;
}

export interface ImageScanProgress {
  phase: 'resolve' | 'layers' | 'advisories' | 'match' | 'trivy';
  layer?: number;
  layers?: number;
  bytes?: number;
  files?: number;
}

export interface ImageScanOptions {
  policy: ImagePolicy;
  /** Base for a relative `advisoryDir` (default: the working directory). */
  baseDir?: string;
  lockFiles?: LockFileSource[];
  registry?: Omit<RegistryClientOptions, 'signal' | 'platform' | 'insecureRegistries'>;
  /** The engine `docker-daemon:` references are read from (default: the one DOCKER_HOST names). */
  docker?: Docker;
  /** fetch for the OSV API (tests point it at a local server through the policy's url). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  onProgress?: (progress: ImageScanProgress) => void;
  now?: () => Date;
}

/** Everything one scan found; the gate keeps a summary and stores the rest as evidence. */
export interface ImageScanReport {
  ref: string;
  image: {
    /** Set for an image read from the local Docker engine (`docker-daemon:`); absent for a registry's. */
    transport?: 'docker-daemon';
    /** The registry host, or `docker-daemon` for a local engine's image. */
    registry: string;
    repository: string;
    tag?: string;
    /**
     * What the reference resolved to (the index digest for multi-platform images): what is deployed. For a local
     * engine's image, its ID (the config digest).
     */
    digest: string;
    /** `registry/repository@digest`, or `docker-daemon:sha256:<image id>`. */
    pinned: string;
    manifestDigest: string;
    mediaType: string;
    platform?: string;
    configDigest: string;
  };
  config: ConfigFacts;
  os?: OsRelease;
  layers: LayerStats[];
  packages: Package[];
  lockFiles: { path: string; packages: number; unpinned: string[] }[];
  vulnerabilities: VulnerabilityMatch[];
  /** Config findings and everything that could not be examined. */
  problems: ScanProblem[];
  advisories: {
    sources: string[];
    loaded: number;
    files: number;
    errors: LoadStats['errors'];
    unevaluable: { advisory: string; package: string; error: string }[];
  };
  trivy?: { path: string; reported: number };
  timings: { resolveMs: number; inventoryMs: number; advisoryLoadMs: number; matchMs: number; trivyMs?: number };
  sbom: CycloneDxBom;
  startedAt: string;
  finishedAt: string;
}

/** Scans the image `ref` (and the given lock files) under `policy`. Permanent failures throw ImageScanError. */
export async function scanImage(ref: string, options: ImageScanOptions): Promise<ImageScanReport> {
  const now = options.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const policy = options.policy;
  const progress = options.onProgress ?? (() => {});
  let t = performance.now();
  progress({ phase: 'resolve' });
  const source = isDaemonRef(ref) ? await openDaemonImage(ref, options) : await openRegistryImage(ref, options);
  let configBlob: ImageConfigBlob;
  try {
    configBlob = JSON.parse(source.config.toString('utf8')) as ImageConfigBlob;
  } catch (err) {
    throw new ImageScanError('UnsupportedImage', `the image config ${source.image.configDigest} is not JSON`, {
      cause: err,
    });
  }
  const resolveMs = performance.now() - t;

  t = performance.now();
  const configCheck = inspectImageConfig(configBlob, {
    rootSeverity: policy.rootUser,
    secretSeverity: policy.secretEnv,
    requiredLabels: policy.requiredLabels,
  });
  const collected = await source.collect({
    maxLayerBytes: policy.maxLayerBytes,
    maxFileBytes: policy.maxFileBytes,
    signal: options.signal,
    onProgress: (p) => progress({ phase: 'layers', ...p }),
  });
  const inventory = inventoryImage(collected.files);
  const packages = [...inventory.packages];
  const problems: ScanProblem[] = [...configCheck.problems, ...collected.problems, ...inventory.problems];
  const lockFiles: ImageScanReport['lockFiles'] = [];
  for (const lock of options.lockFiles ?? []) {
    const parsedLock = parseLockFile(lock.path, await lock.read());
    packages.push(...parsedLock.packages);
    problems.push(...parsedLock.problems);
    lockFiles.push({ path: lock.path, packages: parsedLock.packages.length, unpinned: parsedLock.unpinned });
  }
  const inventoryMs = performance.now() - t;

  t = performance.now();
  progress({ phase: 'advisories' });
  const ecosystems = new Set(packages.map((p) => ecosystemBase(p.ecosystem)));
  const index = new AdvisoryIndex();
  const sources: string[] = [];
  const advisoryDir = resolvePath(options.baseDir ?? process.cwd(), policy.advisoryDir);
  let loadStats: LoadStats = { directory: advisoryDir, ecosystems: [], files: 0, advisories: 0, errors: [] };
  try {
    loadStats = (
      await loadAdvisoryDirectory(advisoryDir, {
        ecosystems,
        wanted: new Set(packages.map((p) => indexKey(p.ecosystem, p.advisoryName))),
        index,
        signal: options.signal,
        onProgress: (files) => progress({ phase: 'advisories', files }),
      })
    ).stats;
    sources.push(`dir:${advisoryDir}`);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    problems.push({
      ruleId: 'advisories-unavailable',
      // Not knowing is an `error` verdict (incomplete), not a vulnerability that fails at `high`.
      severity: 'medium',
      location: `advisories:${advisoryDir}`,
      message: `${(err as Error).message}: packages could not be checked against advisories`,
      incomplete: true,
    });
  }
  if (loadStats.errors.length > 0) {
    problems.push({
      ruleId: 'advisories-unreadable',
      severity: 'medium',
      location: `advisories:${advisoryDir}`,
      message: `${loadStats.errors.length} advisory file(s) could not be read (first: ${loadStats.errors[0]!.file}: ${loadStats.errors[0]!.message})`,
      incomplete: true,
    });
  }
  // An ecosystem with no advisories at all means a missing dump, not a clean bill of health.
  const covered = new Set(loadStats.ecosystems.map(ecosystemBase));
  const uncovered = [...ecosystems].filter((e) => !covered.has(e)).sort();
  if (uncovered.length > 0 && sources.length > 0 && !policy.osvApi.enabled) {
    problems.push({
      ruleId: 'advisories-missing-ecosystem',
      severity: 'medium',
      location: `advisories:${advisoryDir}`,
      message: `the advisory directory has no folder for ${uncovered.join(', ')}: those packages could not be checked`,
      incomplete: true,
    });
  }
  if (policy.osvApi.enabled && packages.length > 0) {
    // A source that is down is transient: the error propagates and the activity is retried.
    for (const advisory of await queryOsvApi(packages, {
      url: policy.osvApi.url,
      fetch: options.fetch,
      signal: options.signal,
    })) {
      index.add(advisory);
    }
    sources.push(`api:${policy.osvApi.url}`);
  }
  const advisoryLoadMs = performance.now() - t;

  t = performance.now();
  progress({ phase: 'match' });
  const matched = matchPackages(packages, index, { unknownSeverity: policy.unknownSeverity });
  let vulnerabilities = matched.matches;
  if (matched.unevaluable.length > 0) {
    problems.push({
      ruleId: 'advisory-unevaluable',
      severity: 'info',
      location: 'advisories',
      message: `${matched.unevaluable.length} advisory range(s) could not be evaluated (first: ${matched.unevaluable[0]!.advisory} for ${matched.unevaluable[0]!.package}: ${matched.unevaluable[0]!.error})`,
      incomplete: false,
    });
  }
  const matchMs = performance.now() - t;

  const image = source.image;
  let trivy: ImageScanReport['trivy'];
  let trivyMs: number | undefined;
  if (policy.trivy.path) {
    t = performance.now();
    progress({ phase: 'trivy' });
    const report = await runTrivy(policy.trivy.path, source.trivyTarget, {
      insecure: source.plainHttp ?? false,
      timeoutMs: policy.trivy.timeoutSeconds * 1000,
      signal: options.signal,
      ...(source.dockerHost ? { dockerHost: source.dockerHost } : {}),
    });
    vulnerabilities = mergeTrivy(vulnerabilities, report, packages, policy.unknownSeverity);
    trivy = {
      path: policy.trivy.path,
      reported: (report.Results ?? []).reduce((n, r) => n + (r.Vulnerabilities?.length ?? 0), 0),
    };
    trivyMs = performance.now() - t;
  }

  const finishedAt = now().toISOString();
  return {
    ref,
    image,
    config: configCheck.facts,
    os: inventory.os,
    layers: collected.layers,
    packages,
    lockFiles,
    vulnerabilities,
    problems,
    advisories: {
      sources,
      loaded: index.size,
      files: loadStats.files,
      errors: loadStats.errors,
      unevaluable: matched.unevaluable,
    },
    ...(trivy ? { trivy } : {}),
    timings: { resolveMs, inventoryMs, advisoryLoadMs, matchMs, ...(trivyMs !== undefined ? { trivyMs } : {}) },
    sbom: buildCycloneDx({
      image: { registry: image.registry, repository: image.repository, digest: image.digest, tag: image.tag },
      os: inventory.os,
      packages,
      vulnerabilities,
      // No wall-clock time: a retried gate must store the same SBOM bytes.
      toolVersion: SCANNER_VERSION,
    }),
    startedAt,
    finishedAt,
  };
}

/** The image being scanned, wherever it lives: what the report pins, its config and a reader of its layers. */
interface OpenedImage {
  image: ImageScanReport['image'];
  config: Buffer;
  collect(options: CollectOptions): Promise<CollectResult>;
  /** What trivy is pointed at, and how. */
  trivyTarget: string;
  plainHttp?: boolean;
  dockerHost?: string;
}

async function openRegistryImage(ref: string, options: ImageScanOptions): Promise<OpenedImage> {
  const parsed = parseImageRef(ref);
  const [os, architecture, variant] = options.policy.platform.split('/') as [string, string, string | undefined];
  const client = new RegistryClient(parsed, {
    ...options.registry,
    insecureRegistries: options.policy.insecureRegistries,
    platform: { os, architecture, variant },
    signal: options.signal,
  });
  const resolved = await client.resolve();
  const config = await client.getBlob(resolved.manifest.config.digest);
  const pinned = pinnedRef(parsed, resolved.digest);
  return {
    image: {
      registry: parsed.registry,
      repository: parsed.repository,
      ...(parsed.tag ? { tag: parsed.tag } : {}),
      digest: resolved.digest,
      pinned,
      manifestDigest: resolved.manifestDigest,
      mediaType: resolved.mediaType,
      ...(resolved.platform ? { platform: resolved.platform } : {}),
      configDigest: resolved.manifest.config.digest,
    },
    config,
    collect: (collectOptions) =>
      collectImageFiles(
        resolved.manifest.layers.map((l) => ({
          digest: l.digest,
          mediaType: l.mediaType,
          size: l.size,
          open: () => client.openBlob(l.digest),
        })),
        collectOptions,
      ),
    trivyTarget: pinned,
    plainHttp: isPlainHttp(parsed.registry, options.policy.insecureRegistries),
  };
}

/**
 * An image in the local Docker engine: pinned by its ID, the config's digest, as the engine knows it. Its manifest
 * digest is that of the manifest a push by digest (./push.ts) gives it.
 */
async function openDaemonImage(ref: string, options: ImageScanOptions): Promise<OpenedImage> {
  const parsed = parseDaemonRef(ref);
  const docker = options.docker ?? dockerFromEnv();
  const engine = new DockerEngineImages(docker, { signal: options.signal });
  const local = await engine.inspect(parsed);
  const named = parsed.ref;
  return {
    image: {
      transport: 'docker-daemon',
      registry: 'docker-daemon',
      repository: named
        ? named.registry === 'docker.io'
          ? named.repository
          : `${named.registry}/${named.repository}`
        : 'image',
      ...(named?.tag ? { tag: named.tag } : {}),
      digest: local.id,
      pinned: pinnedDaemonRef(local.id),
      manifestDigest: local.manifestDigest,
      mediaType: OCI_MEDIA_TYPES.manifest,
      configDigest: local.configDigest,
    },
    config: local.config,
    collect: async (collectOptions) => {
      const collector = new LayerCollector(local.layers, collectOptions);
      await engine.streamLayers(local, async ([first, ...repeats], _layer, body) => {
        if (!collector.wants(first!)) {
          for (const i of repeats) collector.wants(i);
          return;
        }
        await collector.read(first!, body);
        for (const i of repeats) collector.same(i, first!);
      });
      return collector.finish();
    },
    trivyTarget: local.id,
    dockerHost: engineAddress(docker),
  };
}

/** The lock and requirement files among a model's acquired files. */
export function lockFilesOf<T extends { path: string }>(files: T[]): T[] {
  return files.filter((f) => isLockFile(f.path));
}
