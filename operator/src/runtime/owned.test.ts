import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { KubeClient, ResourceType } from '../kube/client.js';
import type { InformerHandlers, InformerMetrics } from './informer.js';
import { adoptChild, cacheOptions, controllerReference, ownerKeyOf, restrictedContainer, slim, watchMapped, watchPrimary } from './owned.js';

type Obj = KubernetesObject & { status?: unknown };

function fakeInformer(): { handlers: InformerHandlers<Obj>[]; addHandlers(h: InformerHandlers<Obj>): void } {
  const handlers: InformerHandlers<Obj>[] = [];
  return { handlers, addHandlers: (h) => handlers.push(h) };
}

const obj = (generation: number, extra: Partial<Obj> = {}): Obj => ({ metadata: { name: 'p', namespace: 'ns', generation }, ...extra });

describe('watchPrimary', () => {
  it.each([
    ['a spec change (generation)', obj(1, { status: {} }), obj(2, { status: {} }), ['ns/p']],
    ['the operator\'s own status write', obj(1, { status: { a: 1 } }), obj(1, { status: { a: 2 } }), []],
    ['deletion starting', obj(1), obj(1, { metadata: { name: 'p', namespace: 'ns', generation: 1, deletionTimestamp: new Date() } }), ['ns/p']],
    ['a lost status', obj(1, { status: {} }), obj(1), ['ns/p']],
  ])('enqueues on %s: %j', (_what, a, b, want) => {
    const inf = fakeInformer();
    const got: (string | undefined)[] = [];
    watchPrimary(inf, (k) => got.push(k));
    inf.handlers[0]?.onUpdate?.(a, b);
    expect(got).toEqual(want);
  });

  it('enqueues adds, deletes and resyncs', () => {
    const inf = fakeInformer();
    const got: (string | undefined)[] = [];
    watchPrimary(inf, (k) => got.push(k));
    const h = inf.handlers[0];
    h?.onAdd?.(obj(1));
    h?.onDelete?.(obj(1));
    h?.onResync?.(obj(1));
    expect(got).toEqual(['ns/p', 'ns/p', 'ns/p']);
  });
});

describe('watchMapped and ownerKeyOf', () => {
  const child = (kind: string, apiVersion = 'whisperops.dev/v1alpha1', controller = true): Obj => ({
    metadata: { name: 'c', namespace: 'ns', ownerReferences: [{ apiVersion, kind, name: 'pool-a', uid: 'u', controller }] },
  });
  it('maps children to their controlling whisperops owner only', () => {
    expect(ownerKeyOf(child('EdgePool'), 'EdgePool')).toBe('ns/pool-a');
    expect(ownerKeyOf(child('EdgePool'), 'FineTuneJob')).toBeUndefined();
    expect(ownerKeyOf(child('EdgePool', 'apps/v1'), 'EdgePool')).toBeUndefined();
    expect(ownerKeyOf(child('EdgePool', 'whisperops.dev/v1alpha1', false), 'EdgePool')).toBeUndefined();
  });
  it('enqueues the mapped key on add, update and delete', () => {
    const inf = fakeInformer();
    const got: (string | undefined)[] = [];
    watchMapped(inf, (o) => ownerKeyOf(o, 'EdgePool'), (k) => got.push(k));
    const h = inf.handlers[0];
    h?.onAdd?.(child('EdgePool'));
    h?.onUpdate?.(child('EdgePool'), child('EdgePool'));
    h?.onDelete?.(child('Job'));
    expect(got).toEqual(['ns/pool-a', 'ns/pool-a', undefined]);
  });
});

describe('slim', () => {
  it('drops managedFields and the last-applied annotation, keeps the rest', () => {
    const o: Obj = { metadata: { name: 'x', managedFields: [{ manager: 'm' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', keep: 'y' } } };
    expect(slim(o).metadata).toEqual({ name: 'x', annotations: { keep: 'y' } });
  });
});

describe('controllerReference and adoptChild', () => {
  const pool = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'pool-a', namespace: 'ns', uid: 'u-pool' } };
  const patches: unknown[] = [];
  const client = {
    patch: (_type: unknown, _ns: unknown, _name: unknown, body: unknown) => {
      patches.push(body);
      return Promise.resolve({ metadata: { name: 'c', namespace: 'ns' } });
    },
  } as unknown as KubeClient;
  const log = pino({ level: 'silent' });
  const CM: ResourceType = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };

  it('builds the controlling, deletion-blocking reference', () => {
    expect(controllerReference(pool)).toEqual({ apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', name: 'pool-a', uid: 'u-pool', controller: true, blockOwnerDeletion: true });
  });
  it('keeps its own child, adopts an orphan, refuses one controlled by another owner', async () => {
    const own: KubernetesObject = { metadata: { name: 'c', namespace: 'ns', ownerReferences: [controllerReference(pool)] } };
    expect(await adoptChild(client, log, pool, own, CM)).toBe(own);
    expect(patches).toEqual([]);
    const orphan: KubernetesObject = { metadata: { name: 'c', namespace: 'ns', resourceVersion: '7' } };
    await adoptChild(client, log, pool, orphan, CM);
    expect(patches).toEqual([{ metadata: { ownerReferences: [controllerReference(pool)], resourceVersion: '7' } }]);
    const foreign: KubernetesObject = { metadata: { name: 'c', namespace: 'ns', ownerReferences: [{ apiVersion: 'v1', kind: 'Other', name: 'o', uid: 'u-o', controller: true }] } };
    await expect(adoptChild(client, log, pool, foreign, CM)).rejects.toThrow(/ConfigMap ns\/c already exists and is controlled by Other o \(uid u-o\)/);
  });
});

describe('cacheOptions and restrictedContainer', () => {
  it('scopes to the namespace only when one is set', () => {
    const metrics = { lists: () => undefined } as unknown as InformerMetrics;
    expect(cacheOptions({ namespace: '', metrics })).toEqual({ resyncPeriodMs: 0, metrics, transform: slim });
    expect(cacheOptions({ namespace: 'ns', metrics, watchTimeoutSeconds: 60 })).toMatchObject({ namespace: 'ns', watchTimeoutSeconds: 60 });
  });
  it('is non-root, read-only, capability-free', () => {
    expect(restrictedContainer(1000)).toEqual({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 });
  });
});
