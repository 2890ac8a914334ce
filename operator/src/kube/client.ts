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

export interface ListOptions {
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

export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
}

export interface KubeClient {
  list<T extends KubernetesObject>(type: ResourceType, opts?: ListOptions): Promise<ListResult<T>>;
  /**
   * Streams events to onEvent until the server ends the watch (resolves), the signal aborts (resolves)
   * or the connection fails (rejects). A non-200 answer rejects with an ApiError.
   */
  watch(type: ResourceType, opts: WatchOptions, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void>;
  get<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string): Promise<T>;
  create<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, body: T): Promise<T>;
  /** PUT: with metadata.resourceVersion set it fails with 409 when the object changed meanwhile. */
  replace<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, body: T): Promise<T>;
  patch<T extends KubernetesObject>(
    type: ResourceType, namespace: string | undefined, name: string, patch: unknown,
    opts?: { patchType?: PatchType; subresource?: 'status' },
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
