/**
 * Heartbeats for every activity while it runs, so that a short heartbeat timeout detects a dead worker within seconds
 * whatever the activity is doing (a long git push, a TensorFlow batch, a slow download). The activity's own heartbeat
 * details (progress that a retry resumes from) are kept: the keep-alive repeats the latest ones, never blank ones.
 */
import type { Context } from '@temporalio/activity';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  Next,
} from '@temporalio/worker';

/** Well under the shortest heartbeat timeout the release workflow sets (15 s); the SDK throttles sends anyway. */
export const KEEP_ALIVE_MS = 3_000;

/** The most the SDK waits before it sends an activity's heartbeat on to the server (its default: 0.8 × the timeout). */
export const HEARTBEAT_THROTTLE = '3s';

export function keepAliveInterceptor(everyMs = KEEP_ALIVE_MS): ActivityInterceptorsFactory {
  return (ctx) => ({ inbound: new KeepAlive(ctx, everyMs) });
}

class KeepAlive implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly everyMs: number,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    if (!this.ctx.info.heartbeatTimeoutMs) return next(input);
    // Context.heartbeat() delegates to heartbeatFn; wrapping it records the details the activity sends.
    const holder = this.ctx as unknown as { heartbeatFn: (details?: unknown) => void };
    const send = holder.heartbeatFn;
    let latest: unknown = this.ctx.info.heartbeatDetails;
    holder.heartbeatFn = (details?: unknown) => {
      latest = details;
      send(details);
    };
    const timer = setInterval(() => send(latest), this.everyMs);
    try {
      return await next(input);
    } finally {
      clearInterval(timer);
    }
  }
}
