import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WatchEvent } from './client.js';
import { ApiError, boundToSignal, CONFIG_MAPS, isAborted, isAlreadyExists, isConflict, isGone, isInvalid, isNotFound, JOBS } from './client.js';
import { HttpKubeClient } from './http-client.js';

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }

describe('HttpKubeClient against a local HTTP server', () => {
  const seen: Seen[] = [];
  let answer: (req: Seen, res: http.ServerResponse) => void = (_r, res) => res.end('{}');
  let server: http.Server;
  let client: HttpKubeClient;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
        seen.push(s);
        answer(s, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'sekret-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    client = HttpKubeClient.fromKubeConfig(kc, { requestTimeoutMs: 2000 });
  });
  afterAll(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const status = (code: number, reason: string, message: string) => (_r: Seen, res: http.ServerResponse) => {
    res.statusCode = code;
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));
  };

  it('lists with selectors and paging, and completes apiVersion/kind of the items', async () => {
    answer = (_r, res) => res.end(JSON.stringify({ metadata: { resourceVersion: '42', continue: 'tok' }, items: [{ metadata: { name: 'j1', namespace: 'ml' } }] }));
    const list = await client.list(JOBS, { namespace: 'ml', labelSelector: 'a=b', limit: 10 });
    expect(list).toEqual({ resourceVersion: '42', continue: 'tok', items: [{ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j1', namespace: 'ml' } }] });
    const last = seen[seen.length - 1];
    expect(last?.url).toBe('/apis/batch/v1/namespaces/ml/jobs?labelSelector=a%3Db&limit=10');
    expect(last?.headers.authorization).toBe('Bearer sekret-token');
  });

  it('an aborted signal ends a call in flight at once and tears its request down; a call after the abort is never sent', async () => {
    let closed = 0;
    answer = (_r, res) => res.on('close', () => { closed += 1; }); // never answers
    const term = new AbortController();
    const bound = boundToSignal(client, term.signal);
    const before = seen.length;
    const call = bound.patch(JOBS, 'ml', 'j1', { metadata: { labels: { a: 'b' } } });
    while (seen.length === before) await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    term.abort(new Error('lost leadership'));
    const err = await call.catch((e: unknown) => e);
    expect(isAborted(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(500); // not the 2 s request timeout
    for (let i = 0; i < 100 && closed === 0; i += 1) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(1); // the server saw the connection go
    const sent = seen.length;
    expect(isAborted(await bound.create(CONFIG_MAPS, 'ml', { metadata: { name: 'x' } }).catch((e: unknown) => e))).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(sent);
  });

  it.each([
    [404, 'NotFound', isNotFound],
    [409, 'AlreadyExists', isAlreadyExists],
    [409, 'Conflict', isConflict],
    [410, 'Expired', isGone],
    [422, 'Invalid', isInvalid],
  ])('turns %i %s into an ApiError', async (code, reason, is) => {
    answer = status(code, reason, `it is ${reason}`);
    const err = await client.get(CONFIG_MAPS, 'ns', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(is(err)).toBe(true);
    expect((err as ApiError).message).toBe(`it is ${reason}`);
  });

  it('sends merge patches to the status subresource with the right content type', async () => {
    answer = (r, res) => res.end(r.body);
    await client.patch(JOBS, 'ml', 'j1', { status: { phase: 'Running' } }, { subresource: 'status' });
    const last = seen[seen.length - 1];
    expect(last?.method).toBe('PATCH');
    expect(last?.url).toBe('/apis/batch/v1/namespaces/ml/jobs/j1/status');
    expect(last?.headers['content-type']).toBe('application/merge-patch+json');
    expect(JSON.parse(last?.body ?? '')).toEqual({ status: { phase: 'Running' } });
  });

  it('deletes with a propagation policy', async () => {
    answer = (_r, res) => res.end('{"kind":"Status","status":"Success"}');
    await client.delete(JOBS, 'ml', 'j1', { propagationPolicy: 'Foreground' });
    expect(JSON.parse(seen[seen.length - 1]?.body ?? '')).toMatchObject({ propagationPolicy: 'Foreground' });
  });

  it('streams watch events split across chunks, ERROR events included', async () => {
    answer = (_r, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const lines = [
        JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '5' } } }),
        JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '7' } } }),
        JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }),
      ].join('\n') + '\n';
      res.write(lines.slice(0, 17));
      setTimeout(() => {
        res.write(lines.slice(17));
        res.end();
      }, 20);
    };
    const events: WatchEvent[] = [];
    await client.watch(JOBS, { namespace: 'ml', resourceVersion: '4', timeoutSeconds: 30, allowWatchBookmarks: true }, (e) => events.push(e), new AbortController().signal);
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'BOOKMARK', 'ERROR']);
    expect(seen[seen.length - 1]?.url).toBe('/apis/batch/v1/namespaces/ml/jobs?watch=true&resourceVersion=4&timeoutSeconds=30&allowWatchBookmarks=true');
  });

  it('rejects a watch the server refuses, and resolves an aborted one', async () => {
    answer = status(403, 'Forbidden', 'jobs is forbidden');
    await expect(client.watch(JOBS, { resourceVersion: '1', timeoutSeconds: 5, allowWatchBookmarks: false }, () => undefined, new AbortController().signal))
      .rejects.toMatchObject({ statusCode: 403, reason: 'Forbidden' });
    answer = (_r, res) => {
      res.writeHead(200);
      res.write('');
    };
    const abort = new AbortController();
    const watching = client.watch(JOBS, { resourceVersion: '1', timeoutSeconds: 5, allowWatchBookmarks: false }, () => undefined, abort.signal);
    setTimeout(() => abort.abort(), 50);
    await expect(watching).resolves.toBeUndefined();
  });
});
