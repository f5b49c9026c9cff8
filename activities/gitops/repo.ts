/**
 * Git operations of the gitops stage, on real repositories through simple-git. Every publish works in a fresh clone
 * of its own under the work root, so concurrent activities in one worker never share a work tree.
 */
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { RELEASE_ID_TRAILER } from './commit-message';
import { UnsafePathError } from './errors';
import {
  commitAndPush,
  fetchBranch,
  findCommitWithTrailer,
  gitAt,
  localOrUrl,
  prepareWorkRoot,
  scratchPrefix,
} from './git';
import type { PushStep } from './git';
import { PRIVATE_DIR } from '../common/private-files';
import type { GitIdentity, RenderedFiles } from './render';
import { DEFAULT_AUTHOR } from './render';

export const DEFAULT_BRANCH = 'main';

export interface PublishProgress {
  step: PushStep;
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
  const paths = [...files.keys()].sort();
  await prepareWorkRoot(options.workRoot);
  // A kept clone (one publisher at a time per process, see SerialQueue) fetches only what is new and checks out only
  // what changed; a fresh clone per publish costs a full fetch and checkout each time. Any failure drops the clone.
  const keptDir = options.keepClone ? join(options.workRoot, keptCloneName(options.repoUrl, branch)) : undefined;
  const reuse = keptDir !== undefined && (await isClone(keptDir));
  const dir = keptDir ?? (await mkdtemp(join(options.workRoot, scratchPrefix())));
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
    const { sha, alreadyDone } = await commitAndPush(git, {
      branch,
      maxAttempts: options.maxAttempts,
      what: options.releaseId,
      signal,
      onStep: (step, attempt) => options.onProgress?.({ step, attempt }),
      findDone: async (remoteRef) =>
        remoteRef === undefined
          ? undefined
          : findCommitWithTrailer(git, remoteRef, RELEASE_ID_TRAILER, options.releaseId),
      commit: async () => {
        await writeFiles(dir, files);
        await git.raw(['add', '--', ...paths]);
        await git.raw(['commit', '-q', '--allow-empty', '--no-verify', '-m', options.message]);
      },
    });
    keep = keptDir !== undefined;
    return { sha, paths, alreadyPresent: alreadyDone };
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
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
    const git = gitAt(dir);
    await git.raw(['init', '-q', '--bare']);
    const ref = await fetchBranch(git, localOrUrl(repository), branch, `refs/heads/${branch}`);
    return ref === undefined ? undefined : await findCommitWithTrailer(git, ref, RELEASE_ID_TRAILER, releaseId);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
