// A controller: a work queue of keys and a fixed number of workers that run a Reconciler. The queue
// guarantees that one key is never reconciled by two workers at once.
import type { Logger } from 'pino';
import type { OperatorMetrics } from './metrics.js';
import { defaultControllerRateLimiter, type QueueRateLimits } from './rate-limiter.js';
import type { Reconciler } from './reconcile.js';
import { TerminalError } from './reconcile.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  name: string;
  workers: number;
  rateLimits: QueueRateLimits;
}

export class Controller {
  readonly queue: WorkQueue;
  private workers: Promise<void>[] = [];
  private started = false;

  constructor(
    private readonly opts: ControllerOptions,
    private readonly reconciler: Reconciler,
    private readonly metrics: OperatorMetrics,
    private readonly log: Logger,
  ) {
    this.queue = new WorkQueue(defaultControllerRateLimiter(opts.rateLimits), metrics.queue(opts.name));
  }

  get name(): string {
    return this.opts.name;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.opts.workers; i += 1) this.workers.push(this.work());
    this.log.info({ controller: this.opts.name, workers: this.opts.workers }, 'Controller started');
  }

  /** Stops taking keys and waits (at most timeoutMs) for the reconciles in flight to finish. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.queue.shutDown();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(this.workers).then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    return finished;
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const controller = this.opts.name;
    const end = this.metrics.reconcileDuration.startTimer({ controller });
    let result = 'success';
    try {
      const res = await this.reconciler.reconcile(key);
      this.queue.forget(key);
      if (res.requeueAfterMs && res.requeueAfterMs > 0) {
        result = 'requeue';
        this.queue.addAfter(key, res.requeueAfterMs);
      }
    } catch (err) {
      if (err instanceof TerminalError) {
        result = 'terminal_error';
        this.queue.forget(key);
        this.log.error({ controller, key, err }, 'Reconcile failed permanently; not retrying');
      } else {
        result = 'error';
        const failures = this.queue.numRequeues(key);
        this.queue.addRateLimited(key);
        this.log.warn({ controller, key, err, failures: failures + 1 }, 'Reconcile failed; retrying with backoff');
      }
    } finally {
      end();
      this.metrics.reconciles.inc({ controller, result });
      this.queue.done(key);
    }
  }
}
