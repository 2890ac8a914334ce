import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { ApiError, boundToSignal, CONFIG_MAPS, isAborted, LEASES, SERVICES } from '../kube/client.js';
import type { KubeClient } from '../kube/client.js';
import { MemoryKubeClient } from '../../testing/memory-client.js';
import { Controller } from './controller.js';
import type { EventRecorder } from './events.js';
import { Informer } from './informer.js';
import type { Lease } from './leader-election.js';
import { Manager } from './manager.js';
import { OperatorMetrics } from './metrics.js';
import { DEFAULT_QUEUE_RATE_LIMITS } from './rate-limiter.js';
import { TerminalError } from './reconcile.js';

const log = pino({ level: 'silent' });
const events: EventRecorder = { normal: () => undefined, warning: () => undefined, flush: () => Promise.resolve() };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function setup(leaderElection: boolean, reconcile: (key: string) => Promise<object>, extra: { cacheSyncTimeoutMs?: number; api?: MemoryKubeClient; shutdownTimeoutMs?: number } = {}) {
  const api = extra.api ?? new MemoryKubeClient();
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const informer = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
  const controller = new Controller({ name: 'test', workers: 2, rateLimits: { ...DEFAULT_QUEUE_RATE_LIMITS, baseDelayMs: 10 } }, { reconcile }, metrics, log);
  informer.addHandlers({ onAdd: (o) => controller.enqueue(o.metadata?.name ?? '') });
  const manager = new Manager({
    client: api, log, metrics, events, shutdownTimeoutMs: extra.shutdownTimeoutMs ?? 2000, cacheSyncTimeoutMs: extra.cacheSyncTimeoutMs ?? 0,
    leaderElection: leaderElection ? { namespace: 'sys', name: 'op', identity: 'me', leaseDurationMs: 1000, renewDeadlineMs: 800, retryPeriodMs: 50 } : undefined,
  });
  manager.add(controller, [informer]);
  return { api, metrics, manager };
}

describe('Manager', () => {
  it('leads, syncs, reconciles, and on stop finishes in-flight work and releases the Lease', async () => {
    const seen: string[] = [];
    let inFlight = 0;
    const { api, metrics, manager } = setup(true, async (key) => {
      inFlight += 1;
      await sleep(key === 'slow' ? 200 : 1);
      seen.push(key);
      inFlight -= 1;
      return {};
    });
    api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns' } });
    expect(manager.ready().ready).toBe(true); // a standby is ready
    const exited = manager.run();
    await until('leading', () => manager.getState() === 'leading');
    expect((await metrics.registry.getSingleMetricAsString('whisperops_operator_leader')).trim().endsWith(' 1')).toBe(true);
    api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'slow', namespace: 'ns' } });
    await until('slow reconcile started', () => inFlight === 1 && seen.includes('a'));
    const stopping = manager.stop('test');
    expect(manager.ready()).toEqual({ ready: false, reason: 'shutting down' });
    await stopping;
    expect(seen).toEqual(['a', 'slow']); // the in-flight reconcile finished
    expect(await exited).toBe(0);
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    expect(lease.spec?.holderIdentity).toBeUndefined();
  });

  it('retries failing keys with backoff and drops terminal errors', async () => {
    const calls = new Map<string, number>();
    const { api, metrics, manager } = setup(false, (key) => {
      calls.set(key, (calls.get(key) ?? 0) + 1);
      if (key === 'flaky' && (calls.get(key) ?? 0) < 3) return Promise.reject(new Error('conflict'));
      if (key === 'bad') return Promise.reject(new TerminalError('invalid spec'));
      return Promise.resolve({});
    });
    for (const name of ['flaky', 'bad']) api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' } });
    const exited = manager.run();
    await until('flaky succeeded', () => calls.get('flaky') === 3);
    await sleep(100);
    expect(calls.get('bad')).toBe(1);
    const text = await metrics.registry.getSingleMetricAsString('whisperops_operator_reconcile_total');
    expect(text).toContain('result="error"} 2');
    expect(text).toContain('result="terminal_error"} 1');
    await manager.stop('test');
    expect(await exited).toBe(0);
  });

  it('a leader whose list is forbidden is not ready, gives the Lease up within the sync timeout and exits 1', async () => {
    const api = new MemoryKubeClient();
    // Every list of the informer is forbidden (the informer retries with backoff, as against a real server).
    const forbidden = new ApiError(403, 'Forbidden', 'configmaps is forbidden: User "system:serviceaccount:sys:op" cannot list resource "configmaps"');
    for (let i = 0; i < 50; i += 1) api.failNext('list', forbidden);
    const reconciled: string[] = [];
    const { manager } = setup(true, (key) => {
      reconciled.push(key);
      return Promise.resolve({});
    }, { api, cacheSyncTimeoutMs: 400 });
    api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns' } });
    const started = Date.now();
    const exited = manager.run();
    await until('leading, caches syncing', () => manager.getState() === 'starting');
    expect(manager.ready()).toEqual({ ready: false, reason: 'leading, waiting for caches to sync' });
    expect((await api.get<Lease>(LEASES, 'sys', 'op')).spec?.holderIdentity).toBe('me');
    expect(await exited).toBe(1);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);
    expect(manager.ready().ready).toBe(false);
    expect(reconciled).toEqual([]); // the controllers never started
    // The Lease was handed over (holder cleared, 1 s duration): a standby takes it at once.
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    expect(lease.spec?.holderIdentity).toBeUndefined();
    expect(lease.spec?.leaseDurationSeconds).toBe(1);
  });

  it('losing the Lease cancels the reconciles in flight at once: their calls reject and nothing more is written', async () => {
    const api = new MemoryKubeClient();
    const bound: { client?: KubeClient } = {};
    // A call that never answers (an API server that hangs) and ignores any signal: only the binding can end it.
    const hanging: KubeClient = { ...api, list: api.list.bind(api), watch: api.watch.bind(api), get: () => new Promise(() => undefined), create: api.create.bind(api), replace: api.replace.bind(api), patch: api.patch.bind(api), delete: api.delete.bind(api) };
    let outcome: string | undefined;
    let cancelledAt = 0;
    const { manager } = setup(true, async (key) => {
      const c = bound.client;
      if (!c) throw new Error('no client');
      try {
        await c.get(CONFIG_MAPS, 'ns', key);
        outcome = 'answered';
      } catch (err) {
        cancelledAt = Date.now();
        outcome = isAborted(err) ? 'aborted' : `other: ${String(err)}`;
      }
      // A write after the loss never leaves.
      await c.create(SERVICES, 'ns', { apiVersion: 'v1', kind: 'Service', metadata: { name: key, namespace: 'ns' } });
      return {};
    }, { api, shutdownTimeoutMs: 20_000 });
    bound.client = boundToSignal(hanging, manager.reconcileSignal);
    api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns' } });
    const exited = manager.run();
    await until('leading', () => manager.getState() === 'leading');
    await sleep(50);
    const createsBefore = api.calls.create ?? 0;
    // Another replica takes the Lease over: this one cannot renew and loses it after renewDeadline (800 ms).
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    api.put(LEASES, { ...lease, spec: { ...lease.spec, holderIdentity: 'other', leaseDurationSeconds: 60 } });
    const lostAt = Date.now();
    expect(await exited).toBe(1);
    const stoppedIn = Date.now() - lostAt;
    expect(outcome).toBe('aborted');
    // renewDeadline (800 ms) + a retry period, not the 20 s shutdown timeout a graceful stop would wait
    expect(cancelledAt - lostAt).toBeLessThan(5000);
    expect(stoppedIn).toBeLessThan(5000);
    expect(api.calls.create ?? 0).toBe(createsBefore); // the write after the loss was never sent
    expect((await api.get<Lease>(LEASES, 'sys', 'op')).spec?.holderIdentity).toBe('other'); // never touched
  });

  it('a graceful stop (SIGTERM) lets the reconciles in flight finish: the binding is not aborted', async () => {
    const api = new MemoryKubeClient();
    let wrote = false;
    const bound: { client?: KubeClient } = {};
    const { manager } = setup(false, async (key) => {
      await sleep(150);
      await bound.client?.create(SERVICES, 'ns', { apiVersion: 'v1', kind: 'Service', metadata: { name: key, namespace: 'ns' } });
      wrote = true;
      return {};
    }, { api });
    bound.client = boundToSignal(api, manager.reconcileSignal);
    api.put(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns' } });
    const exited = manager.run();
    await until('reconciling', () => manager.getState() === 'leading');
    await sleep(20);
    await manager.stop('signal SIGTERM');
    expect(await exited).toBe(0);
    expect(wrote).toBe(true);
    expect(manager.reconcileSignal.aborted).toBe(false);
  });
});
