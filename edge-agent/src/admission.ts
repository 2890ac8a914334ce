// Admission control: at most `maxActive` transcriptions in progress, at most `maxQueue` waiting; beyond
// that the caller is refused at once (HTTP 429 with a Retry-After estimated from recent service times).

export class Rejected {
  constructor(readonly retryAfterSeconds: number) {}
}

import { WeightedSemaphore } from './semaphore.js';

export class Admission {
  private readonly slots: WeightedSemaphore;
  /** EWMA of a request's service time, seconds. */
  private serviceSeconds = 1;

  constructor(
    readonly maxActive: number,
    readonly maxQueue: number,
    onChange: (active: number, queued: number) => void = () => undefined,
  ) {
    this.slots = new WeightedSemaphore(maxActive, maxQueue, onChange);
  }

  get activeCount(): number {
    return this.slots.used;
  }

  get queuedCount(): number {
    return this.slots.waiting;
  }

  /** A release function now, a promise of one after queueing, or Rejected when full. */
  acquire(signal?: AbortSignal): (() => void) | Promise<() => void> | Rejected {
    return this.slots.acquire(1, signal, 'request aborted while queued') ?? new Rejected(this.retryAfter());
  }

  /** Feeds the Retry-After estimate. */
  observeServiceTime(seconds: number): void {
    this.serviceSeconds = 0.8 * this.serviceSeconds + 0.2 * seconds;
  }

  retryAfter(): number {
    // Time for the queue ahead to drain through maxActive slots, at least one second.
    return Math.max(1, Math.ceil((this.serviceSeconds * (this.slots.waiting + 1)) / this.maxActive));
  }
}
