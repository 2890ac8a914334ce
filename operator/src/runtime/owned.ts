// What every controller wires the same way: slimmed cache objects, the event handlers of its primary
// resource and of the objects mapped to it (owned children, pods), and owner-reference lookups.
import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';
import { GROUP } from '../../../api/crds.js';
import { keyOf, objectKey } from '../kube/client.js';
import type { Informer } from './informer.js';

export type Enqueue = (key: string | undefined) => void;

/** Fields the operator never reads; dropping them keeps the caches small. */
export function slim(obj: KubernetesObject): KubernetesObject {
  const meta = obj.metadata;
  if (!meta) return obj;
  const { managedFields: _managed, ...rest } = meta;
  const annotations = rest.annotations;
  if (annotations && 'kubectl.kubernetes.io/last-applied-configuration' in annotations) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _last, ...kept } = annotations;
    rest.annotations = kept;
  }
  return { ...obj, metadata: rest };
}

/**
 * The primary resource's handlers. The operator's own writes (finalizers, status) come back as
 * updates; only a spec change (generation, which includes `kubectl scale` of a scale subresource),
 * deletion or a lost status needs a reconcile — status is rebuilt from the children anyway, and the
 * resync is the level-based safety net.
 */
export function watchPrimary<T extends KubernetesObject>(informer: Pick<Informer<T>, 'addHandlers'>, enqueue: Enqueue): void {
  informer.addHandlers({
    onAdd: (o) => enqueue(keyOf(o)),
    onUpdate: (a, b) => {
      const changed = a.metadata?.generation !== b.metadata?.generation
        || Boolean(a.metadata?.deletionTimestamp) !== Boolean(b.metadata?.deletionTimestamp)
        || ((a as { status?: unknown }).status !== undefined && (b as { status?: unknown }).status === undefined);
      if (changed) enqueue(keyOf(b));
    },
    onDelete: (o) => enqueue(keyOf(o)),
    onResync: (o) => enqueue(keyOf(o)),
  });
}

/** Every add, update and delete of an object enqueues the key `keyFor` maps it to (if any). */
export function watchMapped<T extends KubernetesObject>(informer: Pick<Informer<T>, 'addHandlers'>, keyFor: (obj: T) => string | undefined, enqueue: Enqueue): void {
  informer.addHandlers({
    onAdd: (o) => enqueue(keyFor(o)),
    onUpdate: (_a, b) => enqueue(keyFor(b)),
    onDelete: (o) => enqueue(keyFor(o)),
  });
}

export function controllerOf(obj: KubernetesObject): V1OwnerReference | undefined {
  return obj.metadata?.ownerReferences?.find((r) => r.controller === true);
}

/** The key of the whisperops resource of `kind` that controls `obj`, if any. */
export function ownerKeyOf(obj: KubernetesObject, kind: string): string | undefined {
  const owner = controllerOf(obj);
  if (!owner || owner.kind !== kind || !owner.apiVersion.startsWith(`${GROUP}/`)) return undefined;
  return objectKey(obj.metadata?.namespace, owner.name);
}
