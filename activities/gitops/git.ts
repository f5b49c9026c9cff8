/**
 * The git plumbing that every reader and writer of the GitOps repository shares (publish, revert, the monitor's
 * ancestry check): a simple-git that ignores the host's git setup, fetch and push with their failures sorted into the
 * gitops errors, and messages that never carry the remote's location.
 */
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleGit } from 'simple-git';
import type { SimpleGit } from 'simple-git';
import { PRIVATE_DIR } from '../common/private-files';
import { hasTrailer } from './commit-message';
import { GitOpsRejectedError, GitPushConflictError, GitRemoteUnavailableError } from './errors';
import type { GitIdentity } from './render';
import { DEFAULT_AUTHOR } from './render';

/**
 * Prefix of every scratch folder under a work root (`gitops-<pid>-…`): prepareWorkRoot removes those whose process no
 * longer runs.
 */
export function scratchPrefix(): string {
  return `gitops-${process.pid}-`;
}

/**
 * The work root is private to the worker's user (clones hold everything a release commits), and each preparation
 * removes clones that processes which no longer run left behind (a worker killed mid-publish): a listing of a few
 * entries.
 */
export async function prepareWorkRoot(workRoot: string): Promise<void> {
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

/** A simple-git bound to `dir` that commits as `identity` (author and committer), whatever the host's config says. */
export function gitAt(dir: string, identity: GitIdentity = DEFAULT_AUTHOR, signal?: AbortSignal): SimpleGit {
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
export async function fetchBranch(
  git: SimpleGit,
  remote: string,
  branch: string,
  into: string,
): Promise<string | undefined> {
  try {
    await git.raw(['fetch', '-q', '--no-tags', remote, `+refs/heads/${branch}:${into}`]);
    return into;
  } catch (err) {
    // One round trip instead of ls-remote then fetch: every attempt of a contended push pays for it.
    if (/couldn't find remote ref/.test(gitMessage(err))) return undefined;
    throw new GitRemoteUnavailableError(`cannot read ${branch} of the GitOps repository: ${gitMessage(err)}`, {
      cause: err,
    });
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

/** The sha of the newest commit reachable from `ref` whose trailer block holds `<key>: <value>`, if any. */
export async function findCommitWithTrailer(
  git: SimpleGit,
  ref: string,
  key: string,
  value: string,
): Promise<string | undefined> {
  // --grep narrows the candidates cheaply; the exact trailer check then rules out values that merely start alike.
  const log = await git.raw(['log', '-z', '--format=%H%n%B', '--fixed-strings', `--grep=${key}: ${value}`, ref, '--']);
  for (const record of log.split('\0')) {
    const newline = record.indexOf('\n');
    if (newline < 0) continue;
    if (hasTrailer(record.slice(newline + 1), key, value)) return record.slice(0, newline).trim();
  }
  return undefined;
}

export type PushOutcome = { ok: true } | { ok: false; conflict: string };

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
        `the GitOps repository could not store the push to ${branch} (a full disk or a permission problem on the remote?): ${message}`,
        { cause: err },
      );
    }
    if (/\[remote rejected\]/.test(message)) {
      const said = message
        .split('\n')
        .filter((line) => line.startsWith('remote:') || line.includes('[remote rejected]'))
        .map((line) => line.trim())
        .join('\n');
      throw new GitOpsRejectedError(`the GitOps repository refused the push to ${branch}:\n${said}`, { cause: err });
    }
    throw new GitRemoteUnavailableError(`cannot push to ${branch} of the GitOps repository: ${message}`, {
      cause: err,
    });
  }
}

export type PushStep = 'sync' | 'commit' | 'push' | 'backoff';

export const DEFAULT_PUSH_ATTEMPTS = 10;

export interface PushLoopOptions {
  branch: string;
  /** Pushes tried before giving up with a (retryable) GitPushConflictError; default DEFAULT_PUSH_ATTEMPTS. */
  maxAttempts?: number;
  /** What is pushed, for the error when every attempt lost its race ("the rollback of …"). */
  what: string;
  signal?: AbortSignal;
  onStep?: (step: PushStep, attempt: number) => void;
  /**
   * Runs after each sync with the remote head (undefined when the branch does not exist yet) and returns the sha of a
   * commit that already did the work (an earlier attempt's that was pushed after all), or undefined to commit. It may
   * throw to refuse the work.
   */
  findDone: (remoteRef: string | undefined, attempt: number) => Promise<string | undefined>;
  /** Makes the commit on top of the synced branch. */
  commit: () => Promise<void>;
}

/**
 * Syncs the clone's branch with the remote (`origin`), commits and pushes, once: a push that loses a race against
 * another writer is redone on top of the new remote head, up to `maxAttempts` times, after a jittered backoff.
 */
export async function commitAndPush(
  git: SimpleGit,
  options: PushLoopOptions,
): Promise<{ sha: string; alreadyDone: boolean }> {
  const { branch, signal } = options;
  const maxAttempts = options.maxAttempts ?? DEFAULT_PUSH_ATTEMPTS;
  let lastConflict = '';
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    signal?.throwIfAborted();
    options.onStep?.('sync', attempt);
    const remoteRef = await fetchBranch(git, 'origin', branch, `refs/remotes/origin/${branch}`);
    await resetTo(git, branch, remoteRef);
    const done = await options.findDone(remoteRef, attempt);
    if (done !== undefined) return { sha: done, alreadyDone: true };
    options.onStep?.('commit', attempt);
    await options.commit();
    const sha = (await git.raw(['rev-parse', 'HEAD'])).trim();
    signal?.throwIfAborted();
    options.onStep?.('push', attempt);
    const pushed = await pushBranch(git, 'origin', branch);
    if (pushed.ok) return { sha, alreadyDone: false };
    lastConflict = pushed.conflict;
    if (attempt < maxAttempts) {
      options.onStep?.('backoff', attempt);
      await sleep(backoffMs(attempt), undefined, signal ? { signal } : {});
    }
  }
  throw new GitPushConflictError(
    `push of ${options.what} to ${branch} lost ${maxAttempts} races against other writers: ${lastConflict}`,
  );
}

function backoffMs(attempt: number): number {
  // Jittered and growing, so that writers who collided once do not collide again in lockstep.
  return Math.round(Math.random() * Math.min(1000, 50 * 2 ** attempt));
}

/** Git resolves a relative path against the clone's folder, not ours: make local paths absolute. */
export function localOrUrl(repository: string): string {
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
export function gitMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err))
    .split('\n')
    .filter((line) => !/^(To|From) \S/.test(line.trim()))
    .join('\n')
    .trim();
}
