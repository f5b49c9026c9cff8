/**
 * What the streaming readers need of their input: read or skip forward, and the offset reached. The scanner's
 * ByteReader over files and archive entries is one; `fileBytes` (whole files, chunked positional reads) and
 * `bufferBytes` (bytes in memory) are the others.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface ByteSource {
  /** Absolute offset of the next unread byte. */
  readonly offset: number;
  /** Exactly `n` bytes, or null when the input ends first. */
  read(n: number): Promise<Buffer | null>;
  /** Skips `n` bytes; false when the input ends first. */
  skip(n: number): Promise<boolean>;
}

const CHUNK = 1 << 20;

/** Forward reads over an open file: one positional read per megabyte, skips move the position without reading. */
export class FileBytes implements ByteSource {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  offset = 0;

  constructor(
    private readonly handle: Pick<FileHandle, 'read'>,
    readonly size: number,
  ) {}

  async read(n: number): Promise<Buffer | null> {
    if (this.offset + n > this.size) return null;
    const at = this.offset - this.bufStart;
    if (at < 0 || at + n > this.buf.length) {
      const length = Math.min(Math.max(n, CHUNK), this.size - this.offset);
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await this.handle.read(buf, done, length - done, this.offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      this.buf = buf.subarray(0, done);
      this.bufStart = this.offset;
      if (done < n) return null;
    }
    const from = this.offset - this.bufStart;
    this.offset += n;
    return Buffer.from(this.buf.subarray(from, from + n));
  }

  async skip(n: number): Promise<boolean> {
    if (this.offset + n > this.size) {
      this.offset = this.size;
      return false;
    }
    this.offset += n;
    return true;
  }
}

/** Bytes in memory as a source (tests, small files read whole). */
export function bufferBytes(bytes: Buffer): ByteSource {
  let offset = 0;
  return {
    get offset() {
      return offset;
    },
    async read(n) {
      if (offset + n > bytes.length) return null;
      const out = Buffer.from(bytes.subarray(offset, offset + n));
      offset += n;
      return out;
    },
    async skip(n) {
      const ok = offset + n <= bytes.length;
      offset = Math.min(bytes.length, offset + n);
      return ok;
    },
  };
}

/** Runs `use` over a file opened for forward reads, and closes it whatever happens. */
export async function withFileBytes<T>(path: string, use: (bytes: FileBytes) => Promise<T>): Promise<T> {
  const handle = await open(path, 'r');
  try {
    return await use(new FileBytes(handle, (await handle.stat()).size));
  } finally {
    await handle.close();
  }
}

/** The first `n` bytes of a file (fewer when it is shorter). */
export async function readHead(path: string, n: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Positional reads, what random-access readers need of a file: a `FileHandle` is one, and so is the scanner's. */
export interface PositionalRead {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}
