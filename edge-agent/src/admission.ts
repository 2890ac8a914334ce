// Admission control: at most `maxActive` transcriptions in progress, at most `maxQueue` waiting; beyond
// that the caller is refused at once (HTTP 429 with a Retry-After estimated from recent service times).

export class Rejected {
  constructor(readonly retryAfterSeconds: number) {}
}

interface Waiter {
  grant: (release: () => void) => void;
  cancelled: boolean;
}

export class Admission {
  private active = 0;
  private readonly waiters: Waiter[] = [];
  /** EWMA of a request's service time, seconds. */
  private serviceSeconds = 1;

  constructor(
    readonly maxActive: number,
    readonly maxQueue: number,
    private readonly onChange: (active: number, queued: number) => void = () => undefined,
  ) {}

  get activeCount(): number {
    return this.active;
  }

  get queuedCount(): number {
    return this.waiters.length;
  }

  /** A release function now, a promise of one after queueing, or Rejected when full. */
  acquire(signal?: AbortSignal): (() => void) | Promise<() => void> | Rejected {
    if (this.active < this.maxActive && this.waiters.length === 0) {
      this.active++;
      this.changed();
      return this.releaser();
    }
    if (this.waiters.length >= this.maxQueue) return new Rejected(this.retryAfter());
    return new Promise<() => void>((resolve, reject) => {
      const w: Waiter = { grant: resolve, cancelled: false };
      this.waiters.push(w);
      this.changed();
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            w.cancelled = true;
            this.changed();
            reject(new Error('request aborted while queued'));
          }
        },
        { once: true },
      );
    });
  }

  /** Feeds the Retry-After estimate. */
  observeServiceTime(seconds: number): void {
    this.serviceSeconds = 0.8 * this.serviceSeconds + 0.2 * seconds;
  }

  retryAfter(): number {
    // Time for the queue ahead to drain through maxActive slots, at least one second.
    return Math.max(1, Math.ceil((this.serviceSeconds * (this.waiters.length + 1)) / this.maxActive));
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) next.grant(this.releaser());
      else this.active--;
      this.changed();
    };
  }

  private changed(): void {
    this.onChange(this.active, this.waiters.length);
  }
}
