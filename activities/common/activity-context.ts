/** What activities share about running inside (or outside) a Temporal worker. */
import { Context } from '@temporalio/activity';

/** The current activity's context, or undefined outside a worker (the CLI, scripts, plain tests). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    // Outside a worker: no heartbeats, no cancellation.
    return undefined;
  }
}

/**
 * A progress callback that heartbeats at most once per `intervalMs` for the same step, and at once whenever the step
 * changes (`stepOf` names the step: the file, phase or layer the progress is about) or `force` is set (a resumable
 * checkpoint, which must never be dropped).
 */
export function throttledHeartbeat<P>(
  context: Context,
  stepOf: (progress: P) => unknown,
  intervalMs = 1_000,
): (progress: P, force?: boolean) => void {
  let lastStep: unknown;
  let lastAt = 0;
  return (progress, force = false) => {
    const now = Date.now();
    const step = stepOf(progress);
    if (!force && step === lastStep && now - lastAt < intervalMs) return;
    lastStep = step;
    lastAt = now;
    context.heartbeat(progress);
  };
}
