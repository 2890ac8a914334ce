import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { InformerHandlers } from './informer.js';
import { ownerKeyOf, slim, watchMapped, watchPrimary } from './owned.js';

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
