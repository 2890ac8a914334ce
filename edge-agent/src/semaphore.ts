// A weighted FIFO semaphore: `capacity` units shared by holders, at most `maxWaiters` waiting, served
// first come, first served (a heavy waiter at the head is not starved by lighter ones behind it). The
// agent's admission (stream slots, weight 1) and upload budget (bytes of bodies) are both this.

interface Waiter {
  weight: number;
  grant: (release: () => void) => void;
}

export class WeightedSemaphore {
  private held = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly capacity: number,
    readonly maxWaiters: number,
    private readonly onChange: (used: number, waiting: number) => void = () => undefined,
  ) {
    if (!(capacity > 0)) throw new Error('a semaphore needs a positive capacity');
  }

  get used(): number {
    return this.held;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Takes `weight` units (clamped to 0..capacity): a release function now (nobody waits and they are
   * free), a promise of one after waiting, or undefined when `maxWaiters` already wait. An aborted wait
   * rejects with `abortMessage` and leaves the queue. Each release function releases once.
   */
  acquire(weight: number, signal: AbortSignal | undefined, abortMessage: string): (() => void) | Promise<() => void> | undefined {
    const n = Math.min(Math.max(0, Math.ceil(weight)), this.capacity);
    if (this.waiters.length === 0 && this.held + n <= this.capacity) {
      this.held += n;
      this.changed();
      return this.releaser(n);
    }
    if (this.waiters.length >= this.maxWaiters) return undefined;
    return new Promise<() => void>((resolve, reject) => {
      const w: Waiter = { weight: n, grant: resolve };
      this.waiters.push(w);
      this.changed();
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          reject(new Error(abortMessage));
          // The head may have been the one that did not fit: those behind it may now.
          this.grantWaiting();
        },
        { once: true },
      );
    });
  }

  private releaser(n: number): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.held -= n;
      this.grantWaiting();
    };
  }

  private grantWaiting(): void {
    for (let w = this.waiters[0]; w && this.held + w.weight <= this.capacity; w = this.waiters[0]) {
      this.waiters.shift();
      this.held += w.weight;
      w.grant(this.releaser(w.weight));
    }
    this.changed();
  }

  private changed(): void {
    this.onChange(this.held, this.waiters.length);
  }
}
