import { describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import { assertLoopbackUrl, freeLoopbackPort, loopbackFetch, NotLoopbackError, pollUntil } from './loopback.js';

describe('assertLoopbackUrl', () => {
  it.each(['http://127.0.0.1:9090/api/v1/query', 'https://127.0.0.1:6443/readyz', 'http://127.0.0.1/'])('accepts %s', (url) => {
    expect(assertLoopbackUrl(url).hostname).toBe('127.0.0.1');
  });

  it.each([
    'http://10.244.0.1:8080/metrics',
    'http://localhost:9090/',
    'http://127.0.0.2:9090/',
    'http://127.0.0.1.nip.io/',
    'http://user:secret@127.0.0.1:9090/',
    'file:///etc/passwd',
    'not a url',
    'http://[::1]:9090/',
  ])('refuses %s', (url) => {
    expect(() => assertLoopbackUrl(url)).toThrow(NotLoopbackError);
  });

  it('refuses before sending anything', async () => {
    await expect(loopbackFetch('http://10.244.0.1:9/')).rejects.toThrow(NotLoopbackError);
  });
});

describe('loopbackFetch and pollUntil', () => {
  it('talk to a local server until it answers', async () => {
    let calls = 0;
    const server = createServer((_req, res) => {
      calls += 1;
      res.statusCode = calls >= 3 ? 200 : 503;
      res.end();
    });
    const port = await freeLoopbackPort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await pollUntil('ready', async () => (await loopbackFetch(`http://127.0.0.1:${port}/`)).status === 200, { timeoutMs: 5000, intervalMs: 10 });
      expect(calls).toBe(3);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('stops waiting when the process died', async () => {
    await expect(pollUntil('x', () => Promise.resolve(false), { timeoutMs: 5000, dead: () => 'it exited' })).rejects.toThrow('x: it exited');
  });

  it('times out with the last error as cause', async () => {
    await expect(pollUntil('y', () => Promise.reject(new Error('boom')), { timeoutMs: 50, intervalMs: 10 })).rejects.toMatchObject({
      message: expect.stringContaining('timed out') as unknown,
      cause: expect.objectContaining({ message: 'boom' }) as unknown,
    });
  });
});
