/**
 * A forward-only byte reader over a stream of chunks. Parsers look at `buf` from `pos` directly (fast path) and ask
 * for more with `fill(n)` only when a value crosses a chunk boundary, so memory stays at a few chunks whatever the
 * input's size.
 */
import type { FileHandle } from 'node:fs/promises';

const EMPTY = Buffer.alloc(0);

/** Read size for files: large enough that per-chunk overhead vanishes next to parsing. */
export const READ_CHUNK = 1 << 20;

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

/** Reads an open file chunk by chunk from a position; the caller owns (and closes) the handle. */
export class FileSource {
  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    public position = 0,
  ) {}

  async next(): Promise<Buffer | null> {
    const n = Math.min(READ_CHUNK, this.size - this.position);
    if (n <= 0) return null;
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
