// A work queue of object keys, after client-go's workqueue: a key is queued at most once however
// often it is added (de-duplicated), a key being processed is never handed to a second worker (it is
// re-queued when the first one is done if it was added meanwhile), delayed adds keep the earliest
// time, and failed keys come back after the rate limiter's delay.
import type { RateLimiter } from './rate-limiter.js';

export interface QueueMetrics {
  depth(n: number): void;
  added(): void;
  retried(): void;
  /** Seconds between a key becoming ready and a worker taking it. */
  waited(seconds: number): void;
}

export class WorkQueue {
  private items: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly readySince = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly metrics?: QueueMetrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** Keys waiting to be processed (not those in flight or delayed). */
  len(): number {
    return this.items.length - this.head;
  }

  inFlight(): number {
    return this.processing.size;
  }

  delayedCount(): number {
    return this.delayed.size;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    this.metrics?.added();
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.readySince.set(key, this.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  addRateLimited(key: string): void {
    this.metrics?.retried();
    this.addAfter(key, this.limiter.when(key, this.now()));
  }

  /** The key succeeded: its backoff starts from the base delay again. */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.failures(key);
  }

  /** The next key, marked in flight; undefined once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
  }

  /** Stop accepting keys and release the workers waiting in get(); keys still queued are dropped. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.items = [];
    this.head = 0;
    this.dirty.clear();
    this.metrics?.depth(0);
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      this.processing.add(key);
      this.dirty.delete(key);
      this.observeWait(key);
      waiter(key);
      return;
    }
    this.items.push(key);
    this.metrics?.depth(this.len());
  }

  private take(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const key = this.items[this.head];
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (key === undefined) return undefined;
    this.processing.add(key);
    this.dirty.delete(key);
    this.observeWait(key);
    this.metrics?.depth(this.len());
    return key;
  }

  private observeWait(key: string): void {
    const since = this.readySince.get(key);
    this.readySince.delete(key);
    if (since !== undefined) this.metrics?.waited((this.now() - since) / 1000);
  }
}
