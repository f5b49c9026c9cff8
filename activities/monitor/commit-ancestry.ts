/**
 * Whether a revision a GitOps controller applied contains the release's commit. Controllers report the branch head
 * they applied; when another release committed right after this one, that head is a later commit, and waiting for
 * the exact sha would end in a false stall (and a rollback of a healthy release). The answer comes from the GitOps
 * repository itself, through one bare mirror per process that fetches only what is new.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SimpleGit } from 'simple-git';
import { PRIVATE_DIR } from '../common/private-files';
import { fetchBranch, gitAt, localOrUrl, scratchPrefix } from '../gitops/git';

export interface GitOpsRepositoryRef {
  /** Path or URL of the GitOps repository (what the gitops activities push to). */
  repoUrl: string;
  branch?: string;
  /** Scratch directory; the mirror lives below it. */
  workRoot: string;
}

export class CommitAncestry {
  private readonly answers = new Map<string, boolean>();
  private git: Promise<SimpleGit> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly repository: GitOpsRepositoryRef) {}

  /**
   * True when `descendant` is `ancestor` or has it in its history. False when not, when either commit is unknown
   * after a fetch, or when the repository cannot be read (the watch then keeps waiting for the exact commit).
   */
  contains(descendant: string, ancestor: string): Promise<boolean> {
    const key = `${descendant}..${ancestor}`;
    const known = this.answers.get(key);
    if (known !== undefined) return Promise.resolve(known);
    const answer = this.queue.then(() => this.ask(descendant, ancestor, key));
    this.queue = answer.catch(() => undefined);
    return answer;
  }

  private async ask(descendant: string, ancestor: string, key: string): Promise<boolean> {
    try {
      const git = await this.mirror();
      const branch = this.repository.branch ?? 'main';
      await fetchBranch(git, 'origin', branch, `refs/heads/${branch}`);
      const [full, base] = await Promise.all([
        git.raw(['rev-parse', '--verify', `${ancestor}^{commit}`]),
        git.raw(['merge-base', ancestor, descendant]),
      ]);
      const answer = base.trim() === full.trim();
      // Both commits are known now: the answer cannot change.
      this.answers.set(key, answer);
      return answer;
    } catch {
      return false;
    }
  }

  private mirror(): Promise<SimpleGit> {
    this.git ??= (async () => {
      const { repoUrl, workRoot } = this.repository;
      const id = createHash('sha256').update(repoUrl).digest('hex').slice(0, 16);
      // The gitops scratch prefix lets the gitops stage's sweep remove it once this process is gone.
      const dir = join(workRoot, `${scratchPrefix()}ancestry-${id}`);
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
      const git = gitAt(dir);
      await git.raw(['init', '-q', '--bare']);
      await git.raw(['remote', 'remove', 'origin']).catch(() => undefined);
      await git.raw(['remote', 'add', 'origin', localOrUrl(repoUrl)]);
      return git;
    })().catch((err: unknown) => {
      this.git = undefined;
      throw err;
    });
    return this.git;
  }
}
