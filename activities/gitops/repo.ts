/**
 * Git operations of the gitops stage, on real repositories through simple-git. Every publish works in a fresh clone
 * of its own under the work root, so concurrent activities in one worker never share a work tree.
 */
import { createHash } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleGit } from 'simple-git';
import type { SimpleGit } from 'simple-git';
import { hasReleaseIdTrailer } from './commit-message';
import { GitOpsRejectedError, GitPushConflictError, GitRemoteUnavailableError, UnsafePathError } from './errors';
import { PRIVATE_DIR } from '../common/private-files';
import type { GitIdentity, RenderedFiles } from './render';
import { DEFAULT_AUTHOR } from './render';

export const DEFAULT_BRANCH = 'main';
export const DEFAULT_PUSH_ATTEMPTS = 10;

export interface PublishProgress {
  step: 'sync' | 'commit' | 'push' | 'backoff';
  attempt: number;
}

export interface PublishOptions {
  repoUrl: string;
  branch: string;
  /**
   * Scratch directory; each publish clones into a fresh folder below it and removes it afterwards, unless
   * `keepClone` is set.
   */
  workRoot: string;
  /**
   * Keep the clone between publishes (below workRoot, one per repository, branch and process) so that each publish
   * fetches and checks out only what changed. Only for callers that publish one at a time in this process.
   */
  keepClone?: boolean;
  releaseId: string;
  files: RenderedFiles;
  message: string;
  identity?: GitIdentity;
  /** Pushes tried before giving up with a (retryable) GitPushConflictError. */
  maxAttempts?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PublishProgress) => void;
}

export interface PublishResult {
  sha: string;
  paths: string[];
  alreadyPresent: boolean;
}

/**
 * Commits the rendered files to the branch and pushes them, once per release id.
 *
 * Before each commit the branch history is searched for a commit carrying `Release-Id: <releaseId>`; when found it
 * is returned as `alreadyPresent` and nothing is committed. When the files are already identical on the branch the
 * commit is still made (empty) so that the audit trail holds every release. A push that loses a race against another
 * writer is redone on top of the new remote head, up to `maxAttempts` times.
 */
export async function publishRelease(options: PublishOptions): Promise<PublishResult> {
  const { branch, files, signal } = options;
  const maxAttempts = options.maxAttempts ?? DEFAULT_PUSH_ATTEMPTS;
  const paths = [...files.keys()].sort();
  await prepareWorkRoot(options.workRoot);
  // A kept clone (one publisher at a time per process, see SerialQueue) fetches only what is new and checks out only
  // what changed; a fresh clone per publish costs a full fetch and checkout each time. Any failure drops the clone.
  const keptDir = options.keepClone ? join(options.workRoot, keptCloneName(options.repoUrl, branch)) : undefined;
  const reuse = keptDir !== undefined && (await isClone(keptDir));
  const dir = keptDir ?? (await mkdtemp(join(options.workRoot, `gitops-${process.pid}-`)));
  let keep = false;
  try {
    if (!reuse) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
    }
    const git = gitAt(dir, options.identity ?? DEFAULT_AUTHOR, signal);
    if (!reuse) {
      await git.raw(['init', '-q', `--initial-branch=${branch}`]);
      await git.raw(['remote', 'add', 'origin', localOrUrl(options.repoUrl)]);
    }
    let lastConflict = '';
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      signal?.throwIfAborted();
      options.onProgress?.({ step: 'sync', attempt });
      const remoteRef = await fetchBranch(git, 'origin', branch, `refs/remotes/origin/${branch}`);
      await resetTo(git, branch, remoteRef);
      if (remoteRef !== undefined) {
        const existing = await searchReleaseCommit(git, remoteRef, options.releaseId);
        if (existing !== undefined) {
          keep = keptDir !== undefined;
          return { sha: existing, paths, alreadyPresent: true };
        }
      }
      options.onProgress?.({ step: 'commit', attempt });
      await writeFiles(dir, files);
      await git.raw(['add', '--', ...paths]);
      await git.raw(['commit', '-q', '--allow-empty', '--no-verify', '-m', options.message]);
      const sha = (await git.raw(['rev-parse', 'HEAD'])).trim();
      signal?.throwIfAborted();
      options.onProgress?.({ step: 'push', attempt });
      const pushed = await pushBranch(git, 'origin', branch);
      if (pushed.ok) {
        keep = keptDir !== undefined;
        return { sha, paths, alreadyPresent: false };
      }
      lastConflict = pushed.conflict;
      if (attempt < maxAttempts) {
        options.onProgress?.({ step: 'backoff', attempt });
        await sleep(backoffMs(attempt), undefined, signal ? { signal } : {});
      }
    }
    throw new GitPushConflictError(
      `push of ${options.releaseId} to ${branch} of ${options.repoUrl} lost ${maxAttempts} races against other writers: ${lastConflict}`,
    );
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The work root is private to the worker's user (clones hold everything a release commits), and every publish removes
 * clones that processes which no longer run left behind (a worker killed mid-publish): a listing of a few entries.
 */
async function prepareWorkRoot(workRoot: string): Promise<void> {
  await mkdir(workRoot, { recursive: true, mode: PRIVATE_DIR });
  await chmod(workRoot, PRIVATE_DIR);
  for (const name of await readdir(workRoot)) {
    const owner = /^(?:clone-[0-9a-f]+|gitops)-(\d+)(?:-|$)/.exec(name)?.[1];
    if (owner === undefined || Number(owner) === process.pid || processRuns(Number(owner))) continue;
    await rm(join(workRoot, name), { recursive: true, force: true });
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One kept clone per repository, branch and process (two worker processes never share a work tree). */
function keptCloneName(repoUrl: string, branch: string): string {
  const key = createHash('sha256').update(`${repoUrl}\0${branch}`).digest('hex').slice(0, 16);
  return `clone-${key}-${process.pid}`;
}

async function isClone(dir: string): Promise<boolean> {
  try {
    await access(join(dir, '.git', 'HEAD'));
    return true;
  } catch {
    return false;
  }
}

/**
 * The sha of the commit on `branch` of `repository` (a path or URL) whose trailers hold `Release-Id: <releaseId>`,
 * or undefined when there is none or the branch does not exist yet. Reads the branch as the repository has it now,
 * through a temporary fetch.
 */
export async function findReleaseCommit(
  repository: string,
  branch: string,
  releaseId: string,
  options: { workRoot?: string } = {},
): Promise<string | undefined> {
  const root = options.workRoot ?? tmpdir();
  await mkdir(root, { recursive: true, mode: PRIVATE_DIR });
  const dir = await mkdtemp(join(root, 'gitops-find-'));
  try {
    const git = gitAt(dir, DEFAULT_AUTHOR);
    await git.raw(['init', '-q', '--bare']);
    const ref = await fetchBranch(git, localOrUrl(repository), branch, `refs/heads/${branch}`);
    return ref === undefined ? undefined : await searchReleaseCommit(git, ref, releaseId);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A simple-git bound to `dir` that commits as `identity` (author and committer), whatever the host's config says. */
function gitAt(dir: string, identity: GitIdentity, signal?: AbortSignal): SimpleGit {
  return simpleGit({
    baseDir: dir,
    config: [`user.name=${identity.name}`, `user.email=${identity.email}`, 'commit.gpgsign=false'],
    ...(signal ? { abort: signal } : {}),
    allowEnvironment: ['GIT_TERMINAL_PROMPT'],
  }).env({
    ...environmentWithoutGit(),
    // A worker has no one to type a password: fail instead of waiting for one.
    GIT_TERMINAL_PROMPT: '0',
  });
}

/**
 * Fetches the remote's branch into `into` and returns that ref, or undefined when the remote has no such branch yet.
 * Any failure to talk to the remote is a GitRemoteUnavailableError.
 */
async function fetchBranch(git: SimpleGit, remote: string, branch: string, into: string): Promise<string | undefined> {
  try {
    await git.raw(['fetch', '-q', '--no-tags', remote, `+refs/heads/${branch}:${into}`]);
    return into;
  } catch (err) {
    // One round trip instead of ls-remote then fetch: every attempt of a contended push pays for it.
    if (/couldn't find remote ref/.test(gitMessage(err))) return undefined;
    throw new GitRemoteUnavailableError(`cannot read ${branch} from ${remote}: ${gitMessage(err)}`, { cause: err });
  }
}

/**
 * Makes the local branch and work tree exactly the remote head (or an empty, unborn branch when the remote has none),
 * discarding whatever an earlier attempt committed locally.
 */
async function resetTo(git: SimpleGit, branch: string, remoteRef: string | undefined): Promise<void> {
  if (remoteRef !== undefined) {
    await git.raw(['checkout', '-q', '-f', '-B', branch, remoteRef]);
    // Files an earlier, failed attempt wrote but never committed.
    await git.raw(['clean', '-q', '-f', '-d']);
  } else {
    // An empty remote: the first release creates the branch, so start it from nothing.
    await git.raw(['symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
    await git.raw(['update-ref', '-d', `refs/heads/${branch}`]);
    await git.raw(['read-tree', '--empty']);
    await git.raw(['clean', '-q', '-f', '-d', '-x']);
  }
}

async function searchReleaseCommit(git: SimpleGit, ref: string, releaseId: string): Promise<string | undefined> {
  const trailer = `Release-Id: ${releaseId}`;
  // --grep narrows the candidates cheaply; the exact trailer check then rules out ids that merely start alike.
  const log = await git.raw(['log', '-z', '--format=%H%n%B', '--fixed-strings', `--grep=${trailer}`, ref, '--']);
  for (const record of log.split('\0')) {
    const newline = record.indexOf('\n');
    if (newline < 0) continue;
    const sha = record.slice(0, newline).trim();
    if (hasReleaseIdTrailer(record.slice(newline + 1), releaseId)) return sha;
  }
  return undefined;
}

async function writeFiles(dir: string, files: RenderedFiles): Promise<void> {
  const root = resolve(dir);
  for (const [path, content] of files) {
    const target = resolve(root, path);
    if (!target.startsWith(root + sep) || path.split('/').some((part) => part === '..' || part === '.git')) {
      throw new UnsafePathError(`rendered path ${JSON.stringify(path)} would land outside the repository work tree`);
    }
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  }
}

type PushOutcome = { ok: true } | { ok: false; conflict: string };

/**
 * The remote accepted the push but could not write it: a full disk, a quota, a permission problem on its side. Its
 * operators fix those, so they are retried, never taken for a policy refusal (`[remote rejected] … (unpacker error)`).
 */
const REMOTE_WRITE_FAULT =
  /unpacker error|unpack(?:-objects)? (?:failed|abnormal exit)|index-pack (?:failed|abnormal exit)|unable to create temporary object directory|insufficient permission|permission denied|no space left on device|disk quota exceeded|failed to write object|unable to write (?:file|sha1|loose object)/i;

/**
 * Pushes HEAD to the branch. A lost race (the remote moved, or its ref was being updated by another push) comes back
 * as a conflict to redo; a refusal by the remote throws GitOpsRejectedError; anything else GitRemoteUnavailableError.
 */
async function pushBranch(git: SimpleGit, remote: string, branch: string): Promise<PushOutcome> {
  try {
    await git.raw(['push', '-q', '--no-verify', remote, `HEAD:refs/heads/${branch}`]);
    return { ok: true };
  } catch (err) {
    const message = gitMessage(err);
    if (/\[rejected\].*\((fetch first|non-fast-forward)\)/.test(message)) return { ok: false, conflict: message };
    if (
      /\[remote rejected\].*\((cannot lock ref|failed to update ref|incorrect old value|failed to lock)/.test(message)
    ) {
      return { ok: false, conflict: message };
    }
    if (REMOTE_WRITE_FAULT.test(message)) {
      throw new GitRemoteUnavailableError(
        `${remote} could not store the push to ${branch} (a full disk or a permission problem on the remote?): ${message}`,
        { cause: err },
      );
    }
    if (/\[remote rejected\]/.test(message)) {
      const said = message
        .split('\n')
        .filter((line) => line.startsWith('remote:') || line.includes('[remote rejected]'))
        .map((line) => line.trim())
        .join('\n');
      throw new GitOpsRejectedError(`${remote} refused the push to ${branch}:\n${said}`, { cause: err });
    }
    throw new GitRemoteUnavailableError(`cannot push to ${branch} of ${remote}: ${message}`, { cause: err });
  }
}

function backoffMs(attempt: number): number {
  // Jittered and growing, so that writers who collided once do not collide again in lockstep.
  return Math.round(Math.random() * Math.min(1000, 50 * 2 ** attempt));
}

/** Git resolves a relative path against the clone's folder, not ours: make local paths absolute. */
function localOrUrl(repository: string): string {
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(repository);
  const slash = repository.indexOf('/');
  const colon = repository.indexOf(':');
  const isScpLike = colon > 0 && (slash < 0 || colon < slash);
  return isUrl || isScpLike ? repository : resolve(repository);
}

const PROGRAM_VARIABLES = new Set(['EDITOR', 'VISUAL', 'PAGER', 'PREFIX', 'SSH_ASKPASS']);

/**
 * The process environment without GIT_* variables (a worker started from a Git hook would otherwise write into the
 * hook's repository) nor the programs git may run; simple-git refuses both when they are passed explicitly.
 */
function environmentWithoutGit(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    const upper = key.toUpperCase();
    if (value !== undefined && !upper.startsWith('GIT_') && !PROGRAM_VARIABLES.has(upper)) env[key] = value;
  }
  return env;
}

/**
 * git's stderr without its `To <remote>` / `From <remote>` lines: the remote's location (a worker's host path, or a
 * URL that may carry credentials) must not travel into a release's status and history.
 */
function gitMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err))
    .split('\n')
    .filter((line) => !/^(To|From) \S/.test(line.trim()))
    .join('\n')
    .trim();
}
