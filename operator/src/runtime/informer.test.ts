import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { ApiError, CONFIG_MAPS } from '../kube/client.js';
import { MemoryKubeClient } from '../../testing/memory-client.js';
import { Informer } from './informer.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cm(name: string, data = '1', labels: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', labels }, data: { v: data } };
}

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function recorder(inf: Informer<KubernetesObject>) {
  const events: string[] = [];
  inf.addHandlers({
    onAdd: (o) => events.push(`add ${o.metadata?.name ?? ''}`),
    onUpdate: (_a, b) => events.push(`update ${b.metadata?.name ?? ''}`),
    onDelete: (o) => events.push(`delete ${o.metadata?.name ?? ''}`),
    onResync: (o) => events.push(`resync ${o.metadata?.name ?? ''}`),
  });
  return events;
}

describe('Informer', () => {
  it('lists, then follows the watch', async () => {
    const api = new MemoryKubeClient();
    api.put(CONFIG_MAPS, cm('a'));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
    const events = recorder(inf);
    inf.start();
    await inf.waitForSync();
    expect(inf.hasSynced()).toBe(true);
    expect(events).toEqual(['add a']);
    await until('watch open', () => api.openWatches() === 1);
    api.put(CONFIG_MAPS, cm('b'));
    api.put(CONFIG_MAPS, cm('a', '2'));
    api.remove(CONFIG_MAPS, 'ns', 'b');
    await until('3 events', () => events.length === 4);
    expect(events).toEqual(['add a', 'add b', 'update a', 'delete b']);
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(['a']);
    await inf.stop();
    expect(api.openWatches()).toBe(0);
  });

  it('re-watches from the last resourceVersion when the server ends a watch, without a relist', async () => {
    const api = new MemoryKubeClient();
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
    const events = recorder(inf);
    inf.start();
    await inf.waitForSync();
    await until('watch open', () => api.openWatches() === 1);
    api.closeWatches();
    api.put(CONFIG_MAPS, cm('while-closed'));
    await until('event seen after re-watch', () => events.includes('add while-closed'));
    expect(api.calls.list).toBe(1);
    expect(api.calls.watch).toBe(2);
    await inf.stop();
  });

  it('relists after 410 Gone and reports what changed meanwhile as events', async () => {
    const api = new MemoryKubeClient();
    api.put(CONFIG_MAPS, cm('stays'));
    api.put(CONFIG_MAPS, cm('goes'));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
    const events = recorder(inf);
    inf.start();
    await inf.waitForSync();
    await until('watch open', () => api.openWatches() === 1);
    // Stop watching, change things, compact the history: the next watch gets 410 Gone.
    await inf.stop();
    api.remove(CONFIG_MAPS, 'ns', 'goes');
    api.put(CONFIG_MAPS, cm('stays', 'changed'));
    api.put(CONFIG_MAPS, cm('new'));
    api.compact();
    events.length = 0;
    inf.start();
    await until('relist diff', () => events.length === 3);
    expect(events.sort()).toEqual(['add new', 'delete goes', 'update stays']);
    expect(api.calls.list).toBe(2);
    await inf.stop();
  });

  it('an ERROR 410 event on the watch stream leads to a relist', async () => {
    const api = new MemoryKubeClient();
    const reasons: string[] = [];
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, {
      resyncPeriodMs: 0,
      metrics: { relisted: () => reasons.push('relist'), watchRestarted: (_k, r) => reasons.push(r), objects: () => undefined },
    });
    inf.start();
    await inf.waitForSync();
    await until('watch open', () => api.openWatches() === 1);
    // The stream ends; before the informer watches again, history moves on and is compacted.
    api.closeWatches();
    api.put(CONFIG_MAPS, cm('x'));
    api.compact();
    await until('relisted', () => inf.get('ns/x') !== undefined);
    expect(reasons).toEqual(['relist', 'closed', 'gone', 'relist']);
    expect(api.calls.list).toBe(2);
    await inf.stop();
  });

  it('keeps retrying with backoff after errors, and then recovers', async () => {
    const api = new MemoryKubeClient();
    api.failNext('list', new ApiError(500, 'InternalError', 'etcd is down'));
    api.failNext('list', new Error('ECONNREFUSED'));
    api.put(CONFIG_MAPS, cm('a'));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0, backoffInitialMs: 10, backoffMaxMs: 40 });
    inf.start();
    await inf.waitForSync();
    expect(api.calls.list).toBe(3);
    await until('watch open', () => api.openWatches() === 1);
    api.breakWatches();
    api.put(CONFIG_MAPS, cm('b'));
    await until('b after the broken watch', () => inf.get('ns/b') !== undefined);
    expect(api.calls.list).toBe(4); // an error (not a clean close) relists
    await inf.stop();
  });

  it('hands every object to onResync each resync period', async () => {
    const api = new MemoryKubeClient();
    api.put(CONFIG_MAPS, cm('a'));
    api.put(CONFIG_MAPS, cm('b'));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 30 });
    const events = recorder(inf);
    inf.start();
    await until('two resyncs', () => events.filter((e) => e.startsWith('resync')).length >= 4);
    await inf.stop();
  });

  it('indexes by label and keeps the index right through updates and deletes', async () => {
    const api = new MemoryKubeClient();
    api.put(CONFIG_MAPS, cm('a', '1', { job: 'j1' }));
    api.put(CONFIG_MAPS, cm('b', '1', { job: 'j1' }));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
    inf.indexByLabel('job');
    inf.start();
    await inf.waitForSync();
    await until('watch open', () => api.openWatches() === 1);
    expect(inf.byLabelValue('job', 'ns', 'j1').map((o) => o.metadata?.name).sort()).toEqual(['a', 'b']);
    api.put(CONFIG_MAPS, cm('b', '2', { job: 'j2' }));
    api.remove(CONFIG_MAPS, 'ns', 'a');
    await until('index updated', () => inf.byLabelValue('job', 'ns', 'j1').length === 0);
    expect(inf.byLabelValue('job', 'ns', 'j2').map((o) => o.metadata?.name)).toEqual(['b']);
    expect(inf.byLabelValue('job', 'other', 'j2')).toEqual([]);
    await inf.stop();
  });

  it('watches several namespaces ("a,b") into one cache: each its own list + watch and resourceVersion, nothing from others, a 410 in one relists only it', async () => {
    const api = new MemoryKubeClient();
    const in_ = (name: string, namespace: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { v: '1' } });
    api.put(CONFIG_MAPS, in_('x', 'a'));
    api.put(CONFIG_MAPS, in_('y', 'b'));
    api.put(CONFIG_MAPS, in_('z', 'c'));
    const inf = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0, namespace: 'a, b' });
    const events = recorder(inf);
    inf.start();
    await inf.waitForSync();
    expect(inf.list().map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`).sort()).toEqual(['a/x', 'b/y']);
    expect(api.calls.list).toBe(2);
    await until('two watches', () => api.openWatches() === 2);
    api.put(CONFIG_MAPS, in_('y2', 'b'));
    api.put(CONFIG_MAPS, in_('z2', 'c'));
    api.remove(CONFIG_MAPS, 'a', 'x');
    await until('b/y2 added, a/x deleted', () => inf.get('b/y2') !== undefined && inf.get('a/x') === undefined);
    expect(inf.get('c/z2')).toBeUndefined();
    // History compacted and the watches broken: both relist; the cache is the union again, no spurious deletes.
    api.compact();
    api.breakWatches();
    api.put(CONFIG_MAPS, in_('x3', 'a'));
    await until('a/x3 after relist', () => inf.get('a/x3') !== undefined, 10_000);
    expect(inf.list().map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`).sort()).toEqual(['a/x3', 'b/y', 'b/y2']);
    expect(events.filter((e) => e.startsWith('delete'))).toEqual(['delete x']);
    await inf.stop();
  });
});
