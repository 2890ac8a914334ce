// The upload budget: bytes of request bodies the agent holds in memory at once. A transcription reserves
// its declared size (or the largest allowed body) *before* its body is read and keeps the reservation
// until it is answered, so raw uploads + their decoded audio stay within a bound proportional to the
// budget whatever the mix of uploads. Waiters are served first come, first served (a large upload is not
// starved by small ones), at most `maxWaiters` wait, the rest are refused at once (HTTP 429).
import { Rejected } from './admission.js';
import { WeightedSemaphore } from './semaphore.js';

export class UploadBudget {
  private readonly bytes: WeightedSemaphore;

  constructor(
    readonly capacityBytes: number,
    readonly maxWaiters: number,
    onChange: (usedBytes: number, waiting: number) => void = () => undefined,
  ) {
    if (!(capacityBytes > 0)) throw new Error('the upload budget must be positive');
    this.bytes = new WeightedSemaphore(capacityBytes, maxWaiters, onChange);
  }

  get usedBytes(): number {
    return this.bytes.used;
  }

  get waiting(): number {
    return this.bytes.waiting;
  }

  /**
   * Reserves `bytes` (clamped to the capacity): a release function now, a promise of one after waiting,
   * or Rejected when `maxWaiters` already wait. An aborted wait rejects and leaves the queue.
   */
  reserve(bytes: number, signal?: AbortSignal): (() => void) | Promise<() => void> | Rejected {
    return this.bytes.acquire(bytes, signal, 'request aborted while waiting for the upload budget') ?? new Rejected(1);
  }
}
