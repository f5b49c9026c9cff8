/**
 * The notify activity: posts one event of a release to one webhook. Retried by Temporal on network errors, 5xx, 408
 * and 429; a 4xx answer or a webhook whose URL variable is unset on the worker is permanent (NotificationRejected).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../contract/definitions';
import type { NotifyInput } from '../../contract/types';
import { notificationBody, releaseLink } from './message';

export interface NotifyDeps {
  /** Base URL of the Temporal UI for links (MREL_UI_URL). */
  uiUrl: string;
  namespace: string;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

const TIMEOUT_MS = 10_000;

export function createNotifyActivities(deps: NotifyDeps) {
  const env = deps.env ?? process.env;
  const post = deps.fetch ?? globalThis.fetch;
  return {
    /** Sends `input.event` to `input.target`. Idempotency: one activity per event and webhook; a retry may repeat it. */
    async notify(input: NotifyInput): Promise<void> {
      const { target } = input;
      const url = target.url ?? (target.urlFromEnv ? env[target.urlFromEnv] : undefined);
      if (!url) {
        throw ApplicationFailure.nonRetryable(
          `webhook ${target.name}: environment variable ${target.urlFromEnv ?? '(none)'} is not set on the release worker; set it to the webhook URL`,
          FailureType.NotificationRejected,
        );
      }
      const body = notificationBody(target.format, input, releaseLink(deps.uiUrl, deps.namespace, input.releaseId));
      let response: Response;
      try {
        response = await post(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          redirect: 'error',
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
      } catch (err) {
        // Never the URL: it is the webhook's secret.
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
        throw new Error(`webhook ${target.name} could not be reached: ${cause}`);
      }
      await response.body?.cancel().catch(() => undefined);
      if (response.ok) return;
      const said = `webhook ${target.name} answered ${response.status}`;
      if (response.status >= 500 || response.status === 408 || response.status === 429) throw new Error(said);
      throw ApplicationFailure.nonRetryable(`${said}; check its URL and format`, FailureType.NotificationRejected);
    },
  };
}
