/**
 * Rolling a release back the GitOps way: a `git revert` of the release's commit on the GitOps branch, which the
 * controller then applies like any other commit. The revert carries `Rollback-Of: <release id>` and is looked for
 * before it is made, so retries never revert twice.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleGit } from 'simple-git';
import type { SimpleGit } from 'simple-git';
import type { RevertInput } from '../../contract/delivery';
import { ProductError } from '../../contract/errors';
import { PRIVATE_DIR } from '../common/private-files';
import { RELEASE_ID_TRAILER } from './commit-message';
import { GitOpsRejectedError, GitPushConflictError, GitRemoteUnavailableError } from './errors';
import type { GitIdentity } from './render';
import { DEFAULT_AUTHOR } from './render';

export const ROLLBACK_OF_TRAILER = 'Rollback-Of';
export const ROLLBACK_REASON_TRAILER = 'Rollback-Reason';
export const ROLLBACK_DECIDED_BY_TRAILER = 'Rollback-Decided-By';
/** The rollback commit's own Release-Id: the release's id with this suffix, distinct from the release commit's. */
export const ROLLBACK_RELEASE_ID_SUFFIX = '#rollback';
export const MAX_REASON_CHARS = 200;

/** Reverting the release's commit conflicts with later changes to the same lines: a person must resolve it. */
export class RevertConflictError extends ProductError {
  readonly code = 'RevertConflict';
  readonly permanent = true;
}

/** The commit to revert is not on the branch (never pushed there, or the branch was rewritten). */
export class ReleaseCommitNotFoundError extends ProductError {
  readonly code = 'ReleaseCommitNotFound';
  readonly permanent = true;
}

export interface RevertOptions {
  repoUrl: string;
  branch: string;
  /** Scratch directory; each revert clones into a fresh folder below it and removes it afterwards. */
  workRoot: string;
  identity?: GitIdentity;
  input: RevertInput;
  /** Pushes tried when other writers keep moving the branch; default 10. */
  maxAttempts?: number;
  signal?: AbortSignal;
  onProgress?: (progress: { step: 'sync' | 'revert' | 'push' | 'backoff'; attempt: number }) => void;
}

export interface RevertResult {
  /** The rollback commit's sha. */
  commit: string;
  /** True when an earlier attempt had already pushed it. */
  alreadyDone: boolean;
}

/**
 * Reverts `input.commit` on the branch and pushes the revert, once per release id. Later commits that touched the
 * same files do not stop it as long as git can revert without conflict; a conflict throws RevertConflictError naming
 * the paths, a commit that is not on the branch ReleaseCommitNotFoundError.
 */
export async function revertRelease(options: RevertOptions): Promise<RevertResult> {
  const { input, branch, signal } = options;
  const maxAttempts = options.maxAttempts ?? 10;
  await mkdir(options.workRoot, { recursive: true, mode: PRIVATE_DIR });
  await chmod(options.workRoot, PRIVATE_DIR);
  // The `gitops-<pid>-` prefix lets publishRelease's sweep remove it if this process dies mid-revert.
  const dir = await mkdtemp(join(options.workRoot, `gitops-${process.pid}-revert-`));
  try {
    const git = gitAt(dir, options.identity ?? DEFAULT_AUTHOR, signal);
    await git.raw(['init', '-q', `--initial-branch=${branch}`]);
    await git.raw(['remote', 'add', 'origin', localOrUrl(options.repoUrl)]);
    const messageFile = join(dir, '.git', 'ROLLBACK_MSG');
    await writeFile(messageFile, rollbackMessage(input));
    let lastConflict = '';
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      signal?.throwIfAborted();
      options.onProgress?.({ step: 'sync', attempt });
      await fetchBranch(git, branch);
      await git.raw(['checkout', '-q', '-f', '-B', branch, `refs/remotes/origin/${branch}`]);
      await git.raw(['clean', '-q', '-f', '-d']);
      const existing = await findRollbackCommit(git, 'HEAD', input.releaseId);
      if (existing !== undefined) return { commit: existing, alreadyDone: true };
      if (attempt === 1) await checkOnBranch(git, input.commit, branch);
      options.onProgress?.({ step: 'revert', attempt });
      await revertOnto(git, input.commit);
      await git.raw(['commit', '-q', '--allow-empty', '--no-verify', '-F', messageFile]);
      const sha = (await git.raw(['rev-parse', 'HEAD'])).trim();
      signal?.throwIfAborted();
      options.onProgress?.({ step: 'push', attempt });
      const pushed = await pushBranch(git, branch);
      if (pushed.ok) return { commit: sha, alreadyDone: false };
      lastConflict = pushed.conflict;
      if (attempt < maxAttempts) {
        options.onProgress?.({ step: 'backoff', attempt });
        await sleep(Math.round(Math.random() * Math.min(1000, 50 * 2 ** attempt)), undefined, signal ? { signal } : {});
      }
    }
    throw new GitPushConflictError(
      `push of the rollback of ${input.releaseId} to ${branch} lost ${maxAttempts} races against other writers: ${lastConflict}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rollback commit's message: subject, body, then the trailers machines read, every value on one line. */
export function rollbackMessage(input: RevertInput): string {
  const reason = bounded(input.reason, MAX_REASON_CHARS) || 'not given';
  const decidedBy = bounded(input.decidedBy, 200) || 'unknown';
  const subject = bounded(`rollback ${input.model}@${input.version} in ${input.environment}`, 200);
  return [
    subject,
    '',
    `This reverts commit ${input.commit} of release ${bounded(input.releaseId, 512)}.`,
    '',
    `${ROLLBACK_OF_TRAILER}: ${bounded(input.releaseId, 512)}`,
    `${ROLLBACK_REASON_TRAILER}: ${reason}`,
    `${ROLLBACK_DECIDED_BY_TRAILER}: ${decidedBy}`,
    `${RELEASE_ID_TRAILER}: ${bounded(input.releaseId, 512)}${ROLLBACK_RELEASE_ID_SUFFIX}`,
    '',
  ].join('\n');
}

/** True when the message's trailer block holds `<key>: <value>` as a whole line. */
export function hasTrailer(message: string, key: string, value: string): boolean {
  const paragraphs = message
    .replace(/\r\n/g, '\n')
    .trimEnd()
    .split(/\n[ \t]*\n/);
  const block = paragraphs.length > 1 ? (paragraphs[paragraphs.length - 1] ?? '') : '';
  return block.split('\n').some((line) => line.trimEnd() === `${key}: ${value}`);
}

/** One line (a newline must not forge a trailer), at most `max` characters. */
function bounded(text: string, max: number): string {
  const line = (text ?? '').replace(/[\r\n\t]+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

async function findRollbackCommit(git: SimpleGit, ref: string, releaseId: string): Promise<string | undefined> {
  const trailer = `${ROLLBACK_OF_TRAILER}: ${bounded(releaseId, 512)}`;
  const log = await git.raw(['log', '-z', '--format=%H%n%B', '--fixed-strings', `--grep=${trailer}`, ref, '--']);
  for (const record of log.split('\0')) {
    const newline = record.indexOf('\n');
    if (newline < 0) continue;
    if (hasTrailer(record.slice(newline + 1), ROLLBACK_OF_TRAILER, bounded(releaseId, 512))) {
      return record.slice(0, newline).trim();
    }
  }
  return undefined;
}

async function checkOnBranch(git: SimpleGit, commit: string, branch: string): Promise<void> {
  // `merge-base --is-ancestor` answers by exit status alone, which simple-git does not report as a failure.
  const base = await git.raw(['merge-base', commit, 'HEAD']).catch((err: unknown) => {
    throw new ReleaseCommitNotFoundError(
      `commit ${commit} is not on ${branch} of the GitOps repository: nothing to roll back there`,
      { cause: err },
    );
  });
  const full = (await git.raw(['rev-parse', '--verify', `${commit}^{commit}`])).trim();
  if (base.trim() !== full) {
    throw new ReleaseCommitNotFoundError(
      `commit ${commit} is not on ${branch} of the GitOps repository: nothing to roll back there (was the branch rewritten?)`,
    );
  }
  const parents = (await git.raw(['rev-list', '--parents', '-n', '1', commit])).trim().split(' ');
  if (parents.length > 2) {
    throw new ReleaseCommitNotFoundError(
      `commit ${commit} is a merge, not a release commit: it cannot be reverted as one`,
    );
  }
}

async function revertOnto(git: SimpleGit, commit: string): Promise<void> {
  try {
    await git.raw(['revert', '--no-commit', '--no-edit', commit]);
  } catch (err) {
    const conflicted = (await git.raw(['diff', '--name-only', '--diff-filter=U']).catch(() => ''))
      .split('\n')
      .filter((p) => p !== '');
    await git.raw(['revert', '--abort']).catch(() => undefined);
    if (conflicted.length > 0 || /conflict/i.test(gitMessage(err))) {
      const shown = conflicted.slice(0, 10).join(', ') + (conflicted.length > 10 ? `, … (${conflicted.length})` : '');
      throw new RevertConflictError(
        `reverting ${commit} conflicts with later changes${shown ? ` to ${shown}` : ''}: resolve the rollback by hand in the GitOps repository`,
        { cause: err, details: { paths: conflicted.slice(0, 50) } },
      );
    }
    throw err;
  }
}

/** A simple-git bound to `dir` that commits as `identity`, whatever the host's config and GIT_* variables say. */
function gitAt(dir: string, identity: GitIdentity, signal?: AbortSignal): SimpleGit {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    const upper = key.toUpperCase();
    if (
      value !== undefined &&
      !upper.startsWith('GIT_') &&
      !['EDITOR', 'VISUAL', 'PAGER', 'PREFIX', 'SSH_ASKPASS'].includes(upper)
    ) {
      env[key] = value;
    }
  }
  return simpleGit({
    baseDir: dir,
    config: [`user.name=${identity.name}`, `user.email=${identity.email}`, 'commit.gpgsign=false'],
    ...(signal ? { abort: signal } : {}),
    allowEnvironment: ['GIT_TERMINAL_PROMPT'],
  }).env({ ...env, GIT_TERMINAL_PROMPT: '0' });
}

async function fetchBranch(git: SimpleGit, branch: string): Promise<void> {
  try {
    await git.raw(['fetch', '-q', '--no-tags', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
  } catch (err) {
    if (/couldn't find remote ref/.test(gitMessage(err))) {
      throw new ReleaseCommitNotFoundError(`the GitOps repository has no branch ${branch}: nothing to roll back`, {
        cause: err,
      });
    }
    throw new GitRemoteUnavailableError(`cannot read ${branch} of the GitOps repository: ${gitMessage(err)}`, {
      cause: err,
    });
  }
}

async function pushBranch(git: SimpleGit, branch: string): Promise<{ ok: true } | { ok: false; conflict: string }> {
  try {
    await git.raw(['push', '-q', '--no-verify', 'origin', `HEAD:refs/heads/${branch}`]);
    return { ok: true };
  } catch (err) {
    const message = gitMessage(err);
    if (/\[rejected\].*\((fetch first|non-fast-forward)\)/.test(message)) return { ok: false, conflict: message };
    if (
      /\[remote rejected\].*\((cannot lock ref|failed to update ref|incorrect old value|failed to lock)/.test(message)
    ) {
      return { ok: false, conflict: message };
    }
    if (/\[remote rejected\]/.test(message) && !/unpacker error|no space left|permission denied/i.test(message)) {
      throw new GitOpsRejectedError(`the GitOps repository refused the rollback push to ${branch}: ${message}`, {
        cause: err,
      });
    }
    throw new GitRemoteUnavailableError(`cannot push the rollback to ${branch}: ${message}`, { cause: err });
  }
}

function localOrUrl(repository: string): string {
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(repository);
  const slash = repository.indexOf('/');
  const colon = repository.indexOf(':');
  return isUrl || (colon > 0 && (slash < 0 || colon < slash)) ? repository : resolve(repository);
}

/** git's stderr without its `To <remote>` / `From <remote>` lines (a host path or a URL with credentials). */
function gitMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err))
    .split('\n')
    .filter((line) => !/^(To|From) \S/.test(line.trim()))
    .join('\n')
    .trim();
}
