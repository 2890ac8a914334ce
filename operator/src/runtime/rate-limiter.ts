// Rate limiters of the work queue, after client-go's workqueue: a per-item exponential backoff for
// failing keys and an overall token bucket, combined by taking the longer delay. Pure: time comes in.

export interface RateLimiter {
  /** Delay before `key` may be processed again, in ms; counts one more failure of the key. */
  when(key: string, nowMs: number): number;
  forget(key: string): void;
  failures(key: string): number;
}

/** base · 2^failures, capped at max (defaults 5 ms → 1000 s). */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly baseMs = 5, private readonly maxMs = 1_000_000) {}

  when(key: string, _nowMs: number): number {
    const n = this.counts.get(key) ?? 0;
    this.counts.set(key, n + 1);
    // 2^n overflows to Infinity long before n gets large; the cap keeps the result finite.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(key: string): void {
    this.counts.delete(key);
  }

  failures(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Keys with a failure count (for tests and leak checks). */
  size(): number {
    return this.counts.size;
  }
}

/** Overall limit for all keys together: `qps` sustained, `burst` at once (golang.org/x/time/rate reservations). */
export class TokenBucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number | undefined;

  constructor(private readonly qps: number, private readonly burst: number) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`token bucket needs qps > 0 and burst ≥ 1, got qps=${qps} burst=${burst}`);
    this.tokens = burst;
  }

  when(_key: string, nowMs: number): number {
    if (this.last !== undefined) {
      const elapsed = Math.max(0, nowMs - this.last) / 1000;
      this.tokens = Math.min(this.burst, this.tokens + elapsed * this.qps);
    }
    this.last = nowMs;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }

  forget(_key: string): void {}

  failures(_key: string): number {
    return 0;
  }
}

export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string, nowMs: number): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key, nowMs)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  failures(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.failures(key)));
  }
}

export interface QueueRateLimits {
  baseDelayMs: number;
  maxDelayMs: number;
  qps: number;
  burst: number;
}

export const DEFAULT_QUEUE_RATE_LIMITS: QueueRateLimits = { baseDelayMs: 5, maxDelayMs: 1_000_000, qps: 10, burst: 100 };

export function defaultControllerRateLimiter(limits: QueueRateLimits = DEFAULT_QUEUE_RATE_LIMITS): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialRateLimiter(limits.baseDelayMs, limits.maxDelayMs),
    new TokenBucketRateLimiter(limits.qps, limits.burst),
  );
}
