/**
 * Rolling a release back the GitOps way: a `git revert` of the release's commit on the GitOps branch, which the
 * controller then applies like any other commit. The revert carries `Rollback-Of: <release id>` and is looked for
 * before it is made, so retries never revert twice.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SimpleGit } from 'simple-git';
import type { RevertInput } from '../../contract/delivery';
import { RELEASE_ID_TRAILER } from './commit-message';
import { ReleaseCommitNotFoundError, RevertConflictError } from './errors';
import {
  commitAndPush,
  findCommitWithTrailer,
  gitAt,
  gitMessage,
  localOrUrl,
  prepareWorkRoot,
  scratchPrefix,
} from './git';
import type { GitIdentity } from './render';
import { DEFAULT_AUTHOR } from './render';

export const ROLLBACK_OF_TRAILER = 'Rollback-Of';
export const ROLLBACK_REASON_TRAILER = 'Rollback-Reason';
export const ROLLBACK_DECIDED_BY_TRAILER = 'Rollback-Decided-By';
/** The rollback commit's own Release-Id: the release's id with this suffix, distinct from the release commit's. */
export const ROLLBACK_RELEASE_ID_SUFFIX = '#rollback';
export const MAX_REASON_CHARS = 200;

export interface RevertOptions {
  repoUrl: string;
  branch: string;
  /** Scratch directory; each revert clones into a fresh folder below it and removes it afterwards. */
  workRoot: string;
  identity?: GitIdentity;
  input: RevertInput;
  /** Pushes tried when other writers keep moving the branch; default DEFAULT_PUSH_ATTEMPTS. */
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
  await prepareWorkRoot(options.workRoot);
  const dir = await mkdtemp(join(options.workRoot, `${scratchPrefix()}revert-`));
  try {
    const git = gitAt(dir, options.identity ?? DEFAULT_AUTHOR, signal);
    await git.raw(['init', '-q', `--initial-branch=${branch}`]);
    await git.raw(['remote', 'add', 'origin', localOrUrl(options.repoUrl)]);
    const messageFile = join(dir, '.git', 'ROLLBACK_MSG');
    await writeFile(messageFile, rollbackMessage(input));
    const rollbackOf = bounded(input.releaseId, 512);
    const { sha, alreadyDone } = await commitAndPush(git, {
      branch,
      maxAttempts: options.maxAttempts,
      what: `the rollback of ${input.releaseId}`,
      signal,
      onStep: (step, attempt) => options.onProgress?.({ step: step === 'commit' ? 'revert' : step, attempt }),
      findDone: async (remoteRef, attempt) => {
        if (remoteRef === undefined) {
          throw new ReleaseCommitNotFoundError(`the GitOps repository has no branch ${branch}: nothing to roll back`);
        }
        const existing = await findCommitWithTrailer(git, 'HEAD', ROLLBACK_OF_TRAILER, rollbackOf);
        if (existing === undefined && attempt === 1) await checkOnBranch(git, input.commit, branch);
        return existing;
      },
      commit: async () => {
        await revertOnto(git, input.commit);
        await git.raw(['commit', '-q', '--allow-empty', '--no-verify', '-F', messageFile]);
      },
    });
    return { commit: sha, alreadyDone };
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

/** One line (a newline must not forge a trailer), at most `max` characters. */
function bounded(text: string, max: number): string {
  const line = (text ?? '').replace(/[\r\n\t]+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
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
