/**
 * The gitops stage: writes an approved release (kustomize manifests and evidence) into the GitOps repository as one
 * commit, which Argo CD or Flux then roll out.
 */
import { Context } from '@temporalio/activity';
import { resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../contract/definitions';
import type { GitOpsCommit, GitOpsReleaseInput } from '../../contract/types';
import { releaseRequestSchema } from '../../contract/types';
import { commitMessage } from './commit-message';
import { GitOpsRejectedError, UnsafePathError } from './errors';
import type { GateAnnotationHooks, GitIdentity } from './render';
import { DEFAULT_AUTHOR, renderRelease } from './render';
import { DEFAULT_BRANCH, publishRelease } from './repo';

export { findReleaseCommit } from './repo';
export type { GateAnnotationHook, GateAnnotationHooks, GitIdentity } from './render';

export interface GitOpsDeps {
  /** Path or URL of the GitOps repository. */
  repoUrl: string;
  /** Default `main`; created by the first release when the repository is empty. */
  branch?: string;
  /** Scratch directory for the per-call clones. */
  workRoot: string;
  /** Author and committer of release commits; default `modelrelease-bot <bot@modelrelease.local>`. */
  author?: GitIdentity;
  /** Image for requests that name none; default `modelrelease/model-server:latest`. */
  servingImage?: string;
  /** Extra `policy.modelrelease.io/…` annotations per gate, beside the `<gate>-verdict` every gate gets. */
  gateAnnotations?: GateAnnotationHooks;
  /** Pushes tried when other writers keep moving the branch; default 10. */
  maxPushAttempts?: number;
}

export interface GitOpsActivities {
  commitRelease(input: GitOpsReleaseInput): Promise<GitOpsCommit>;
}

export function createGitOpsActivities(deps: GitOpsDeps): GitOpsActivities {
  const branch = deps.branch ?? DEFAULT_BRANCH;
  const author = deps.author ?? DEFAULT_AUTHOR;
  // Releases handled by one worker publish one after another: racing each other for the same branch only makes all
  // but one of them fetch, re-apply and push again (measured: 100 concurrent releases took 439 attempts). Other
  // workers can still move the branch; the retry loop in publishRelease handles those races.
  const serial = new SerialQueue();
  return {
    /**
     * Commits the release's manifests and evidence to the GitOps branch and pushes them.
     *
     * Idempotency key: the `Release-Id: <releaseId>` trailer. A commit carrying it already on the branch is returned
     * with `alreadyPresent: true` and nothing new is written, so retries are safe. A release whose files are already
     * identical on the branch still gets its (empty) commit, so that Git keeps an audit record of every release.
     *
     * Heartbeats at each step (sync, commit, push, backoff). Retryable: an unreachable remote, or a branch that other
     * writers kept moving for every push attempt. Non-retryable: InvalidRequest, UnsafePath, and GitOpsRejected when
     * the remote refuses the push (a hook, a protected branch).
     */
    async commitRelease(input: GitOpsReleaseInput): Promise<GitOpsCommit> {
      const ctx = Context.current();
      validate(input);
      const files = renderRelease(input, {
        servingImage: deps.servingImage,
        author,
        gateAnnotations: deps.gateAnnotations,
      });
      try {
        const result = await serial.run(() =>
          publishRelease({
            keepClone: true,
            repoUrl: deps.repoUrl,
            branch,
            workRoot: deps.workRoot,
            releaseId: input.releaseId,
            files,
            message: commitMessage(input),
            identity: author,
            maxAttempts: deps.maxPushAttempts,
            signal: ctx.cancellationSignal,
            onProgress: (progress) => ctx.heartbeat(progress),
          }),
        );
        return { repository: deps.repoUrl, branch, ...result };
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        // The remote's location (a host path, a URL with credentials) stays out of the release's history.
        const message = withoutRemote(err instanceof Error ? err.message : String(err), deps.repoUrl);
        if (err instanceof GitOpsRejectedError)
          throw ApplicationFailure.nonRetryable(message, FailureType.GitOpsRejected);
        if (err instanceof UnsafePathError) throw ApplicationFailure.nonRetryable(message, FailureType.UnsafePath);
        // Unreachable remote, lost push races, local git trouble: retried by Temporal.
        throw ApplicationFailure.retryable(message, err instanceof Error ? err.name : 'GitOpsError');
      }
    },
  };
}

function validate(input: GitOpsReleaseInput): void {
  const problems: string[] = [];
  const parsed = releaseRequestSchema.safeParse(input.request);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`request.${issue.path.join('.')}: ${issue.message}`);
  }
  // The release id becomes a commit trailer: it must stay on one line to stay the idempotency key.
  if (!/^[^\r\n]+$/.test(input.releaseId ?? '')) problems.push('releaseId: must be a non-empty single line');
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(`invalid gitops input: ${problems.join('; ')}`, FailureType.InvalidRequest);
  }
}

function withoutRemote(message: string, repoUrl: string): string {
  const forms = [repoUrl, resolve(repoUrl), repoUrl.replace(/\/+$/, '')].filter((f) => f.length > 1);
  return forms.reduce((text, form) => text.split(form).join('<gitops remote>'), message);
}

/** Runs tasks one at a time, in the order they were submitted. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
