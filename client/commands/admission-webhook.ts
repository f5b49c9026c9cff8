/**
 * `mrel admission-webhook`: a Kubernetes validating admission webhook (AdmissionReview v1, over TLS) that admits a
 * Deployment or InferenceService in a governed namespace only when the release it names has signed evidence in the
 * GitOps repository: the DSSE envelope `attestation.dsse.json` beside `bundle.json` verifies with a trusted key
 * (`<config>/signing-keys/<keyid>.pub`), its Statement is for this release, and the Statement's subjects are exactly
 * the evidence bundle, the model manifest digest and the images the workload runs or mounts (the model's OCI artifact
 * in an image volume); and the workload's namespace is the
 * release's environment (the namespace its overlay sets), so a release approved for staging is not admitted into
 * production. Anything it cannot check — no annotation, no evidence, an unreadable repository, a malformed review — is
 * refused (fail closed): the ValidatingWebhookConfiguration (deploy/admission/validating-webhook-configuration.yaml)
 * selects the governed namespaces and sets failurePolicy Fail, so an unreachable webhook refuses too.
 *
 * The repository is a local clone or mirror (bare or not) that something keeps current (a `git fetch` loop, a Flux
 * artifact); each review reads the committed files at `--ref` (default HEAD), never a working tree.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Option } from 'commander';
import { sha256Hex } from '../../activities/common/canonical-json';
import { LAYOUT_FILES, POLICY_ANNOTATIONS, annotationKey, releaseDir } from '../../activities/gitops/layout';
import {
  ATTESTATION_FILE,
  AttestationError,
  BUNDLE_SUBJECT,
  MANIFEST_SUBJECT,
  MAX_ENVELOPE_BYTES,
  loadTrustedKeys,
  parseEnvelope,
  parseReleaseStatement,
  verifyEnvelope,
  type ReleaseStatement,
  type TrustedKey,
} from '../../activities/trust/dsse';
import { DEFAULT_CONFIG_DIR } from '../../config/yaml-file';
import { CommandError } from '../errors';
import type { RegisterCommands } from './index';

/** Where the webhook answers; the ValidatingWebhookConfiguration's URL ends with it. */
export const ADMISSION_PATH = '/validate';
/** The signing-keys folder inside the config directory. */
export const SIGNING_KEYS_DIR = 'signing-keys';
/** A review carries the object and, on update, the old one: each at most the API server's 3 MiB request limit. */
const MAX_REVIEW_BYTES = 8 * 1024 * 1024;
/** `bundle.json` is an index of digests, not the evidence itself. */
const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;
/** The API server waits at most 30 s for a webhook; a git read that takes longer is answered as a refusal. */
const GIT_TIMEOUT_MS = 20_000;
const RELEASE_ID_PATTERN = /^release\/([^/]+)\/([^/]+)\/([^/]+)$/;
const PINNED_IMAGE = /^(.+)@sha256:([0-9a-f]{64})$/;

export interface AdmissionDecision {
  allowed: boolean;
  /** Why, in one line: what was verified, or each broken link. */
  message: string;
  releaseId?: string;
}

/** A release's committed evidence files at one commit; absent files are undefined. */
export interface ReleaseEvidence {
  commit: string;
  attestation?: Buffer;
  bundle?: Buffer;
}

/** Finds a release folder's evidence (`releases/<model>/<version>/<environment>`). */
export type EvidenceLookup = (releaseFolder: string) => Promise<ReleaseEvidence>;

/** A workload the webhook judges, as much of it as it reads. */
interface Workload {
  kind?: string;
  metadata?: { name?: string; generateName?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: {
    template?: { spec?: PodLike };
    predictor?: PodLike;
  };
}

interface PodLike {
  containers?: { name?: string; image?: string }[];
  initContainers?: { name?: string; image?: string }[];
  /** Image volumes mount an OCI artifact (the model) by reference. */
  volumes?: { name?: string; image?: { reference?: string } }[];
}

/**
 * Judges one workload against the signed evidence of the release it names. Never throws: a failure to check is a
 * refusal that says what could not be checked.
 */
export async function judgeWorkload(
  object: unknown,
  namespace: string | undefined,
  lookup: EvidenceLookup,
  trusted: readonly TrustedKey[],
): Promise<AdmissionDecision> {
  const workload = (object ?? {}) as Workload;
  const kind = typeof workload.kind === 'string' ? workload.kind : 'object';
  const name = workload.metadata?.name ?? `${workload.metadata?.generateName ?? ''}…`;
  const label = `${kind} ${namespace ?? workload.metadata?.namespace ?? '?'}/${name}`;
  const deny = (why: string, releaseId?: string): AdmissionDecision => ({
    allowed: false,
    message: `${label}: ${why}`,
    ...(releaseId === undefined ? {} : { releaseId }),
  });
  const pod = kind === 'Deployment' ? workload.spec?.template?.spec : workload.spec?.predictor;
  if ((kind !== 'Deployment' && kind !== 'InferenceService') || typeof pod !== 'object' || pod === null) {
    return deny('only Deployments and InferenceServices with a pod spec are checked; this is not one');
  }
  const annotations = workload.metadata?.annotations ?? {};
  const releaseIdKey = annotationKey(POLICY_ANNOTATIONS.releaseId);
  const releaseId = annotations[releaseIdKey];
  const parts = typeof releaseId === 'string' ? RELEASE_ID_PATTERN.exec(releaseId) : null;
  if (typeof releaseId !== 'string' || parts === null) {
    return deny(
      `${releaseIdKey} is ${releaseId === undefined ? 'missing' : 'not release/<model>/<version>/<environment>'}: governed namespaces run only released models`,
    );
  }
  const [, model, version, environment] = parts as unknown as [string, string, string, string];
  let folder: string;
  try {
    folder = releaseDir(model, version, environment);
  } catch {
    return deny(`${releaseIdKey} names no release folder of the GitOps layout`, releaseId);
  }

  let evidence: ReleaseEvidence;
  try {
    evidence = await lookup(folder);
  } catch (err) {
    return deny(`its evidence could not be read from the GitOps repository (${(err as Error).message})`, releaseId);
  }
  const at = `${folder} at ${evidence.commit.slice(0, 12)}`;
  if (evidence.attestation === undefined) {
    return deny(`no ${ATTESTATION_FILE} in ${at}: the release's evidence is not signed`, releaseId);
  }
  let statement: ReleaseStatement;
  let keyid: string;
  try {
    const envelope = parseEnvelope(evidence.attestation, `${folder}/${ATTESTATION_FILE}`);
    const verification = verifyEnvelope(envelope, trusted);
    if (!verification.ok) {
      return deny(`${ATTESTATION_FILE} in ${at} does not verify: ${verification.problems.join('; ')}`, releaseId);
    }
    keyid = verification.keyid as string;
    statement = parseReleaseStatement(verification.payload, `${folder}/${ATTESTATION_FILE}`);
  } catch (err) {
    if (err instanceof AttestationError) return deny(err.message, releaseId);
    throw err;
  }

  const problems: string[] = [];
  if (statement.predicate.releaseId !== releaseId) {
    problems.push(`the attestation is for another release (${clip(statement.predicate.releaseId)})`);
  }
  if (namespace !== undefined && namespace !== environment) {
    problems.push(`the release is for environment ${environment}, not namespace ${namespace}`);
  }
  const subjects = new Map(statement.subject.map((s) => [s.name, s.digest.sha256]));
  const bundleDigest = subjects.get(BUNDLE_SUBJECT);
  const bundleKey = annotationKey(POLICY_ANNOTATIONS.evidenceBundle);
  if (bundleDigest === undefined) problems.push(`the attestation names no ${BUNDLE_SUBJECT}`);
  else {
    if (evidence.bundle === undefined) problems.push(`no ${LAYOUT_FILES.bundle} in ${at}`);
    else if (bundleDigest !== sha256Hex(evidence.bundle)) {
      problems.push(`${LAYOUT_FILES.bundle} in ${at} is not the bundle the attestation signs`);
    }
    if (annotations[bundleKey] !== `sha256:${bundleDigest}`) {
      problems.push(`${bundleKey} ${annotations[bundleKey] === undefined ? 'is missing' : 'is not the signed bundle'}`);
    }
  }
  const manifestKey = annotationKey(POLICY_ANNOTATIONS.manifestDigest);
  const manifestDigest = subjects.get(MANIFEST_SUBJECT);
  if (manifestDigest === undefined) problems.push(`the attestation names no ${MANIFEST_SUBJECT}`);
  else if (annotations[manifestKey] !== `sha256:${manifestDigest}`) {
    problems.push(
      `${manifestKey} ${annotations[manifestKey] === undefined ? 'is missing' : 'is not the model manifest the gates judged'}`,
    );
  }
  const images = statement.subject.filter((s) => s.name !== BUNDLE_SUBJECT && s.name !== MANIFEST_SUBJECT);
  const containers = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
  if (containers.length === 0) problems.push('it runs no container');
  const pulled = [
    ...containers.map((c) => ({ what: `container ${clip(c.name ?? '?')}`, image: c.image })),
    ...(pod.volumes ?? [])
      .filter((v) => v.image !== undefined)
      .map((v) => ({ what: `volume ${clip(v.name ?? '?')}`, image: v.image?.reference })),
  ];
  for (const { what: owner, image: named } of pulled) {
    const image = typeof named === 'string' ? named : '';
    const pinned = PINNED_IMAGE.exec(image);
    const what = `${owner} image ${clip(image || '(none)')}`;
    if (pinned === null) {
      problems.push(`${what} is not pinned by digest`);
      continue;
    }
    const [, repository, digest] = pinned as unknown as [string, string, string];
    const attested = images.some(
      (s) => s.digest.sha256 === digest && (s.name === image || withoutDigest(s.name) === repository),
    );
    if (!attested) problems.push(`${what} is not among the attested images`);
  }
  if (problems.length > 0) return deny(`release ${releaseId}: ${problems.join('; ')}`, releaseId);
  return {
    allowed: true,
    message: `${label}: release ${releaseId} verified (${folder} at ${evidence.commit.slice(0, 12)}, signed by key ${keyid.slice(0, 16)}…)`,
    releaseId,
  };
}

/** Reads release evidence from a local Git repository (bare or not) at `ref`, both files from one commit. */
export function gitEvidenceLookup(repository: string, ref = 'HEAD'): EvidenceLookup {
  return async (folder) => {
    const commit = (await git(repository, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`]))
      .toString('utf8')
      .trim();
    const attestationPath = `${folder}/${ATTESTATION_FILE}`;
    const bundlePath = `${folder}/${LAYOUT_FILES.bundle}`;
    // `ls-tree -l -z`: "<mode> <type> <object> <size>\t<path>\0" for each path that exists.
    const listing = (await git(repository, ['ls-tree', '-l', '-z', commit, '--', attestationPath, bundlePath]))
      .toString('utf8')
      .split('\0')
      .filter((line) => line !== '');
    const blobs = new Map<string, { object: string; size: number }>();
    for (const line of listing) {
      const [meta, path] = line.split('\t') as [string, string | undefined];
      const [, type, object, size] = meta.split(/\s+/);
      if (path !== undefined && type === 'blob' && object !== undefined)
        blobs.set(path, { object, size: Number(size) });
    }
    const read = async (path: string, limit: number): Promise<Buffer | undefined> => {
      const blob = blobs.get(path);
      if (blob === undefined) return undefined;
      if (!(blob.size <= limit)) throw new Error(`${path} has ${blob.size} bytes, more than ${limit}`);
      return git(repository, ['cat-file', 'blob', blob.object]);
    };
    const attestation = await read(attestationPath, MAX_ENVELOPE_BYTES);
    const bundle = await read(bundlePath, MAX_BUNDLE_BYTES);
    return {
      commit,
      ...(attestation === undefined ? {} : { attestation }),
      ...(bundle === undefined ? {} : { bundle }),
    };
  };
}

export interface AdmissionWebhookOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  tlsCert: string;
  tlsKey: string;
  gitops: string;
  configDir: string;
  ref?: string;
  /** One line per decision and the listening address. */
  log?: (line: string) => void;
}

export interface AdmissionWebhook {
  /** `https://host:port` (append ADMISSION_PATH for the webhook's URL). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the webhook. Throws CommandError when the TLS files or the trusted keys cannot be read, or there is no
 * trusted key (every review would be refused).
 */
export async function startAdmissionWebhook(options: AdmissionWebhookOptions): Promise<AdmissionWebhook> {
  const log = options.log ?? (() => undefined);
  const { host, port } = parseListen(options.listen);
  const [cert, key] = await Promise.all(
    [
      ['--tls-cert', options.tlsCert],
      ['--tls-key', options.tlsKey],
    ].map(async ([flag, file]) => {
      try {
        return await readFile(file as string);
      } catch (err) {
        throw new CommandError(
          'usage',
          `${flag} ${file}: cannot be read (${(err as NodeJS.ErrnoException).code})`,
          [],
          {
            cause: err,
          },
        );
      }
    }),
  );
  const keysDir = join(options.configDir, SIGNING_KEYS_DIR);
  let trusted: TrustedKey[];
  try {
    trusted = await loadTrustedKeys(keysDir);
  } catch (err) {
    throw new CommandError('config', (err as Error).message, [], { cause: err });
  }
  if (trusted.length === 0) {
    throw new CommandError(
      'config',
      `${keysDir}: no trusted signing keys (<keyid>.pub): add the release signing key's public half, or every workload would be refused`,
    );
  }
  const lookup = gitEvidenceLookup(options.gitops, options.ref);
  // Fail at start rather than on the first review when the repository cannot be read.
  try {
    await git(options.gitops, ['rev-parse', '--verify', '--end-of-options', `${options.ref ?? 'HEAD'}^{commit}`]);
  } catch (err) {
    throw new CommandError('usage', `--gitops ${options.gitops}: ${(err as Error).message}`, [], { cause: err });
  }

  const server: Server = createServer({ cert, key, minVersion: 'TLSv1.2' }, (req, res) => {
    void handle(req, res).catch((err: unknown) => {
      log(`admission review failed: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, { message: 'the webhook failed to answer' });
    });
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== ADMISSION_PATH) {
      send(res, 404, { message: `POST an AdmissionReview to ${ADMISSION_PATH}` });
      return;
    }
    const body = await readBody(req, MAX_REVIEW_BYTES);
    if (body === undefined) {
      send(res, 413, { message: `an AdmissionReview may have at most ${MAX_REVIEW_BYTES} bytes` });
      return;
    }
    const review = parseReview(body);
    if (typeof review === 'string') {
      send(res, 400, { message: review });
      return;
    }
    const { request } = review;
    const decision =
      request.operation === 'DELETE'
        ? { allowed: true, message: 'removing a workload runs nothing unverified' }
        : await judgeWorkload(request.object, request.namespace, lookup, trusted);
    log(`${decision.allowed ? 'allowed' : 'denied'} ${request.operation ?? '?'} ${decision.message}`);
    send(res, 200, {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: request.uid,
        allowed: decision.allowed,
        ...(decision.allowed
          ? {}
          : { status: { code: 403, reason: 'Forbidden', message: decision.message.slice(0, 2000) } }),
      },
    });
  };
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new CommandError('unavailable', `--listen ${options.listen}: ${err.code ?? err.message}`, [], { cause: err }),
      ),
    );
    server.listen(port, host, () => ok());
  });
  const bound = (server.address() as AddressInfo).port;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log(`admission webhook listening on ${url}${ADMISSION_PATH} (${trusted.length} trusted key(s), ${options.gitops})`);
  return {
    url,
    port: bound,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

interface ReviewRequest {
  uid: string;
  operation?: string;
  namespace?: string;
  object?: unknown;
}

/** The review's request, or why it is not an AdmissionReview v1. */
function parseReview(body: Buffer): { request: ReviewRequest } | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON: expected an admission.k8s.io/v1 AdmissionReview';
  }
  const review = value as { apiVersion?: unknown; kind?: unknown; request?: Partial<ReviewRequest> } | null;
  if (review?.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview') {
    return 'expected an admission.k8s.io/v1 AdmissionReview (admissionReviewVersions: ["v1"])';
  }
  const request = review.request;
  if (typeof request?.uid !== 'string' || request.uid === '') return 'request.uid is missing';
  return {
    request: {
      uid: request.uid,
      ...(typeof request.operation === 'string' ? { operation: request.operation } : {}),
      ...(typeof request.namespace === 'string' && request.namespace !== '' ? { namespace: request.namespace } : {}),
      object: request.object,
    },
  };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.destroy();
        ok(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => ok(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (match === null || !(port >= 0 && port <= 65535)) {
    throw new CommandError('usage', `--listen ${listen}: expected host:port (e.g. 127.0.0.1:8443)`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** Runs git against the repository, ignoring the caller's GIT_* variables; resolves to stdout. */
function git(repository: string, args: string[]): Promise<Buffer> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_')));
  return new Promise((ok, fail) => {
    execFile(
      'git',
      ['-C', repository, ...args],
      {
        encoding: 'buffer',
        maxBuffer: MAX_BUNDLE_BYTES + 1024,
        timeout: GIT_TIMEOUT_MS,
        env: { ...env, GIT_TERMINAL_PROMPT: '0' },
      },
      (err, stdout, stderr) => {
        if (err) {
          const first = stderr.toString('utf8').trim().split('\n')[0] ?? '';
          fail(new Error(`git ${args[0]} failed${first ? `: ${clip(first, 200)}` : ''}`));
        } else ok(stdout);
      },
    );
  });
}

/** `registry/repo:tag@sha256:…` → `registry/repo:tag`; a name without a digest as it is. */
function withoutDigest(reference: string): string {
  const at = reference.lastIndexOf('@');
  return at < 0 ? reference : reference.slice(0, at);
}

function clip(text: string, max = 120): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

interface WebhookCommandOptions {
  listen: string;
  tlsCert: string;
  tlsKey: string;
  gitops: string;
  config?: string;
  ref: string;
}

export const register: RegisterCommands = (program, ctx) => {
  program
    .command('admission-webhook')
    .description(
      "serve a Kubernetes validating admission webhook that admits a workload only with its release's signed evidence",
    )
    .option('--listen <host:port>', 'address to listen on (TLS)', '127.0.0.1:8443')
    .requiredOption(
      '--tls-cert <file>',
      "the server's certificate (PEM), trusted by the webhook configuration's caBundle",
    )
    .requiredOption('--tls-key <file>', "the server's private key (PEM)")
    .requiredOption('--gitops <repo>', 'a local clone or mirror of the GitOps repository, kept current')
    .addOption(
      new Option('--config <dir>', "config directory holding signing-keys/ (default: the repository's config/)").env(
        'MREL_CONFIG_DIR',
      ),
    )
    .option('--ref <ref>', 'the branch or commit whose evidence counts', 'HEAD')
    .action(async (opts: WebhookCommandOptions) => {
      let webhook: AdmissionWebhook;
      try {
        webhook = await startAdmissionWebhook({
          listen: opts.listen,
          tlsCert: opts.tlsCert,
          tlsKey: opts.tlsKey,
          gitops: opts.gitops,
          configDir: opts.config ?? DEFAULT_CONFIG_DIR,
          ref: opts.ref,
          log: ctx.io.out,
        });
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        ctx.io.err(`mrel admission-webhook: ${err.message}`);
        ctx.setExit(err.exitCode);
        return;
      }
      const signal = await new Promise<string>((ok) => {
        process.once('SIGINT', () => ok('SIGINT'));
        process.once('SIGTERM', () => ok('SIGTERM'));
      });
      await webhook.close();
      ctx.io.out(`admission webhook stopped (${signal})`);
    });
};
