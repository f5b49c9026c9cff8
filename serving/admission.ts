/**
 * Bounded admission: at most `maxInflight` requests are worked on at once and at most `maxQueue` wait for a place.
 * A request beyond both is refused at once (the caller answers 429 with Retry-After), so a burst costs the server a
 * bounded amount of memory and every admitted request a bounded wait, instead of a queue that grows until it dies.
 */
export class Admission {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly maxInflight: number,
    private readonly maxQueue: number,
    private readonly onChange: (inflight: number, queued: number) => void = () => {},
  ) {}

  get inflight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** A release function once a place is free, or undefined at once when the queue is full. */
  tryAcquire(): Promise<() => void> | undefined {
    if (this.active < this.maxInflight) {
      this.active++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) return undefined;
    return new Promise((resolve) => {
      this.waiting.push(() => resolve(this.releaser()));
      this.changed();
    });
  }

  /** Resolves once nothing is in flight or waiting. */
  async idle(): Promise<void> {
    while (this.active > 0 || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  private readonly idleWaiters: (() => void)[] = [];

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The place passes straight to the next waiter, so `active` never dips and lets a newcomer jump the queue.
      if (next) next();
      else this.active--;
      this.changed();
    };
  }

  private changed(): void {
    this.onChange(this.active, this.waiting.length);
    if (this.active === 0 && this.waiting.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}
