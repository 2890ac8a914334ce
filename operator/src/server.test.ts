import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperatorMetrics } from './runtime/metrics.js';
import { createApp } from './server.js';

describe('operator endpoints', () => {
  const metrics = new OperatorMetrics();
  let ready = { ready: true, reason: '' };
  let server: Server;
  let base = '';

  beforeAll(async () => {
    const app = createApp({ healthy: () => true, ready: () => ready, registry: metrics.registry });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('/healthz answers ok', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
  });

  it('/readyz follows the manager', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    ready = { ready: false, reason: 'shutting down' };
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('shutting down');
    ready = { ready: true, reason: '' };
  });

  it('/metrics exposes reconciles, durations, queue depth and leader state', async () => {
    metrics.reconciles.inc({ controller: 'finetunejob', result: 'success' });
    metrics.reconcileDuration.observe({ controller: 'finetunejob' }, 0.02);
    metrics.queueDepth.set({ controller: 'finetunejob' }, 3);
    metrics.leader.set(1);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('whisperops_operator_reconcile_total{controller="finetunejob",result="success"} 1');
    expect(text).toContain('whisperops_operator_reconcile_duration_seconds_bucket{le="0.025",controller="finetunejob"} 1');
    expect(text).toContain('whisperops_operator_workqueue_depth{controller="finetunejob"} 3');
    expect(text).toContain('whisperops_operator_leader 1');
    expect(text).toContain('whisperops_operator_process_resident_memory_bytes');
  });

  it('answers 404 off its routes and 405 to other methods than GET and HEAD', async () => {
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const post = await fetch(`${base}/healthz`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${base}/readyz?verbose=1`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('hands a listen error to the callback (port in use)', async () => {
    const port = (server.address() as AddressInfo).port;
    const app = createApp({ healthy: () => true, ready: () => ready, registry: metrics.registry });
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = app.listen(port, '127.0.0.1', (e) => {
        if (!e) s.close();
        resolve(e);
      });
    });
    expect(err?.code).toBe('EADDRINUSE');
  });
});
