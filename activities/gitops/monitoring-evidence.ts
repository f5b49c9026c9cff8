/**
 * The monitoring window's results as evidence in Git: one canonical JSON file per window, named by its sha256, under
 * `releases/<model>/<version>/<environment>/monitoring/`, in a commit of its own that carries `Monitoring-Of: <release
 * commit>`. It touches neither the Deployment nor the evidence bundle, so the controller has nothing to roll out and
 * `bundle.json` keeps its digest; after a rollback it still lands, as the record of why the release was rolled back.
 */
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { SimpleGit } from 'simple-git';
import { ProductError } from '../../contract/errors';
import type { MonitoringEvidenceInput } from '../../contract/monitoring';
import { canonicalJson, sha256Hex } from '../common/canonical-json';
import { RELEASE_ID_TRAILER, hasTrailer } from './commit-message';
import { ReleaseCommitNotFoundError, UnsafePathError } from './errors';
import type { PushStep } from './git';
import { commitAndPush, findCommitWithTrailer, gitAt, localOrUrl, prepareWorkRoot, scratchPrefix } from './git';
import { releaseDir } from './layout';
import type { GitIdentity } from './render';
import { DEFAULT_AUTHOR } from './render';

export const MONITORING_OF_TRAILER = 'Monitoring-Of';
export const MONITORING_OUTCOME_TRAILER = 'Monitoring-Outcome';
/**
 * The monitoring commit's own Release-Id: the release's id with this suffix, so that a search for the release commit
 * by `Release-Id` (a retried publish, findReleaseCommit) never finds the monitoring commit instead.
 */
export const MONITORING_RELEASE_ID_SUFFIX = '#monitoring';
/** The folder of monitoring evidence inside a release folder. */
export const MONITORING_DIR = 'monitoring';
/** Marks the document's format; a reader refuses a format it does not know. */
export const MONITORING_EVIDENCE_FORMAT = 'modelrelease.io/monitoring-evidence/v1';
/** Bounds what one window commits (its tallies are bounded already; this keeps a malformed input out of Git). */
export const MAX_MONITORING_EVIDENCE_BYTES = 1024 * 1024;

/** An input the evidence cannot be made from (malformed, too large); the adapter reports it as InvalidRequest. */
export class MonitoringEvidenceInputError extends ProductError {
  readonly code = 'InvalidRequest';
  readonly permanent = true;
}

export interface MonitoringEvidenceCommit {
  /** The monitoring commit's sha. */
  commit: string;
  /** The evidence file, relative to the repository root. */
  path: string;
  /** sha256 (hex) of the file's bytes, which is also its name. */
  sha256: string;
  /** False when an earlier attempt had already pushed it (then path and sha256 are that commit's). */
  created: boolean;
}

export interface RenderedMonitoringEvidence {
  path: string;
  content: string;
  sha256: string;
}

/**
 * The evidence file: the window's input in canonical JSON (RFC 8785), so that a retry renders the same bytes and the
 * same name. The only times in it are the window's own; nothing here reads a clock.
 */
export function renderMonitoringEvidence(input: MonitoringEvidenceInput): RenderedMonitoringEvidence {
  const document = {
    format: MONITORING_EVIDENCE_FORMAT,
    releaseId: input.releaseId,
    model: input.model,
    version: input.version,
    environment: input.environment,
    commit: input.commit,
    policy: { name: input.policy.name, digest: input.policy.digest },
    window: input.window,
    result: input.result,
    outcome: input.outcome,
    // Only when people decided a pause: a window nobody decided renders byte for byte as before.
    ...(input.decisions?.length ? { decisions: input.decisions } : {}),
  };
  const content = canonicalJson(document);
  if (Buffer.byteLength(content) > MAX_MONITORING_EVIDENCE_BYTES) {
    throw new MonitoringEvidenceInputError(
      `result: the monitoring evidence is ${Buffer.byteLength(content)} bytes, more than ${MAX_MONITORING_EVIDENCE_BYTES}: keep measurements' results bounded (≤ 8 KiB each)`,
    );
  }
  const sha256 = sha256Hex(content);
  return { path: monitoringEvidencePath(input.model, input.version, input.environment, sha256), content, sha256 };
}

/** `releases/<model>/<version>/<environment>/monitoring/<sha256>.json` */
export function monitoringEvidencePath(model: string, version: string, environment: string, sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new UnsafePathError(`monitoring evidence digest ${JSON.stringify(sha256.slice(0, 80))} is not a hex sha256`);
  }
  return `${releaseDir(model, version, environment)}/${MONITORING_DIR}/${sha256}.json`;
}

/** The sha256 a monitoring evidence path (relative to the repository root) names, or undefined for any other path. */
export function parseMonitoringEvidencePath(path: string): string | undefined {
  return new RegExp(`^releases/[^/]+/[^/]+/[^/]+/${MONITORING_DIR}/([0-9a-f]{64})\\.json$`).exec(path)?.[1];
}

/** The commit's message: subject, a short body, then the trailers machines read, every value on one line. */
export function monitoringMessage(input: MonitoringEvidenceInput): string {
  const { result } = input;
  const breach = result.breach
    ? `; ${result.breach.metric} ${result.breach.phase}: ${result.breach.message}`
    : `; ${result.metrics.length} metric${result.metrics.length === 1 ? '' : 's'} within their conditions`;
  return [
    bounded(`monitoring ${input.model}@${input.version} in ${input.environment}: ${result.outcome}`, 200),
    '',
    bounded(
      `Window ${input.window} over commit ${input.commit}, policy ${input.policy.name}@${input.policy.digest}.`,
      400,
    ),
    bounded(`Result ${result.outcome}${breach}.`, 400),
    bounded(`Then: ${input.outcome}.`, 400),
    '',
    `${RELEASE_ID_TRAILER}: ${bounded(input.releaseId, 512)}${MONITORING_RELEASE_ID_SUFFIX}`,
    `${MONITORING_OF_TRAILER}: ${input.commit}`,
    `${MONITORING_OUTCOME_TRAILER}: ${result.outcome}`,
    '',
  ].join('\n');
}

export interface PublishMonitoringOptions {
  repoUrl: string;
  branch: string;
  workRoot: string;
  identity?: GitIdentity;
  input: MonitoringEvidenceInput;
  maxAttempts?: number;
  signal?: AbortSignal;
  onProgress?: (progress: { step: PushStep; attempt: number }) => void;
}

/**
 * Commits the window's evidence file to the branch and pushes it, once per release and watched commit: a commit with
 * both `Release-Id: <releaseId>#monitoring` and `Monitoring-Of: <commit>` already on the branch is returned with
 * `created: false`. A push that loses a race is redone on top of the new remote head (commitAndPush). Throws
 * MonitoringEvidenceInputError for a malformed input, ReleaseCommitNotFoundError when the watched commit is not on the
 * branch, UnsafePathError when the file would land outside the release folder.
 */
export async function publishMonitoringEvidence(options: PublishMonitoringOptions): Promise<MonitoringEvidenceCommit> {
  const { input, branch, signal } = options;
  const problems = monitoringEvidenceProblems(input);
  if (problems.length > 0) {
    throw new MonitoringEvidenceInputError(`invalid monitoring evidence input: ${problems.join('; ')}`);
  }
  const rendered = renderMonitoringEvidence(input);
  await prepareWorkRoot(options.workRoot);
  const dir = await mkdtemp(join(options.workRoot, `${scratchPrefix()}monitoring-`));
  try {
    const git = gitAt(dir, options.identity ?? DEFAULT_AUTHOR, signal);
    await git.raw(['init', '-q', `--initial-branch=${branch}`]);
    await git.raw(['remote', 'add', 'origin', localOrUrl(options.repoUrl)]);
    const releaseId = `${bounded(input.releaseId, 512)}${MONITORING_RELEASE_ID_SUFFIX}`;
    const message = monitoringMessage(input);
    const { sha, alreadyDone } = await commitAndPush(git, {
      branch,
      maxAttempts: options.maxAttempts,
      what: `the monitoring evidence of ${input.releaseId}`,
      signal,
      onStep: (step, attempt) => options.onProgress?.({ step, attempt }),
      findDone: async (remoteRef, attempt) => {
        if (remoteRef === undefined) {
          throw new ReleaseCommitNotFoundError(
            `the GitOps repository has no branch ${branch}: the monitored commit ${input.commit} cannot be on it`,
          );
        }
        const existing = await findMonitoringCommit(git, input.commit, releaseId);
        if (existing === undefined && attempt === 1) await checkOnBranch(git, input.commit, branch);
        return existing;
      },
      commit: async () => {
        await writeInside(dir, rendered.path, rendered.content);
        await git.raw(['add', '--', rendered.path]);
        await git.raw(['commit', '-q', '--allow-empty', '--no-verify', '-m', message]);
      },
    });
    if (!alreadyDone) return { commit: sha, path: rendered.path, sha256: rendered.sha256, created: true };
    // The first attempt's file stands (evidence is never rewritten); name that one, whatever this input renders to.
    const committed = await committedEvidencePath(git, sha);
    return {
      commit: sha,
      path: committed?.path ?? rendered.path,
      sha256: committed?.sha256 ?? rendered.sha256,
      created: false,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function findMonitoringCommit(git: SimpleGit, commit: string, releaseId: string): Promise<string | undefined> {
  // A commit sha is a precise search key; the Release-Id check keeps another release's window from counting.
  const candidate = await findCommitWithTrailer(git, 'HEAD', MONITORING_OF_TRAILER, commit);
  if (candidate === undefined) return undefined;
  const message = await git.raw(['log', '-1', '--format=%B', candidate, '--']);
  return hasTrailer(message, RELEASE_ID_TRAILER, releaseId) ? candidate : undefined;
}

async function committedEvidencePath(
  git: SimpleGit,
  commit: string,
): Promise<{ path: string; sha256: string } | undefined> {
  const changed = await git.raw(['diff-tree', '--no-commit-id', '--name-only', '-r', '--root', commit]);
  for (const path of changed.split('\n')) {
    const sha256 = parseMonitoringEvidencePath(path.trim());
    if (sha256 !== undefined) return { path: path.trim(), sha256 };
  }
  return undefined;
}

async function checkOnBranch(git: SimpleGit, commit: string, branch: string): Promise<void> {
  const notOnBranch = `commit ${commit} is not on ${branch} of the GitOps repository: the monitoring evidence belongs beside the release commit it watched (was the branch rewritten?)`;
  const base = await git.raw(['merge-base', commit, 'HEAD']).catch((err: unknown) => {
    throw new ReleaseCommitNotFoundError(notOnBranch, { cause: err });
  });
  const full = (await git.raw(['rev-parse', '--verify', `${commit}^{commit}`])).trim();
  if (base.trim() !== full) throw new ReleaseCommitNotFoundError(notOnBranch);
}

/**
 * Writes the file at `path` inside the clone, refusing a path that climbs out of it or passes through a symbolic link
 * (a repository could commit `releases/<model>` as a link to anywhere on the worker).
 */
async function writeInside(root: string, path: string, content: string): Promise<void> {
  const parts = path.split('/');
  const target = resolve(root, path);
  if (
    !target.startsWith(resolve(root) + sep) ||
    parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git')
  ) {
    throw new UnsafePathError(`monitoring evidence path ${JSON.stringify(path)} would land outside the repository`);
  }
  for (let i = 1; i <= parts.length; i++) {
    const stat = await lstat(join(root, ...parts.slice(0, i))).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    // Below a missing folder everything is created here, fresh.
    if (stat === undefined) break;
    if (stat.isSymbolicLink()) {
      throw new UnsafePathError(
        `${parts.slice(0, i).join('/')} is a symbolic link in the GitOps repository: monitoring evidence is not written through links; make it a folder`,
      );
    }
  }
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, content);
}

/** One line (a newline must not forge a trailer), at most `max` characters. */
function bounded(text: string, max: number): string {
  const line = String(text ?? '')
    .replace(/[\r\n\t]+/g, ' ')
    .trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** Field-named problems of an input, empty when it can be committed. */
export function monitoringEvidenceProblems(input: MonitoringEvidenceInput): string[] {
  const problems: string[] = [];
  const line = (value: unknown, field: string, max: number) => {
    if (typeof value !== 'string' || !/^[^\r\n]+$/.test(value) || value.length > max) {
      problems.push(`${field}: must be a non-empty single line of at most ${max} characters`);
    }
  };
  line(input?.releaseId, 'releaseId', 512);
  line(input?.model, 'model', 253);
  line(input?.version, 'version', 128);
  line(input?.environment, 'environment', 63);
  if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(input?.commit ?? '')) {
    problems.push('commit: must be the full lower-case sha of the release commit');
  }
  line(input?.policy?.name, 'policy.name', 253);
  line(input?.policy?.digest, 'policy.digest', 80);
  line(input?.window, 'window', 64);
  if (typeof input?.outcome !== 'string' || input.outcome.length > 1000) {
    problems.push('outcome: must be a string of at most 1000 characters');
  }
  const result = input?.result;
  if (typeof result !== 'object' || result === null) {
    problems.push('result: must be the monitoring window result {outcome, metrics, startedAt, finishedAt}');
    return problems;
  }
  if (result.outcome !== 'passed' && result.outcome !== 'breached') {
    problems.push('result.outcome: must be passed or breached');
  }
  if (!Array.isArray(result.metrics)) problems.push('result.metrics: must be a list of metric tallies');
  if (input.decisions !== undefined && (!Array.isArray(input.decisions) || input.decisions.length > 20)) {
    problems.push('decisions: must be a list of at most 20 rollback or keep decisions');
  }
  line(result.startedAt, 'result.startedAt', 40);
  line(result.finishedAt, 'result.finishedAt', 40);
  return problems;
}
