/**
 * An append-only JSON Lines log written in batches: records wait in a buffer of bounded size and are written when
 * `flushRecords` have gathered or `flushMs` has passed. When the disk is slower than the traffic the buffer fills,
 * and new records are dropped and counted rather than held: a model server must not run out of memory for its log.
 * Files are `<prefix>-<startedAtMs>-<pid>-<seq>.jsonl`, one writer each, rotated at `rotateBytes`; mode 0600 in a
 * 0700 directory (requests carry personal data).
 */
import { chmod, mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export interface InferenceLogOptions {
  dir: string;
  /** `inference` or `feedback`. */
  prefix: string;
  flushRecords: number;
  flushMs: number;
  maxBufferBytes: number;
  rotateBytes: number;
  startedAtMs?: number;
  /** Called with the number of records dropped (buffer full, or a write that failed). */
  onDrop?: (records: number, reason: 'buffer_full' | 'write_failed') => void;
  /** Called once per failed write, with an error that names the file. */
  onError?: (err: Error) => void;
}

export class InferenceLog {
  private buffer: string[] = [];
  private bufferedBytes = 0;
  private file: FileHandle | undefined;
  private fileBytes = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private closed = false;
  private readonly startedAtMs: number;
  /** Records written to disk, and dropped, since start. */
  written = 0;
  dropped = 0;

  private constructor(private readonly options: InferenceLogOptions) {
    this.startedAtMs = options.startedAtMs ?? Date.now();
  }

  /** Creates the directory (0700) and returns a log that opens its first file on the first write. */
  static async open(options: InferenceLogOptions): Promise<InferenceLog> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    try {
      await chmod(options.dir, 0o700);
    } catch (err) {
      // A mounted volume's root may belong to another user: the files themselves stay 0600.
      options.onError?.(
        new Error(`${options.dir}: cannot make the log directory private (${(err as NodeJS.ErrnoException).code})`),
      );
    }
    return new InferenceLog(options);
  }

  /** Queues one record; false when it was dropped because the buffer is full. */
  append(record: unknown): boolean {
    if (this.closed) return false;
    const line = `${JSON.stringify(record)}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.bufferedBytes + bytes > this.options.maxBufferBytes) {
      this.dropped++;
      this.options.onDrop?.(1, 'buffer_full');
      return false;
    }
    this.buffer.push(line);
    this.bufferedBytes += bytes;
    if (this.buffer.length >= this.options.flushRecords) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.options.flushMs).unref();
    return true;
  }

  /** Writes everything buffered so far; resolves when it is on disk (or dropped after a failed write). */
  async flush(): Promise<void> {
    while (this.writing || this.buffer.length > 0) {
      if (!this.writing) this.kick();
      await this.writing;
    }
  }

  /** Flushes and closes the file; later appends are refused. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.file?.close();
    this.file = undefined;
  }

  /** Bytes waiting in memory. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing || this.buffer.length === 0) return;
    const lines = this.buffer;
    const bytes = this.bufferedBytes;
    this.buffer = [];
    this.writing = this.write(lines)
      .catch((err: unknown) => {
        this.dropped += lines.length;
        this.options.onDrop?.(lines.length, 'write_failed');
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message.slice(0, 80);
        this.options.onError?.(
          new Error(
            `${this.options.dir}: writing the ${this.options.prefix} log failed (${code}); ${lines.length} records dropped`,
          ),
        );
        // A failed file may be half written: start a new one rather than append after a torn line.
        void this.file?.close().catch(() => {});
        this.file = undefined;
      })
      .finally(() => {
        // The bytes stay counted until written, so the bound holds while the disk is slow.
        this.bufferedBytes -= bytes;
        this.writing = undefined;
        if (this.buffer.length >= this.options.flushRecords) this.kick();
        else if (this.buffer.length > 0) this.timer ??= setTimeout(() => this.kick(), this.options.flushMs).unref();
      });
  }

  private async write(lines: string[]): Promise<void> {
    // One write per file: lines are split only at rotation, never inside a line.
    let chunk: string[] = [];
    let chunkBytes = 0;
    for (const line of lines) {
      const bytes = Buffer.byteLength(line);
      if (this.fileBytes + chunkBytes + bytes > this.options.rotateBytes && this.fileBytes + chunkBytes > 0) {
        await this.writeChunk(chunk);
        chunk = [];
        chunkBytes = 0;
        await this.rotate();
      }
      chunk.push(line);
      chunkBytes += bytes;
    }
    await this.writeChunk(chunk);
  }

  private async writeChunk(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    const file = this.file ?? (await this.openNext());
    const data = Buffer.from(lines.join(''));
    await file.write(data);
    this.fileBytes += data.byteLength;
    this.written += lines.length;
  }

  private async rotate(): Promise<void> {
    await this.file?.close();
    this.file = undefined;
    this.fileBytes = 0;
  }

  private async openNext(): Promise<FileHandle> {
    this.seq++;
    const name = `${this.options.prefix}-${this.startedAtMs}-${process.pid}-${this.seq}.jsonl`;
    this.file = await open(join(this.options.dir, name), 'wx', 0o600);
    this.fileBytes = 0;
    return this.file;
  }
}
