// What every controller wires the same way: slimmed cache objects, the event handlers of its primary
// resource and of the objects mapped to it (owned children, pods), and owner-reference lookups.
import type { KubernetesObject, V1OwnerReference, V1SecurityContext } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP } from '../../../api/crds.js';
import type { KubeClient, ResourceType } from '../kube/client.js';
import { keyOf, objectKey } from '../kube/client.js';
import type { Informer, InformerMetrics, InformerOptions } from './informer.js';
import { TerminalError } from './reconcile.js';

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

/** A resource as read from the API server: name, namespace and uid are set. */
export interface OwnerObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string };
}

/** The owner reference a child carries: this resource controls it and blocks its deletion. */
export function controllerReference(owner: OwnerObject): V1OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/**
 * A child found by name must be the owner's; one without a controller is adopted (our owner reference
 * added), one controlled by anything else is a conflict (TerminalError ChildConflict).
 */
export async function adoptChild<T extends KubernetesObject>(client: KubeClient, log: Logger, owner: OwnerObject, child: T, type: ResourceType): Promise<T> {
  const current = controllerOf(child);
  if (current?.uid === owner.metadata.uid) return child;
  const where = `${type.kind} ${child.metadata?.namespace ?? ''}/${child.metadata?.name ?? ''}`;
  if (current) throw new TerminalError(`${where} already exists and is controlled by ${current.kind} ${current.name} (uid ${current.uid})`, 'ChildConflict');
  const adopted = await client.patch<T>(type, child.metadata?.namespace, child.metadata?.name ?? '', {
    metadata: { ownerReferences: [...(child.metadata?.ownerReferences ?? []), controllerReference(owner)], resourceVersion: child.metadata?.resourceVersion },
  });
  log.info({ kind: type.kind, namespace: child.metadata?.namespace, name: child.metadata?.name }, `Adopted ${type.kind}`);
  return adopted;
}

/** Informer options every controller's caches share: its namespace, metrics, slimmed objects, no resync. */
export function cacheOptions(opts: { namespace: string; metrics: InformerMetrics; watchTimeoutSeconds?: number | undefined }): InformerOptions {
  return {
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    resyncPeriodMs: 0,
    metrics: opts.metrics,
    transform: slim,
    ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
  };
}

/** The container securityContext of every pod the operator creates: non-root `uid`, read-only root, no capabilities. */
export function restrictedContainer(uid: number): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
  };
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
