// The upload budget: bytes of request bodies the agent holds in memory at once. A transcription reserves
// its declared size (or the largest allowed body) *before* its body is read and keeps the reservation
// until it is answered, so raw uploads + their decoded audio stay within a bound proportional to the
// budget whatever the mix of uploads. Waiters are served first come, first served (a large upload is not
// starved by small ones), at most `maxWaiters` wait, the rest are refused at once (HTTP 429).
import { Rejected } from './admission.js';

interface Waiter {
  bytes: number;
  grant: (release: () => void) => void;
}

export class UploadBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly capacityBytes: number,
    readonly maxWaiters: number,
    private readonly onChange: (usedBytes: number, waiting: number) => void = () => undefined,
  ) {
    if (!(capacityBytes > 0)) throw new Error('the upload budget must be positive');
  }

  get usedBytes(): number {
    return this.used;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Reserves `bytes` (clamped to the capacity): a release function now, a promise of one after waiting,
   * or Rejected when `maxWaiters` already wait. An aborted wait rejects and leaves the queue.
   */
  reserve(bytes: number, signal?: AbortSignal): (() => void) | Promise<() => void> | Rejected {
    const n = Math.min(Math.max(0, Math.ceil(bytes)), this.capacityBytes);
    if (this.waiters.length === 0 && this.used + n <= this.capacityBytes) {
      this.used += n;
      this.changed();
      return this.releaser(n);
    }
    if (this.waiters.length >= this.maxWaiters) return new Rejected(1);
    return new Promise<() => void>((resolve, reject) => {
      const w: Waiter = { bytes: n, grant: resolve };
      this.waiters.push(w);
      this.changed();
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          this.changed();
          reject(new Error('request aborted while waiting for the upload budget'));
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
      this.used -= n;
      this.grantWaiting();
      this.changed();
    };
  }

  private grantWaiting(): void {
    for (let w = this.waiters[0]; w && this.used + w.bytes <= this.capacityBytes; w = this.waiters[0]) {
      this.waiters.shift();
      this.used += w.bytes;
      w.grant(this.releaser(w.bytes));
    }
    this.changed();
  }

  private changed(): void {
    this.onChange(this.used, this.waiters.length);
  }
}
