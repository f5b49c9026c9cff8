/**
 * Reads the model server's inference log (serving/ writes it): a directory of JSON Lines files,
 * `inference-<startedAtMs>-<pid>-<seq>.jsonl` with one line per request and `feedback-…jsonl` with one line per
 * posted ground truth. The drift and bias providers read one release's requests since the monitoring window opened,
 * with the feedback joined by request id.
 *
 * Memory is bounded per line (a line over MAX_LINE_BYTES is refused without being held) and for the feedback (a map
 * of at most maxFeedbackRows labels); everything else streams. Lines that cannot be parsed, do not fit the format or
 * are too long are skipped and counted, never quoted: the log holds what clients sent.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Longest line read: a request of 16 MiB of JSON is already far beyond what the server accepts. */
export const MAX_LINE_BYTES = 16 << 20;
/** Most labels the feedback map holds (about 100 bytes each with their keys). */
export const DEFAULT_MAX_FEEDBACK_ROWS = 2_000_000;
/** Files last written this long before the window are not opened (slack for clocks between server and worker). */
const MTIME_SLACK_MS = 3_600_000;

const INFERENCE_FILE = /^inference-[0-9A-Za-z._-]+\.jsonl$/;
const FEEDBACK_FILE = /^feedback-[0-9A-Za-z._-]+\.jsonl$/;
const MAX_ID_CHARS = 256;
/** Name order with runs of digits compared as numbers: the server does not pad `<seq>`, and file 10 follows file 9. */
const NAME_ORDER = new Intl.Collator('en', { numeric: true });

/** The release whose requests are read: the log holds every model and version the server ever served. */
export interface LogRelease {
  model: string;
  version: string;
  manifestDigest: string;
}

export type LogValue = string | number | boolean | null;

/** One request of the release, as the server logged it, with its feedback when some was posted. */
export interface InferenceRecord {
  id: string;
  time: string;
  rows: number;
  /** Column → one value per row. */
  inputs: Record<string, unknown[]>;
  /** Protected attribute → one value per row (only when the request carried them). */
  groups?: Record<string, unknown[]>;
  /** The predicted class label per row. */
  predictions: unknown[];
  /** The true label per row, from the feedback posted for this request. */
  labels?: unknown[];
}

/** What the reader saw, for the result: every skipped line is counted under why. */
export interface LogReadStats {
  /** Inference files read, and those not opened because they were last written long before the window. */
  files: number;
  filesSkipped: number;
  lines: number;
  /** Requests of the release in the window, and their rows. */
  records: number;
  rows: number;
  otherReleases: number;
  beforeWindow: number;
  /** Not JSON, or JSON but not an object. */
  unparseable: number;
  /** An object that is not a request of the format (a field missing, a column of the wrong length, …). */
  invalid: number;
  /** Longer than MAX_LINE_BYTES: refused unread. */
  oversized: number;
  /** A last line without its newline (a write in progress) that did not parse. */
  partial: number;
  feedback: {
    files: number;
    lines: number;
    /** Posts joined to a request of the release. */
    matched: number;
    /** Posts (in the window) no request of the release claimed: other releases', or requests outside the window. */
    unmatched: number;
    /** Posts whose label count differs from the request's rows: not joined. */
    mismatched: number;
    /** Posts left out because the map was full. */
    dropped: number;
    unparseable: number;
    invalid: number;
    oversized: number;
  };
}

export function emptyStats(): LogReadStats {
  return {
    files: 0,
    filesSkipped: 0,
    lines: 0,
    records: 0,
    rows: 0,
    otherReleases: 0,
    beforeWindow: 0,
    unparseable: 0,
    invalid: 0,
    oversized: 0,
    partial: 0,
    feedback: {
      files: 0,
      lines: 0,
      matched: 0,
      unmatched: 0,
      mismatched: 0,
      dropped: 0,
      unparseable: 0,
      invalid: 0,
      oversized: 0,
    },
  };
}

/** The log directory is missing or unreadable: a worker setting to fix, not a data problem. */
export class InferenceLogError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InferenceLogError';
  }
}

export interface ReadLogOptions {
  /** The inference log directory (the worker's MREL_INFERENCE_LOG_DIR). */
  dir: string | undefined;
  release: LogRelease;
  /** Requests before this time (ISO) are skipped. */
  since: string;
  /** Join the feedback by request id (reads the feedback files first). */
  feedback?: boolean;
  maxFeedbackRows?: number;
  signal?: AbortSignal;
}

/**
 * The release's requests since `since`, file by file in name order and line by line. `stats` is filled in as the
 * reading goes (the feedback counts are final once the iteration has ended).
 */
export async function* readInferenceLog(options: ReadLogOptions, stats: LogReadStats): AsyncGenerator<InferenceRecord> {
  const dir = options.dir;
  if (dir === undefined || dir === '') {
    throw new InferenceLogError(
      'no inference log directory is configured on this worker: set MREL_INFERENCE_LOG_DIR to the directory the ' +
        "model server writes its inference log to (the server's INFERENCE_LOG_DIR)",
    );
  }
  const since = Date.parse(options.since);
  if (!Number.isFinite(since)) throw new RangeError('since must be an ISO time');
  const names = await listLog(dir);
  const feedback = options.feedback
    ? await readFeedback(
        dir,
        names.filter((n) => FEEDBACK_FILE.test(n)),
        since,
        options.maxFeedbackRows ?? DEFAULT_MAX_FEEDBACK_ROWS,
        stats,
        options.signal,
      )
    : undefined;
  const { release } = options;
  for (const name of names.filter((n) => INFERENCE_FILE.test(n))) {
    const path = join(dir, name);
    if (!(await writtenSince(path, since))) {
      stats.filesSkipped++;
      continue;
    }
    stats.files++;
    for await (const line of jsonLines(path, options.signal)) {
      stats.lines++;
      if (line.kind === 'oversized') {
        stats.oversized++;
        continue;
      }
      const value = parseLine(line.text);
      if (value === undefined) {
        if (line.kind === 'partial') stats.partial++;
        else stats.unparseable++;
        continue;
      }
      if (
        value.model !== release.model ||
        value.version !== release.version ||
        value.manifestDigest !== release.manifestDigest
      ) {
        if (typeof value.model === 'string' && typeof value.version === 'string') stats.otherReleases++;
        else stats.invalid++;
        continue;
      }
      const record = toRecord(value);
      if (!record) {
        stats.invalid++;
        continue;
      }
      if (Date.parse(record.time) < since) {
        stats.beforeWindow++;
        continue;
      }
      if (feedback) {
        const labels = feedback.get(record.id);
        if (labels !== undefined) {
          feedback.delete(record.id);
          if (labels.length === record.rows) {
            record.labels = labels;
            stats.feedback.matched++;
          } else stats.feedback.mismatched++;
        }
      }
      stats.records++;
      stats.rows += record.rows;
      yield record;
    }
  }
  if (feedback) stats.feedback.unmatched = feedback.size;
}

async function listLog(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => e.name)
      .sort(NAME_ORDER.compare);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new InferenceLogError(
      `the inference log directory ${dir} (MREL_INFERENCE_LOG_DIR) cannot be read (${code}): point the setting at ` +
        "the model server's log directory, shared with this worker",
      { cause: err },
    );
  }
}

async function writtenSince(path: string, since: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs >= since - MTIME_SLACK_MS;
  } catch {
    // Rotated away between the listing and now: nothing of it to read.
    return false;
  }
}

/** Reads the feedback files into id → labels (later posts for an id replace earlier ones), bounded. */
async function readFeedback(
  dir: string,
  names: string[],
  since: number,
  maxRows: number,
  stats: LogReadStats,
  signal: AbortSignal | undefined,
): Promise<Map<string, unknown[]>> {
  const map = new Map<string, unknown[]>();
  let held = 0;
  const f = stats.feedback;
  for (const name of names) {
    const path = join(dir, name);
    if (!(await writtenSince(path, since))) continue;
    f.files++;
    for await (const line of jsonLines(path, signal)) {
      f.lines++;
      if (line.kind === 'oversized') {
        f.oversized++;
        continue;
      }
      const value = parseLine(line.text);
      if (value === undefined) {
        if (line.kind !== 'partial') f.unparseable++;
        continue;
      }
      const { id, time, labels } = value;
      const at = typeof time === 'string' ? Date.parse(time) : Number.NaN;
      if (!isId(id) || !Number.isFinite(at) || !Array.isArray(labels) || !labels.every(isScalar)) {
        f.invalid++;
        continue;
      }
      // Feedback comes after its request: a post before the window cannot be for a request in it.
      if (at < since) continue;
      const before = map.get(id);
      if (before === undefined && held + labels.length > maxRows) {
        f.dropped++;
        continue;
      }
      held += labels.length - (before?.length ?? 0);
      map.set(id, labels);
    }
  }
  return map;
}

function parseLine(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function isId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_CHARS;
}

function isScalar(v: unknown): v is LogValue {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** The request if the object has the format's fields with consistent lengths, else undefined. */
function toRecord(value: Record<string, unknown>): InferenceRecord | undefined {
  const { id, time, rows, inputs, groups, predictions } = value;
  if (!isId(id) || typeof time !== 'string' || !Number.isFinite(Date.parse(time))) return undefined;
  if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 1) return undefined;
  if (!Array.isArray(predictions) || predictions.length !== rows) return undefined;
  if (!columnsOf(inputs, rows)) return undefined;
  if (groups !== undefined && !columnsOf(groups, rows)) return undefined;
  return {
    id,
    time,
    rows,
    inputs: inputs as Record<string, unknown[]>,
    ...(groups !== undefined ? { groups: groups as Record<string, unknown[]> } : {}),
    predictions,
  };
}

function columnsOf(value: unknown, rows: number): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const column of Object.values(value)) if (!Array.isArray(column) || column.length !== rows) return false;
  return true;
}

type Line = { kind: 'line' | 'partial'; text: string } | { kind: 'oversized' };

/**
 * The lines of a file without ever holding more than MAX_LINE_BYTES of one: a longer line is dropped as it streams
 * and reported as oversized. A last line without a newline comes as `partial` (the server may be writing it).
 */
export async function* jsonLines(path: string, signal?: AbortSignal, maxBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  const input = createReadStream(path, { highWaterMark: 1 << 20, signal });
  let parts: Buffer[] = [];
  let held = 0;
  let skipping = false;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      while (start < chunk.length) {
        const newline = chunk.indexOf(10, start);
        const end = newline === -1 ? chunk.length : newline;
        if (!skipping) {
          if (held + (end - start) > maxBytes) {
            skipping = true;
            parts = [];
            held = 0;
          } else if (end > start) {
            parts.push(chunk.subarray(start, end));
            held += end - start;
          }
        }
        if (newline === -1) break;
        if (skipping) yield { kind: 'oversized' };
        else if (held > 0) {
          const text = Buffer.concat(parts, held).toString('utf8');
          if (text.trim() !== '') yield { kind: 'line', text };
        }
        parts = [];
        held = 0;
        skipping = false;
        start = newline + 1;
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  } finally {
    input.destroy();
  }
  if (skipping) yield { kind: 'oversized' };
  else if (held > 0) {
    const text = Buffer.concat(parts, held).toString('utf8');
    if (text.trim() !== '') yield { kind: 'partial', text };
  }
}
