import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import type { QueryResult } from './client.js';
import { HttpPrometheusClient, interpret, isLoopbackHost, PrometheusConfigError, singleValue, urlProblem } from './client.js';

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }
type Answer = (req: Seen, res: http.ServerResponse) => void;

const vector = (...values: string[]) => JSON.stringify({
  status: 'success',
  data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { __name__: 'whisperops_agent_active_streams', pod: `agent-${i}` }, value: [1764590400.5, v] })) },
});
const json = (code: number, body: unknown): Answer => (_r, res) => {
  res.statusCode = code;
  res.setHeader('content-type', 'application/json');
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

describe('HttpPrometheusClient against a local HTTP server', () => {
  const seen: Seen[] = [];
  let answer: Answer = json(200, vector('1'));
  let server: http.Server;
  let base: string;
  const hanging: http.ServerResponse[] = [];

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
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const client = (over: Partial<ConstructorParameters<typeof HttpPrometheusClient>[0]> = {}) => new HttpPrometheusClient({ baseUrl: base, timeoutMs: 2000, ...over });

  it('POSTs the query as a form to /api/v1/query and returns the typed vector', async () => {
    answer = json(200, vector('3', '4.5'));
    const r = await client({ baseUrl: `${base}/prom/`, headers: { authorization: 'Bearer t' } }).query('sum(whisperops_agent_active_streams)', { time: new Date('2026-12-01T12:00:00.250Z') });
    expect(r).toEqual({
      kind: 'vector', warnings: [],
      samples: [
        { labels: { __name__: 'whisperops_agent_active_streams', pod: 'agent-0' }, value: 3, timestamp: 1764590400.5 },
        { labels: { __name__: 'whisperops_agent_active_streams', pod: 'agent-1' }, value: 4.5, timestamp: 1764590400.5 },
      ],
    });
    const last = seen[seen.length - 1];
    expect(last?.method).toBe('POST');
    expect(last?.url).toBe('/prom/api/v1/query');
    expect(last?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(last?.headers.authorization).toBe('Bearer t');
    const form = new URLSearchParams(last?.body);
    expect(form.get('query')).toBe('sum(whisperops_agent_active_streams)');
    expect(form.get('time')).toBe('1796126400.250');
    expect(form.get('timeout')).toBe('2000ms');
  });

  it('GET puts the parameters in the query string', async () => {
    answer = json(200, { status: 'success', data: { resultType: 'scalar', result: [1764590400, '7'] } });
    expect(await client({ method: 'GET', timeoutMs: 750 }).query('vector(7)')).toEqual({ kind: 'scalar', value: 7, timestamp: 1764590400, warnings: [] });
    const last = seen[seen.length - 1];
    expect(last?.method).toBe('GET');
    expect(last?.url).toBe('/api/v1/query?query=vector%287%29&timeout=750ms');
  });

  it.each<[string, Answer, Partial<QueryResult> & { messageContains?: string }]>([
    ['empty result []', json(200, vector()), { kind: 'unknown', reason: 'empty' }],
    ['NaN', json(200, vector('NaN')), { kind: 'unknown', reason: 'not_finite', messageContains: 'whisperops_agent_active_streams{pod="agent-0"} is NaN' }],
    ['+Inf', json(200, vector('+Inf')), { kind: 'unknown', reason: 'not_finite' }],
    ['-Inf among good samples', json(200, vector('1', '-Inf')), { kind: 'unknown', reason: 'not_finite' }],
    ['NaN scalar', json(200, { status: 'success', data: { resultType: 'scalar', result: [1, 'NaN'] } }), { kind: 'unknown', reason: 'not_finite' }],
    ['400 bad_data', json(400, { status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }),
      { kind: 'unknown', reason: 'bad_data', status: 400, errorType: 'bad_data', messageContains: 'parse error at char 5' }],
    ['422 execution', json(422, { status: 'error', errorType: 'execution', error: 'many-to-many matching not allowed' }), { kind: 'unknown', reason: 'bad_data', status: 422, errorType: 'execution' }],
    ['503 timeout', json(503, { status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' }), { kind: 'unknown', reason: 'server_error', status: 503 }],
    ['500 with an HTML body', json(500, '<html>oops</html>'), { kind: 'unknown', reason: 'server_error', messageContains: 'oops' }],
    ['200 with a body that is not JSON', json(200, 'hello'), { kind: 'unknown', reason: 'unparsable' }],
    ['200 truncated JSON', json(200, '{"status":"success","data":{"resultType":"vec'), { kind: 'unknown', reason: 'unparsable' }],
    ['200 with status "error"', json(200, { status: 'error', errorType: 'internal', error: 'boom' }), { kind: 'unknown', reason: 'prometheus_error', messageContains: 'internal: boom' }],
    ['a sample value that is not a string', json(200, { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 3] }] } }), { kind: 'unknown', reason: 'unparsable' }],
    ['a matrix', json(200, { status: 'success', data: { resultType: 'matrix', result: [] } }), { kind: 'unknown', reason: 'unsupported_result' }],
    ['a redirect (never followed)', (_r, res) => { res.statusCode = 302; res.setHeader('location', 'http://10.1.2.3:9090/api/v1/query'); res.end(); }, { kind: 'unknown', reason: 'redirect' }],
    ['a connection cut mid-answer', (_r, res) => { res.socket?.destroy(); }, { kind: 'unknown', reason: 'network' }],
  ])('%s → unknown, never 0', async (_what, canned, want) => {
    answer = canned;
    const before = seen.length;
    const r = await client().query('sum(whisperops_agent_active_streams)');
    const { messageContains, ...shape } = want;
    expect(r).toMatchObject(shape);
    if (messageContains) expect(r.kind === 'unknown' ? r.message : '').toContain(messageContains);
    expect(singleValue(r)).toMatchObject({ kind: 'unknown' });
    expect(seen.length).toBe(before + 1); // exactly one request: no retry, no redirect followed
  });

  it('a hanging server → unknown timeout, within about the timeout', async () => {
    answer = (_r, res) => { hanging.push(res); };
    const started = Date.now();
    const r = await client({ timeoutMs: 300 }).query('up');
    expect(r).toMatchObject({ kind: 'unknown', reason: 'timeout', message: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a server that sends headers and then hangs → unknown timeout', async () => {
    answer = (_r, res) => { hanging.push(res); res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"status":'); };
    expect(await client({ timeoutMs: 300 }).query('up')).toMatchObject({ kind: 'unknown', reason: 'timeout' });
  });

  it('the caller\'s signal → unknown aborted', async () => {
    answer = (_r, res) => { hanging.push(res); };
    const ctl = new AbortController();
    const p = client().query('up', { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 50);
    expect(await p).toMatchObject({ kind: 'unknown', reason: 'aborted' });
  });

  it('a body above the limit → unknown too_large', async () => {
    answer = json(200, vector(...Array.from({ length: 200 }, () => '1')));
    expect(await client({ maxBodyBytes: 1024 }).query('up')).toMatchObject({ kind: 'unknown', reason: 'too_large' });
  });

  it('nothing listening → unknown network', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const r = await new HttpPrometheusClient({ baseUrl: `http://127.0.0.1:${port}` }).query('up');
    expect(r).toMatchObject({ kind: 'unknown', reason: 'network' });
    expect(r.kind === 'unknown' ? r.message : '').toContain('ECONNREFUSED');
  });
});

describe('host guard', () => {
  it.each([
    ['http://127.0.0.1:9090', {}, undefined],
    ['http://127.35.0.7:9090/prom', {}, undefined],
    ['http://localhost:9090', {}, undefined],
    ['http://[::1]:9090', {}, undefined],
    ['http://10.0.0.5:9090', {}, 'host 10.0.0.5 is outside 127.0.0.0/8'],
    ['http://prometheus-operated.monitoring.svc:9090', {}, 'outside 127.0.0.0/8 and not in allowedHosts'],
    ['http://127.0.0.1.evil.example:9090', {}, 'outside 127.0.0.0/8'],
    ['http://128.0.0.1', {}, 'outside'],
    ['http://prometheus-operated.monitoring.svc:9090', { allowedHosts: ['Prometheus-Operated.monitoring.svc'] }, undefined],
    ['http://10.0.0.5:9090', { loopbackOnly: false }, undefined],
    ['ftp://127.0.0.1/', {}, 'ftp: is not http: or https:'],
    ['http://u:p@127.0.0.1/', {}, 'credentials'],
    ['http://127.0.0.1/?x=1', {}, 'query or fragment'],
    ['not a url', {}, 'is not a URL'],
  ])('%s %j → %s', (url, guard, problem) => {
    const got = urlProblem(url, guard);
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(problem);
  });

  it('the client refuses a non-loopback base URL at construction (nothing is ever sent)', () => {
    expect(() => new HttpPrometheusClient({ baseUrl: 'http://10.0.0.5:9090' })).toThrow(PrometheusConfigError);
    expect(() => new HttpPrometheusClient({ baseUrl: 'http://10.0.0.5:9090', allowedHosts: ['10.0.0.5'] })).not.toThrow();
  });

  it('isLoopbackHost: exactly 127.0.0.0/8, ::1 and localhost', () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => {
      expect(isLoopbackHost(ip)).toBe(ip.startsWith('127.'));
    }));
    expect(isLoopbackHost('127.1.2.300')).toBe(false);
  });
});

describe('interpret', () => {
  it('never turns a non-finite or malformed value into a number', () => {
    fc.assert(fc.property(fc.oneof(fc.constantFrom('NaN', '+Inf', '-Inf', 'Inf', '', ' ', 'abc'), fc.string()), (v) => {
      const r = interpret(200, JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, v] }] } }));
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) expect(r.kind).toBe('unknown');
      else expect(singleValue(r)).toEqual({ kind: 'value', value: n });
    }));
  });

  it('singleValue: several series are not one', () => {
    expect(singleValue(interpret(200, vector('1', '2')))).toMatchObject({ kind: 'unknown', reason: 'unsupported_result' });
    expect(singleValue(interpret(200, vector('0')))).toEqual({ kind: 'value', value: 0 });
  });
});
