/**
 * Predicts the rows of concurrent requests together: requests that arrive while the model is busy (or in the same
 * turn of the event loop) share the next model call, up to `maxRows`. No request waits on a timer for company, so a
 * lone request pays nothing, and under load the per-call overhead of tfjs is paid once per batch, not per request.
 */
interface Job {
  x: Float32Array;
  rows: number;
  resolve: (probabilities: Float32Array) => void;
  reject: (err: unknown) => void;
}

export class Batcher {
  private pending: Job[] = [];
  private scheduled = false;

  constructor(
    private readonly inputDim: number,
    private readonly maxRows: number,
    /** [rows, 2] probabilities for row-major x. */
    private readonly predict: (x: Float32Array, rows: number) => Float32Array,
  ) {}

  /** Class probabilities of the rows (rows × 2, row-major). */
  submit(x: Float32Array, rows: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.pending.push({ x, rows, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate runs after the I/O already waiting, so requests read in this turn join the batch.
        setImmediate(() => this.drain());
      }
    });
  }

  private drain(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch: Job[] = [];
      let rows = 0;
      while (this.pending.length > 0 && (batch.length === 0 || rows + this.pending[0]!.rows <= this.maxRows)) {
        const job = this.pending.shift()!;
        batch.push(job);
        rows += job.rows;
      }
      this.run(batch, rows);
    }
  }

  private run(batch: Job[], rows: number): void {
    let x: Float32Array;
    if (batch.length === 1) x = batch[0]!.x;
    else {
      x = new Float32Array(rows * this.inputDim);
      let offset = 0;
      for (const job of batch) {
        x.set(job.x, offset);
        offset += job.x.length;
      }
    }
    let probabilities: Float32Array;
    try {
      probabilities = this.predict(x, rows);
    } catch (err) {
      for (const job of batch) job.reject(err);
      return;
    }
    let offset = 0;
    for (const job of batch) {
      job.resolve(probabilities.subarray(offset, offset + job.rows * 2));
      offset += job.rows * 2;
    }
  }
}
