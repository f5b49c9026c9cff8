/**
 * A forward-only byte reader over a stream of chunks. Parsers look at `buf` from `pos` directly (fast path) and ask
 * for more with `fill(n)` only when a value crosses a chunk boundary, so memory stays at a few chunks whatever the
 * input's size.
 */
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';

const EMPTY = Buffer.alloc(0);

/** Read size for files: large enough that per-chunk overhead vanishes next to parsing. */
export const READ_CHUNK = 1 << 20;

/** Positional reads: what the parsers need of a file. A `FileHandle` is one; so is a `SyncFile`. */
export interface RandomAccess {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Reads up to this size are made synchronously; larger ones go through the thread pool. */
const SYNC_READ_MAX = 8 << 20;
/** Longest stretch of synchronous reads before the event loop gets a turn (heartbeats, cancellation). */
const YIELD_AFTER_MS = 20;

/**
 * An open file read with synchronous positional reads, behind the same promise API as a `FileHandle`. Model
 * repositories are mostly many small files and a few large ones whose tensor bytes are skipped, not read: for them a
 * round trip through the thread pool per open, stat, read and close costs more than parsing. A read of up to 8 MiB
 * from the page cache takes well under a millisecond; larger reads stay asynchronous, and after 20 ms of synchronous
 * work a read resolves on the next turn of the event loop, so a long scan still heartbeats and can be cancelled.
 */
export class SyncFile implements RandomAccess {
  private lastYield = performance.now();
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  static open(path: string): SyncFile {
    const fd = openSync(path, 'r');
    try {
      return new SyncFile(fd, fstatSync(fd).size);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (length > SYNC_READ_MAX)
      return new Promise((resolve, reject) =>
        read(this.fd, buffer, offset, length, position, (err, bytesRead) =>
          err ? reject(err) : resolve({ bytesRead }),
        ),
      );
    const bytesRead = length > 0 ? readSync(this.fd, buffer, offset, length, position) : 0;
    const now = performance.now();
    if (now - this.lastYield < YIELD_AFTER_MS) return Promise.resolve({ bytesRead });
    this.lastYield = now;
    return new Promise((resolve) => setImmediate(resolve, { bytesRead }));
  }

  /** Reads what is there from `position` into a new buffer of at most `length` bytes, synchronously. */
  readNow(length: number, position: number): Buffer {
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, this.size - position)));
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

export class ByteReader {
  buf: Buffer = EMPTY;
  pos = 0;
  /** Absolute offset of buf[0] in the stream. */
  private base: number;
  private ended = false;

  private readonly file?: FileSource;
  private readonly chunks?: AsyncIterator<Buffer>;

  /** Reads a stream of chunks, or a file through a FileSource (which can skip without reading). */
  constructor(source: AsyncIterator<Buffer> | FileSource, startOffset = 0) {
    if (source instanceof FileSource) {
      this.file = source;
      this.base = source.position;
    } else {
      this.chunks = source;
      this.base = startOffset;
    }
  }

  private async nextChunk(): Promise<Buffer | null> {
    if (this.file) return this.file.next();
    const next = await (this.chunks as AsyncIterator<Buffer>).next();
    return next.done ? null : next.value;
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** True once the source has no more chunks (what is in `buf` is all there is). */
  get exhausted(): boolean {
    return this.ended;
  }

  get available(): number {
    return this.buf.length - this.pos;
  }

  /** True once the source is exhausted and every byte was consumed. */
  async atEnd(): Promise<boolean> {
    if (this.available > 0) return false;
    return !(await this.fill(1));
  }

  /** Makes at least `n` unread bytes available in `buf`; false when the stream ends first (what is left stays). */
  async fill(n: number): Promise<boolean> {
    while (this.available < n) {
      if (this.ended) return false;
      const chunk = await this.nextChunk();
      if (chunk === null) {
        this.ended = true;
        return false;
      }
      if (chunk.length === 0) continue;
      if (this.available === 0) {
        this.base += this.buf.length;
        this.buf = chunk;
      } else {
        const rest = this.buf.subarray(this.pos);
        this.base += this.pos;
        this.buf = Buffer.concat([rest, chunk]);
      }
      this.pos = 0;
    }
    return true;
  }

  /** Skips `n` bytes without keeping them; false when the stream ends first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    if (this.file && left > this.available) {
      // A file skips by moving its read position: large tensor payloads are never read.
      left -= this.available;
      this.base += this.buf.length;
      this.buf = EMPTY;
      this.pos = 0;
      const skipped = this.file.skip(left);
      this.base += skipped;
      return skipped === left;
    }
    while (left > 0) {
      if (this.available === 0 && !(await this.fill(1))) return false;
      const step = Math.min(left, this.available);
      this.pos += step;
      left -= step;
    }
    return true;
  }

  /**
   * Reads up to and including the next `\n`; returns the line without it, cut to `keep` bytes (the rest is skipped,
   * not buffered). Null when the stream ends before a newline.
   */
  async readLine(keep: number): Promise<{ line: Buffer; truncated: boolean } | null> {
    const parts: Buffer[] = [];
    let kept = 0;
    let total = 0;
    for (;;) {
      if (this.available === 0 && !(await this.fill(1))) return null;
      const nl = this.buf.indexOf(10, this.pos);
      const end = nl < 0 ? this.buf.length : nl;
      const piece = this.buf.subarray(this.pos, end);
      total += piece.length;
      if (kept < keep) {
        const take = piece.subarray(0, keep - kept);
        parts.push(Buffer.from(take));
        kept += take.length;
      }
      this.pos = end;
      if (nl >= 0) {
        this.pos = nl + 1;
        return { line: Buffer.concat(parts), truncated: total > keep };
      }
    }
  }

  /** Consumes and discards everything left; returns how many bytes that was. */
  async drain(): Promise<number> {
    let n = this.available;
    this.pos = this.buf.length;
    while (!this.ended) {
      const chunk = await this.nextChunk();
      if (chunk === null) this.ended = true;
      else n += chunk.length;
    }
    return n;
  }

  /** Reads exactly `n` bytes (copied); null when the stream ends first. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) return null;
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
}

/**
 * Reads an open file chunk by chunk from a position; the caller owns (and closes) the handle. `first`, when given,
 * is bytes from `position` that were already read (the head read for format detection): they are not read again.
 */
export class FileSource {
  constructor(
    private readonly handle: RandomAccess,
    private readonly size: number,
    public position = 0,
    private first?: Buffer,
  ) {}

  async next(): Promise<Buffer | null> {
    const n = Math.min(READ_CHUNK, this.size - this.position);
    if (n <= 0) return null;
    const first = this.first;
    if (first) {
      this.first = undefined;
      if (first.length > 0 && first.length <= n) {
        this.position += first.length;
        return first;
      }
    }
    const buf = Buffer.allocUnsafe(n);
    const { bytesRead } = await this.handle.read(buf, 0, n, this.position);
    if (bytesRead === 0) return null;
    this.position += bytesRead;
    return buf.subarray(0, bytesRead);
  }

  /** Moves the read position forward; returns how many bytes that was (less at the end of the file). */
  skip(n: number): number {
    const k = Math.max(0, Math.min(n, this.size - this.position));
    this.position += k;
    return k;
  }
}

/** Chunks of an in-memory buffer (tests, small embedded blobs). */
export function bufferChunks(buf: Buffer): AsyncIterator<Buffer> {
  return (async function* () {
    yield buf;
  })();
}
