/**
 * How a long evaluation is steered from outside without knowing about Temporal: it reports progress with a
 * checkpoint after every batch, can resume from an earlier checkpoint, and stops between batches when its signal aborts.
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/** Where a run got to, and the partial results needed to continue from there. JSON-serialisable. */
export interface Checkpoint {
  /** Identifies the work (gate, model, dataset, policy): a checkpoint from other work is ignored. */
  key: string;
  phase: string;
  rowsDone: number;
  rowsTotal: number;
  state: unknown;
}

export interface RunControl {
  signal?: AbortSignal;
  /** Called after each batch (and after loading) with the checkpoint to heartbeat. */
  onCheckpoint?: (checkpoint: Checkpoint) => void;
  /** A checkpoint of an interrupted earlier attempt (Temporal's heartbeat details). */
  resumeFrom?: unknown;
  /** Rows per batch (tests use small batches to see several heartbeats). */
  batchRows?: number;
}

/** A stable key for a unit of work. */
export function workKey(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** The checkpoint to resume from, when it belongs to this work and phase. */
export function resumable(control: RunControl, key: string, phase: string): Checkpoint | undefined {
  const c = control.resumeFrom as Partial<Checkpoint> | undefined;
  if (!c || typeof c !== 'object' || c.key !== key || c.phase !== phase || typeof c.rowsDone !== 'number')
    return undefined;
  return c as Checkpoint;
}

/**
 * Between batches: lets timers and I/O run (tfjs kernels are synchronous, so a cancellation or a heartbeat would
 * otherwise wait for the whole evaluation), then stops if the signal aborted.
 */
export async function betweenBatches(signal: AbortSignal | undefined): Promise<void> {
  await yieldToEventLoop();
  if (signal?.aborted) throw signal.reason ?? new DOMException('evaluation aborted', 'AbortError');
}
