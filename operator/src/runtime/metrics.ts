// The operator's own Prometheus registry: reconciles, queue, leader state, informers, process.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { InformerMetrics } from './informer.js';
import type { QueueMetrics } from './work-queue.js';

export const METRIC_PREFIX = 'whisperops_operator_';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'controller' | 'result'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly queueAdds: Counter<'controller'>;
  readonly queueRetries: Counter<'controller'>;
  readonly queueWait: Histogram<'controller'>;
  readonly leader: Gauge;
  readonly relists: Counter<'kind'>;
  readonly watchRestarts: Counter<'kind' | 'reason'>;
  readonly cachedObjects: Gauge<'kind'>;
  readonly finished: Counter<'kind' | 'phase'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const p = METRIC_PREFIX;
    this.reconciles = new Counter({ name: `${p}reconcile_total`, help: 'Reconciles by controller and result (success, requeue, error, terminal_error).', labelNames: ['controller', 'result'], registers });
    this.reconcileDuration = new Histogram({
      name: `${p}reconcile_duration_seconds`, help: 'Time spent in one reconcile.', labelNames: ['controller'], registers,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.queueDepth = new Gauge({ name: `${p}workqueue_depth`, help: 'Keys waiting in the work queue.', labelNames: ['controller'], registers });
    this.queueAdds = new Counter({ name: `${p}workqueue_adds_total`, help: 'Adds to the work queue (before de-duplication).', labelNames: ['controller'], registers });
    this.queueRetries = new Counter({ name: `${p}workqueue_retries_total`, help: 'Rate-limited re-adds after failed reconciles.', labelNames: ['controller'], registers });
    this.queueWait = new Histogram({
      name: `${p}workqueue_queue_duration_seconds`, help: 'Time a key waits in the queue before a worker takes it.', labelNames: ['controller'], registers,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    });
    this.leader = new Gauge({ name: `${p}leader`, help: '1 while this replica holds the leader Lease and runs the controllers.', registers });
    this.relists = new Counter({ name: `${p}informer_relists_total`, help: 'Full lists by informers (start, 410 Gone, errors).', labelNames: ['kind'], registers });
    this.watchRestarts = new Counter({ name: `${p}informer_watch_restarts_total`, help: 'Watches that ended and were reopened, by reason.', labelNames: ['kind', 'reason'], registers });
    this.cachedObjects = new Gauge({ name: `${p}informer_cached_objects`, help: 'Objects in the informer cache.', labelNames: ['kind'], registers });
    this.finished = new Counter({ name: `${p}runs_finished_total`, help: 'Runs that reached a terminal phase (FineTuneJobs: Succeeded, Failed).', labelNames: ['kind', 'phase'], registers });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: p });
  }

  queue(controller: string): QueueMetrics {
    return {
      depth: (n) => this.queueDepth.set({ controller }, n),
      added: () => this.queueAdds.inc({ controller }),
      retried: () => this.queueRetries.inc({ controller }),
      waited: (s) => this.queueWait.observe({ controller }, s),
    };
  }

  informer(): InformerMetrics {
    return {
      relisted: (kind) => this.relists.inc({ kind }),
      watchRestarted: (kind, reason) => this.watchRestarts.inc({ kind, reason }),
      objects: (kind, n) => this.cachedObjects.set({ kind }, n),
    };
  }
}
