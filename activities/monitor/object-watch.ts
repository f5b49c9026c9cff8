/**
 * Follows one named object until a decision is reached: a list (or a resume point) then a watch from its
 * resourceVersion, re-listing when the server says that version is gone (410), re-watching when the server ends a
 * watch, and reconnecting with backoff when the connection drops (an API server restart). Only the caller's signal
 * (cancellation, a deadline) ends it without a decision.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeClient, ObjectRef, WatchEvent, WatchHandle } from './kube';
import { KubeApiError, apiError } from './kube';
import type { KubeObject } from './rollout-status';

export interface FollowOptions<T> {
  kube: KubeClient;
  ref: ObjectRef;
  /** Watch from here without listing first (the resume point of an earlier attempt); a 410 falls back to a list. */
  resourceVersion?: string;
  /**
   * Called with the object (undefined when it does not exist or was deleted) and the resourceVersion it was seen at,
   * after the list and on every event, one call at a time in event order. A defined result ends the follow with it.
   */
  decide(object: KubeObject | undefined, resourceVersion: string): T | undefined | Promise<T | undefined>;
  /** A bookmark moved the resume point without a change to the object. */
  onBookmark?(resourceVersion: string): void;
  /** A request failed or a watch dropped; the next try comes after `delayMs`. */
  onRetry?(err: KubeApiError, delayMs: number): void;
  signal: AbortSignal;
  /** How long the server keeps one watch open before it ends it (and it is re-established); default 240. */
  watchTimeoutSeconds?: number;
  backoff?: { initialMs: number; maxMs: number };
}

const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 5_000 };
/** A watch that ends sooner than this without an event is counted as a failure, so that it backs off. */
const SHORT_WATCH_MS = 1_000;

type WatchOutcome<T> = { kind: 'decided'; value: T } | { kind: 'ended'; events: number } | { kind: 'gone' };

export async function followObject<T>(options: FollowOptions<T>): Promise<T> {
  const { kube, ref, signal } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const cursor = { resourceVersion: options.resourceVersion };
  let failures = 0;
  for (;;) {
    signal.throwIfAborted();
    try {
      if (cursor.resourceVersion === undefined) {
        const listed = await abortable(kube.listOne(ref), signal);
        cursor.resourceVersion = listed.resourceVersion;
        const value = await options.decide(listed.object, listed.resourceVersion);
        if (value !== undefined) return value;
      }
      const startedAt = Date.now();
      const outcome = await watchOnce(options, cursor);
      if (outcome.kind === 'decided') return outcome.value;
      if (outcome.kind === 'gone') {
        cursor.resourceVersion = undefined;
        continue;
      }
      if (outcome.events > 0 || Date.now() - startedAt >= SHORT_WATCH_MS) {
        failures = 0;
        continue;
      }
      throw new KubeApiError(`watch ${ref.type.kind} ${ref.namespace}/${ref.name}: the server ended it at once`, 503);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (!(err instanceof KubeApiError)) throw err;
      if (err.status === 410) {
        cursor.resourceVersion = undefined;
        continue;
      }
      if (err.permanent) throw err;
      failures++;
      const delayMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
      options.onRetry?.(err, Math.round(delayMs));
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        throw signal.reason;
      }
    }
  }
}

/** One watch connection, from cursor.resourceVersion; the cursor follows every event so that a reconnect resumes. */
function watchOnce<T>(options: FollowOptions<T>, cursor: { resourceVersion?: string }): Promise<WatchOutcome<T>> {
  const { kube, ref, signal } = options;
  const timeoutSeconds = options.watchTimeoutSeconds ?? 240;
  return new Promise<WatchOutcome<T>>((resolve, reject) => {
    let settled = false;
    let events = 0;
    let handle: WatchHandle | undefined;
    let idle: NodeJS.Timeout | undefined;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
      handle?.abort();
      settle();
    };
    const onAbort = () => finish(() => reject(signal.reason));
    // A connection that went silent without closing (a half-open socket) would otherwise wait forever: past the
    // server's own timeout, end it and reconnect.
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(() => resolve({ kind: 'ended', events })), (timeoutSeconds + 30) * 1000);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    armIdle();
    // Events are decided one after another: a decision may wait (on git), and a later event must not overtake it.
    let queue = Promise.resolve();
    const onEvent = (event: WatchEvent) => {
      if (settled) return;
      armIdle();
      queue = queue.then(() => decideEvent(event));
    };
    const decideEvent = async (event: WatchEvent) => {
      if (settled) return;
      if (event.type === 'ERROR') {
        const code = typeof event.object.code === 'number' ? event.object.code : 500;
        if (code === 410) finish(() => resolve({ kind: 'gone' }));
        else finish(() => reject(apiError(ref, 'watch', { code, body: event.object })));
        return;
      }
      const resourceVersion = event.object.metadata?.resourceVersion;
      if (resourceVersion) cursor.resourceVersion = resourceVersion;
      if (event.type === 'BOOKMARK') {
        if (resourceVersion) options.onBookmark?.(resourceVersion);
        return;
      }
      events++;
      try {
        const value = await options.decide(
          event.type === 'DELETED' ? undefined : event.object,
          cursor.resourceVersion ?? '',
        );
        if (value !== undefined) finish(() => resolve({ kind: 'decided', value }));
      } catch (err) {
        finish(() => reject(err));
      }
    };
    // After the events that came before it, so that none is dropped half-decided.
    const onEnd = (err?: KubeApiError) => {
      queue = queue.then(() => {
        if (err === undefined) finish(() => resolve({ kind: 'ended', events }));
        else if (err.status === 410) finish(() => resolve({ kind: 'gone' }));
        else finish(() => reject(err));
      });
    };
    kube.watch(ref, cursor.resourceVersion ?? '', timeoutSeconds, onEvent, onEnd).then(
      (started) => {
        handle = started;
        if (settled) started.abort();
      },
      (err: unknown) => finish(() => reject(apiError(ref, 'watch', err))),
    );
  });
}

/** The request's result, or the signal's reason as soon as it aborts (a hung request must not outlive a cancel). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
