// An informer: a local cache of one resource type kept current by list + watch, and event handlers.
// client-node's informer stops for good on errors; this one never gives up while it runs:
// - the server ends a watch (timeoutSeconds) → watch again from the last resourceVersion;
// - 410 Gone / "too old resource version" → list again (relist) and diff against the cache;
// - any other error → wait with exponential backoff (jittered), then relist;
// - every resync period → every cached object is handed to onResync (a level-based safety net).
// Several namespaces ("a,b": the operator's namespaced install mode watching more than one) are
// one list + watch loop each, with its own resourceVersion, into one cache; synced when all are.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient, ResourceType, WatchEvent } from '../kube/client.js';
import { ApiError, isGone, keyOf } from '../kube/client.js';

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
  onResync?(obj: T): void;
}

export interface InformerMetrics {
  relisted(kind: string): void;
  watchRestarted(kind: string, reason: 'closed' | 'gone' | 'error'): void;
  objects(kind: string, n: number): void;
}

export interface InformerOptions {
  /** One namespace, or several separated by commas; absent: every namespace. */
  namespace?: string;
  labelSelector?: string;
  /** Items per page of the initial and later lists. */
  pageSize?: number;
  resyncPeriodMs?: number;
  /** The server closes each watch after a random time between min and 2·min. */
  watchTimeoutSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  metrics?: InformerMetrics;
  /** Drop fields the operator never reads before caching (saves memory with many objects). */
  transform?: (obj: KubernetesObject) => KubernetesObject;
}

function resourceVersionOf(obj: KubernetesObject): string {
  return obj.metadata?.resourceVersion ?? '';
}

export class Informer<T extends KubernetesObject> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly byLabel = new Map<string, Map<string, Set<string>>>();
  private readonly indexedLabels: string[] = [];
  /** Per watched namespace ('' = all): the resourceVersion to watch from. */
  private readonly resourceVersions = new Map<string, string>();
  private readonly namespaces: (string | undefined)[];
  private readonly syncedNamespaces = new Set<string>();
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private abort: AbortController | undefined;
  private running: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly opts: Required<Omit<InformerOptions, 'namespace' | 'labelSelector' | 'metrics' | 'transform'>> & InformerOptions;

  constructor(
    private readonly client: KubeClient,
    readonly type: ResourceType,
    private readonly log: Logger,
    opts: InformerOptions = {},
  ) {
    this.opts = {
      pageSize: 500,
      resyncPeriodMs: 10 * 60_000,
      watchTimeoutSeconds: 300,
      backoffInitialMs: 800,
      backoffMaxMs: 30_000,
      ...opts,
    };
    const listed = (opts.namespace ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
    this.namespaces = type.namespaced && listed.length > 0 ? [...new Set(listed)] : [undefined];
  }

  addHandlers(h: InformerHandlers<T>): void {
    this.handlers.push(h);
  }

  /** Keep an index of objects by the value of this label (call before start). */
  indexByLabel(label: string): void {
    this.indexedLabels.push(label);
    this.byLabel.set(label, new Map());
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  size(): number {
    return this.store.size;
  }

  /** Cached objects of `namespace` whose `label` equals `value` (label registered with indexByLabel). */
  byLabelValue(label: string, namespace: string | undefined, value: string): T[] {
    const index = this.byLabel.get(label);
    if (!index) throw new Error(`label ${label} is not indexed`);
    const keys = index.get(`${namespace ?? ''}/${value}`);
    if (!keys) return [];
    const out: T[] = [];
    for (const k of keys) {
      const obj = this.store.get(k);
      if (obj) out.push(obj);
    }
    return out;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    if (this.running) return;
    this.abort = new AbortController();
    this.running = this.run(this.abort.signal);
    if (this.opts.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), this.opts.resyncPeriodMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.abort?.abort();
    await this.running;
    this.running = undefined;
  }

  /** Hands every cached object to onResync. */
  resync(): void {
    for (const obj of this.store.values()) this.emit((h) => h.onResync?.(obj));
  }

  private async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.namespaces.map((ns) => this.runNamespace(ns, signal)));
  }

  private async runNamespace(namespace: string | undefined, signal: AbortSignal): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist(namespace, signal);
          needList = false;
        }
        if (signal.aborted) break;
        await this.watchOnce(namespace, signal);
        failures = 0;
        if (!signal.aborted) this.opts.metrics?.watchRestarted(this.type.kind, 'closed');
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.log.info({ kind: this.type.kind, namespace, resourceVersion: this.resourceVersions.get(namespace ?? '') }, 'Watch expired (410 Gone), relisting');
          this.opts.metrics?.watchRestarted(this.type.kind, 'gone');
          needList = true;
          continue;
        }
        failures += 1;
        needList = true;
        const delay = this.backoff(failures);
        this.log.warn({ kind: this.type.kind, namespace, err, attempt: failures, retryInMs: delay }, 'List/watch failed, retrying');
        this.opts.metrics?.watchRestarted(this.type.kind, 'error');
        await sleep(delay, signal);
      }
    }
  }

  private backoff(failures: number): number {
    const exp = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** (failures - 1));
    return Math.round(exp * (0.5 + Math.random() / 2));
  }

  private async relist(namespace: string | undefined, signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.list<T>(this.type, {
        namespace,
        labelSelector: this.opts.labelSelector,
        limit: this.opts.pageSize,
        ...(cont ? { continue: cont } : {}),
      });
      for (const item of page.items) fresh.set(keyOf(item), this.transform(item));
      rv = page.resourceVersion;
      cont = page.continue;
    } while (cont && !signal.aborted);
    if (signal.aborted) return;
    this.opts.metrics?.relisted(this.type.kind);
    // Diff against the cache (this namespace's part of it): events for what changed while no watch was open.
    for (const [key, old] of this.store) {
      if (namespace !== undefined && old.metadata?.namespace !== namespace) continue;
      if (!fresh.has(key)) {
        this.remove(key, old);
        this.emit((h) => h.onDelete?.(old));
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      this.put(key, obj, old);
      if (!old) this.emit((h) => h.onAdd?.(obj));
      else if (resourceVersionOf(old) !== resourceVersionOf(obj)) this.emit((h) => h.onUpdate?.(old, obj));
    }
    this.resourceVersions.set(namespace ?? '', rv);
    this.opts.metrics?.objects(this.type.kind, this.store.size);
    this.syncedNamespaces.add(namespace ?? '');
    if (!this.synced && this.syncedNamespaces.size === this.namespaces.length) {
      this.synced = true;
      this.log.debug({ kind: this.type.kind, objects: this.store.size }, 'Cache synced');
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watchOnce(namespace: string | undefined, signal: AbortSignal): Promise<void> {
    const timeoutSeconds = Math.round(this.opts.watchTimeoutSeconds * (1 + Math.random()));
    let gone: ApiError | undefined;
    const watchAbort = new AbortController();
    const onAbort = () => watchAbort.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.client.watch(this.type, {
        namespace,
        labelSelector: this.opts.labelSelector,
        resourceVersion: this.resourceVersions.get(namespace ?? '') ?? '',
        timeoutSeconds,
        allowWatchBookmarks: true,
      }, (event) => {
        if (gone) return;
        const err = this.apply(namespace ?? '', event);
        if (err) {
          gone = err;
          watchAbort.abort();
        }
      }, watchAbort.signal);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (gone) throw gone;
  }

  /** Applies one watch event to the cache; returns an error that ends this watch. */
  private apply(ns: string, event: WatchEvent): ApiError | undefined {
    const advance = (obj: KubernetesObject) => {
      const rv = resourceVersionOf(obj);
      if (rv) this.resourceVersions.set(ns, rv);
    };
    const obj = event.object as unknown as T;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = keyOf(obj);
        const item = this.transform(obj);
        const old = this.store.get(key);
        this.put(key, item, old);
        advance(obj);
        if (old) this.emit((h) => h.onUpdate?.(old, item));
        else this.emit((h) => h.onAdd?.(item));
        this.opts.metrics?.objects(this.type.kind, this.store.size);
        return undefined;
      }
      case 'DELETED': {
        const key = keyOf(obj);
        const old = this.store.get(key);
        this.remove(key, old);
        advance(obj);
        this.emit((h) => h.onDelete?.(old ?? obj));
        this.opts.metrics?.objects(this.type.kind, this.store.size);
        return undefined;
      }
      case 'BOOKMARK':
        advance(obj);
        return undefined;
      case 'ERROR': {
        const status = event.object as { code?: number; reason?: string; message?: string };
        return new ApiError(status.code ?? 500, status.reason ?? 'Unknown', `watch ${this.type.plural}: ${status.message ?? 'error event'}`);
      }
      default:
        return undefined;
    }
  }

  private transform(obj: T): T {
    return this.opts.transform ? (this.opts.transform(obj) as T) : obj;
  }

  private put(key: string, obj: T, old: T | undefined): void {
    if (old) this.unindex(key, old);
    this.store.set(key, obj);
    for (const label of this.indexedLabels) {
      const value = obj.metadata?.labels?.[label];
      if (value === undefined) continue;
      const index = this.byLabel.get(label);
      const bucket = `${obj.metadata?.namespace ?? ''}/${value}`;
      let set = index?.get(bucket);
      if (!set) {
        set = new Set();
        index?.set(bucket, set);
      }
      set.add(key);
    }
  }

  private remove(key: string, old: T | undefined): void {
    if (old) this.unindex(key, old);
    this.store.delete(key);
  }

  private unindex(key: string, obj: T): void {
    for (const label of this.indexedLabels) {
      const value = obj.metadata?.labels?.[label];
      if (value === undefined) continue;
      const index = this.byLabel.get(label);
      const bucket = `${obj.metadata?.namespace ?? ''}/${value}`;
      const set = index?.get(bucket);
      set?.delete(key);
      if (set && set.size === 0) index?.delete(bucket);
    }
  }

  private emit(fn: (h: InformerHandlers<T>) => void): void {
    for (const h of this.handlers) {
      try {
        fn(h);
      } catch (err) {
        this.log.error({ kind: this.type.kind, err }, 'Informer event handler threw');
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', done);
      resolve();
    }, ms);
    const done = () => {
      clearTimeout(t);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
  });
}
