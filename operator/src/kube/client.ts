// The operator's port to the Kubernetes API: the handful of verbs it uses, on any resource type.
// One implementation talks HTTP to a real API server (http-client.ts); tests of the runtime use an
// in-memory one. Objects are the API server's JSON as is: timestamps are strings at run time even
// where @kubernetes/client-node's model types say Date, so read them with `new Date(value)`.
import type { KubernetesObject } from '@kubernetes/client-node';

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export const JOBS: ResourceType = { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true };
export const PODS: ResourceType = { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true };
export const CONFIG_MAPS: ResourceType = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };
export const SERVICES: ResourceType = { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true };
export const LEASES: ResourceType = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true };
export const EVENTS: ResourceType = { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true };

/** Per-call options every verb takes: an aborted signal ends the call at once (rejects with an AbortError). */
export interface RequestOptions {
  signal?: AbortSignal;
}

export interface ListOptions extends RequestOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
  continue?: string;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion: string;
  timeoutSeconds: number;
  allowWatchBookmarks: boolean;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  /** The object; for ERROR a metav1.Status. */
  object: KubernetesObject & Record<string, unknown>;
}

export type PatchType = 'merge' | 'json' | 'strategic';

export interface PatchOptions extends RequestOptions {
  patchType?: PatchType;
  subresource?: 'status';
}

export interface DeleteOptions extends RequestOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
}

export interface KubeClient {
  list<T extends KubernetesObject>(type: ResourceType, opts?: ListOptions): Promise<ListResult<T>>;
  /**
   * Streams events to onEvent until the server ends the watch (resolves), the signal aborts (resolves)
   * or the connection fails (rejects). A non-200 answer rejects with an ApiError.
   */
  watch(type: ResourceType, opts: WatchOptions, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void>;
  get<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, opts?: RequestOptions): Promise<T>;
  create<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, body: T, opts?: RequestOptions): Promise<T>;
  /** PUT: with metadata.resourceVersion set it fails with 409 when the object changed meanwhile. */
  replace<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, body: T, opts?: RequestOptions): Promise<T>;
  patch<T extends KubernetesObject>(
    type: ResourceType, namespace: string | undefined, name: string, patch: unknown,
    opts?: PatchOptions,
  ): Promise<T>;
  delete(type: ResourceType, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<void>;
}

/** An answer of the API server other than 2xx. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 409 && err.reason !== 'AlreadyExists';
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 409 && err.reason === 'AlreadyExists';
}

export function isGone(err: unknown): boolean {
  return err instanceof ApiError && (err.statusCode === 410 || err.reason === 'Expired');
}

/** 422: the object is invalid; sending it again will not help. */
export function isInvalid(err: unknown): boolean {
  return err instanceof ApiError && (err.statusCode === 422 || err.reason === 'Invalid');
}

export function isForbidden(err: unknown): boolean {
  return err instanceof ApiError && err.statusCode === 403;
}

export function resourcePath(type: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const ns = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const tail = name ? `/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}` : '';
  return `${base}${ns}/${type.plural}${tail}`;
}

export function objectKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function keyOf(obj: KubernetesObject): string {
  return objectKey(obj.metadata?.namespace, obj.metadata?.name ?? '');
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The error of a call ended by its AbortSignal (name 'AbortError', like fetch's). */
export class AbortError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return new AbortError(`the call was aborted${typeof reason === 'object' && reason !== null && 'message' in reason ? `: ${String(reason.message)}` : ''}`, { cause: reason });
}

export function isAborted(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

/**
 * The client with every call bound to `signal` (the leader's term): once it aborts, calls in flight
 * reject at once (and the HTTP request is torn down), and new calls reject before anything is sent.
 * Reconcilers get this client, so a replica that lost the Lease stops writing immediately.
 */
export function boundToSignal(client: KubeClient, signal: AbortSignal): KubeClient {
  const guard = <R>(call: () => Promise<R>): Promise<R> => {
    if (signal.aborted) return Promise.reject(abortError(signal));
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      call().then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  };
  return {
    list: (type, opts = {}) => guard(() => client.list(type, { ...opts, signal: anySignal(signal, opts.signal) })),
    watch: (type, opts, onEvent, watchSignal) => client.watch(type, opts, onEvent, anySignal(signal, watchSignal)),
    get: (type, ns, name, opts = {}) => guard(() => client.get(type, ns, name, { ...opts, signal: anySignal(signal, opts.signal) })),
    create: (type, ns, body, opts = {}) => guard(() => client.create(type, ns, body, { ...opts, signal: anySignal(signal, opts.signal) })),
    replace: (type, ns, name, body, opts = {}) => guard(() => client.replace(type, ns, name, body, { ...opts, signal: anySignal(signal, opts.signal) })),
    patch: (type, ns, name, patch, opts = {}) => guard(() => client.patch(type, ns, name, patch, { ...opts, signal: anySignal(signal, opts.signal) })),
    delete: (type, ns, name, opts = {}) => guard(() => client.delete(type, ns, name, { ...opts, signal: anySignal(signal, opts.signal) })),
  };
}

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}
