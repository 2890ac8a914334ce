// An in-memory KubeClient for unit tests of the runtime (informers, leader election): objects with
// resourceVersions, conditional replace (409 on a stale resourceVersion), watches replayed from an
// event log, compaction (watches from before it get 410 Gone), and injected failures. Reconcilers
// are tested against the real control plane instead (test/e2e).
import type { KubernetesObject } from '@kubernetes/client-node';
import type {
  DeleteOptions, KubeClient, ListOptions, ListResult, ResourceType, WatchEvent, WatchOptions,
} from '../src/kube/client.js';
import { ApiError, objectKey } from '../src/kube/client.js';

type Obj = KubernetesObject & Record<string, unknown>;
interface LogEntry { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; typeKey: string; obj: Obj }
interface Watcher { typeKey: string; namespace?: string; onEvent: (e: WatchEvent) => void; end: (err?: Error) => void }

const typeKeyOf = (t: ResourceType) => `${t.group}/${t.plural}`;

function clone<T>(v: T): T {
  return structuredClone(v);
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class MemoryKubeClient implements KubeClient {
  private rv = 0;
  private compactedAt = 0;
  private readonly objects = new Map<string, Map<string, Obj>>();
  private readonly log: LogEntry[] = [];
  private watchers: Watcher[] = [];
  private readonly failures: { verb: string; err: Error }[] = [];
  /** Calls made, by verb (for assertions). */
  readonly calls: Record<string, number> = {};

  /** The next call of `verb` fails with `err`. */
  failNext(verb: 'list' | 'watch' | 'get' | 'create' | 'replace' | 'patch' | 'delete', err: Error): void {
    this.failures.push({ verb, err });
  }

  /** Forget the event log: watches from an older resourceVersion now get 410 Gone. */
  compact(): void {
    this.compactedAt = this.rv;
    this.log.length = 0;
  }

  /** The server ends every open watch (as after timeoutSeconds). */
  closeWatches(): void {
    for (const w of this.watchers.splice(0)) w.end();
  }

  /** Breaks every open watch with a connection error. */
  breakWatches(): void {
    for (const w of this.watchers.splice(0)) w.end(new Error('connection reset'));
  }

  openWatches(): number {
    return this.watchers.length;
  }

  /** Writes an object directly (as another client would). */
  put(type: ResourceType, obj: Obj): Obj {
    const store = this.store(type);
    const key = objectKey(obj.metadata?.namespace, obj.metadata?.name ?? '');
    const existed = store.has(key);
    const stored = this.stamp(obj);
    store.set(key, stored);
    this.emit(type, existed ? 'MODIFIED' : 'ADDED', stored);
    return clone(stored);
  }

  remove(type: ResourceType, namespace: string | undefined, name: string): void {
    const store = this.store(type);
    const key = objectKey(namespace, name);
    const old = store.get(key);
    if (!old) return;
    store.delete(key);
    this.rv += 1;
    this.emit(type, 'DELETED', { ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } });
  }

  /** Counts a call; returns the injected failure for it, if any. */
  private count(verb: string): Error | undefined {
    this.calls[verb] = (this.calls[verb] ?? 0) + 1;
    const i = this.failures.findIndex((f) => f.verb === verb);
    return i >= 0 ? this.failures.splice(i, 1)[0]?.err : undefined;
  }

  private store(type: ResourceType): Map<string, Obj> {
    const k = typeKeyOf(type);
    let s = this.objects.get(k);
    if (!s) {
      s = new Map();
      this.objects.set(k, s);
    }
    return s;
  }

  private stamp(obj: Obj): Obj {
    this.rv += 1;
    return clone({ ...obj, metadata: { ...(obj.metadata ?? {}), resourceVersion: String(this.rv) } });
  }

  private emit(type: ResourceType, kind: LogEntry['type'], obj: Obj): void {
    const entry: LogEntry = { rv: this.rv, type: kind, typeKey: typeKeyOf(type), obj: clone(obj) };
    this.log.push(entry);
    for (const w of this.watchers) this.deliver(w, entry);
  }

  private deliver(w: Watcher, e: LogEntry): void {
    if (w.typeKey !== e.typeKey) return;
    if (w.namespace && e.obj.metadata?.namespace !== w.namespace) return;
    w.onEvent({ type: e.type, object: clone(e.obj) });
  }

  list<T extends KubernetesObject>(type: ResourceType, opts: ListOptions = {}): Promise<ListResult<T>> {
    const failure = this.count('list');
    if (failure) return Promise.reject(failure);
    const items = [...this.store(type).values()].filter((o) => !opts.namespace || o.metadata?.namespace === opts.namespace);
    return Promise.resolve({ items: clone(items) as unknown as T[], resourceVersion: String(this.rv) });
  }

  watch(type: ResourceType, opts: WatchOptions, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const failure = this.count('watch');
    if (failure) return Promise.reject(failure);
    const from = Number(opts.resourceVersion);
    if (from < this.compactedAt) {
      onEvent({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', code: 410, reason: 'Expired', message: 'too old resource version' } });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const w: Watcher = {
        typeKey: typeKeyOf(type),
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        onEvent,
        end: (err) => (err ? reject(err) : resolve()),
      };
      for (const e of this.log) if (e.rv > from) this.deliver(w, e);
      if (signal.aborted) {
        resolve();
        return;
      }
      this.watchers.push(w);
      signal.addEventListener('abort', () => {
        this.watchers = this.watchers.filter((x) => x !== w);
        resolve();
      }, { once: true });
    });
  }

  get<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    const failure = this.count('get');
    if (failure) return Promise.reject(failure);
    const obj = this.store(type).get(objectKey(namespace, name));
    if (!obj) return Promise.reject(new ApiError(404, 'NotFound', `${type.plural} "${name}" not found`));
    return Promise.resolve(clone(obj) as unknown as T);
  }

  create<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, body: T): Promise<T> {
    const failure = this.count('create');
    if (failure) return Promise.reject(failure);
    const name = body.metadata?.name ?? '';
    const store = this.store(type);
    const key = objectKey(namespace, name);
    if (store.has(key)) return Promise.reject(new ApiError(409, 'AlreadyExists', `${type.plural} "${name}" already exists`));
    const stored = this.stamp({ ...(body as unknown as Obj), metadata: { ...body.metadata, namespace, uid: `uid-${this.rv + 1}` } });
    store.set(key, stored);
    this.emit(type, 'ADDED', stored);
    return Promise.resolve(clone(stored) as unknown as T);
  }

  replace<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, body: T): Promise<T> {
    const failure = this.count('replace');
    if (failure) return Promise.reject(failure);
    const store = this.store(type);
    const key = objectKey(namespace, name);
    const old = store.get(key);
    if (!old) return Promise.reject(new ApiError(404, 'NotFound', `${type.plural} "${name}" not found`));
    const want = body.metadata?.resourceVersion;
    if (want !== undefined && want !== old.metadata?.resourceVersion) {
      return Promise.reject(new ApiError(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again'));
    }
    const stored = this.stamp(body as unknown as Obj);
    store.set(key, stored);
    this.emit(type, 'MODIFIED', stored);
    return Promise.resolve(clone(stored) as unknown as T);
  }

  patch<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, patch: unknown): Promise<T> {
    const failure = this.count('patch');
    if (failure) return Promise.reject(failure);
    const store = this.store(type);
    const key = objectKey(namespace, name);
    const old = store.get(key);
    if (!old) return Promise.reject(new ApiError(404, 'NotFound', `${type.plural} "${name}" not found`));
    const stored = this.stamp(mergePatch(old, patch) as Obj);
    store.set(key, stored);
    this.emit(type, 'MODIFIED', stored);
    return Promise.resolve(clone(stored) as unknown as T);
  }

  delete(type: ResourceType, namespace: string | undefined, name: string, _opts?: DeleteOptions): Promise<void> {
    const failure = this.count('delete');
    if (failure) return Promise.reject(failure);
    if (!this.store(type).has(objectKey(namespace, name))) return Promise.reject(new ApiError(404, 'NotFound', `${type.plural} "${name}" not found`));
    this.remove(type, namespace, name);
    return Promise.resolve();
  }
}
