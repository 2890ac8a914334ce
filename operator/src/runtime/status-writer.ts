// Status writes of a reconciler, done once for every controller: at most one patch of the status
// subresource, only when the status changed, as a JSON merge patch that also removes what the new
// status lacks at any depth (a merge patch keeps every field it does not name: status.candidate
// replaced by a new candidate would otherwise keep the old one's verdict). The cache can lag behind
// this process's own write; `latest` then gives the status it wrote, not an older one, so the next
// reconcile does not repeat transitions, Events or counts. That is only an optimisation:
// resourceVersions are compared when both are integers (etcd), else the cache wins.
import type { KubernetesObject } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient, ResourceType } from '../kube/client.js';
import { isNotFound, objectKey } from '../kube/client.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The RFC 7386 merge patch that turns `from` into `to`: changed fields with their new value, removed
 * fields as null (objects recursively, arrays and scalars whole). Undefined when nothing changed.
 */
export function mergePatchOf(from: Record<string, unknown>, to: Record<string, unknown>): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(to)) {
    if (v === undefined) continue;
    const old = from[k];
    if (isPlainObject(v) && isPlainObject(old)) {
      const inner = mergePatchOf(old, v);
      if (inner) patch[k] = inner;
    } else if (!isDeepStrictEqual(old, v)) {
      patch[k] = v;
    }
  }
  for (const [k, v] of Object.entries(from)) if (v !== undefined && to[k] === undefined) patch[k] = null;
  return Object.keys(patch).length > 0 ? patch : undefined;
}

type WithStatus<S> = KubernetesObject & { metadata?: { namespace?: string; name?: string; resourceVersion?: string }; status?: S };

export class StatusWriter<S extends object, T extends WithStatus<S>> {
  private readonly written = new Map<string, { resourceVersion: string; status: S }>();

  constructor(
    private readonly client: KubeClient,
    private readonly type: ResourceType,
  ) {}

  /** `obj` with the status this process wrote last when the cache has not caught up with it yet. */
  latest(key: string, obj: T): T {
    const w = this.written.get(key);
    if (!w) return obj;
    const have = obj.metadata?.resourceVersion ?? '';
    if (/^\d+$/.test(have) && /^\d+$/.test(w.resourceVersion) && BigInt(w.resourceVersion) > BigInt(have)) {
      return { ...obj, status: w.status };
    }
    this.written.delete(key);
    return obj;
  }

  /** The object is gone: nothing to remember. */
  forget(key: string): void {
    this.written.delete(key);
  }

  /** Patches the status subresource when `status` differs from obj.status; a deleted object is not an error. True when it wrote. */
  async write(obj: T, status: S): Promise<boolean> {
    const patch = mergePatchOf((obj.status ?? {}), status as Record<string, unknown>);
    if (!patch) return false;
    const namespace = obj.metadata?.namespace;
    const name = obj.metadata?.name ?? '';
    try {
      const updated = await this.client.patch<T>(this.type, namespace, name, { status: patch }, { subresource: 'status' });
      const rv = updated.metadata?.resourceVersion;
      if (rv) this.written.set(objectKey(namespace, name), { resourceVersion: rv, status });
      return true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return false;
    }
  }
}
