import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { CONFIG_MAPS, LEASES } from '../kube/client.js';
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

function setup(leaderElection: boolean, reconcile: (key: string) => Promise<object>) {
  const api = new MemoryKubeClient();
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const informer = new Informer<KubernetesObject>(api, CONFIG_MAPS, log, { resyncPeriodMs: 0 });
  const controller = new Controller({ name: 'test', workers: 2, rateLimits: { ...DEFAULT_QUEUE_RATE_LIMITS, baseDelayMs: 10 } }, { reconcile }, metrics, log);
  informer.addHandlers({ onAdd: (o) => controller.enqueue(o.metadata?.name ?? '') });
  const manager = new Manager({
    client: api, log, metrics, events, shutdownTimeoutMs: 2000,
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
});
