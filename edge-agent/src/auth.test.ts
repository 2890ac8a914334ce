// Bearer tokens from files laid out like a mounted Secret (`..data` symlink swapped on update): the
// guarded routes refuse a missing or wrong token with 401 before reading the body, each route takes
// only its own file's tokens, a rotation is picked up without a restart, probes and metrics stay open,
// and a configured file that cannot be read refuses everything.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import express from 'express';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { bearerToken, requireBearer, routeOf, TokenFile } from './auth.js';
import { tempDir } from './testing/speech.js';

/** A Secret volume: <dir>/<key> → ..data/<key>, ..data → ..<version>; update() swaps ..data atomically. */
function secretVolume(files: Record<string, string>) {
  const dir = tempDir('secret');
  let n = 0;
  const write = (content: Record<string, string>): void => {
    const version = `..v${++n}`;
    mkdirSync(join(dir, version));
    for (const [k, v] of Object.entries(content)) writeFileSync(join(dir, version, k), v);
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  write(files);
  for (const k of Object.keys(files)) symlinkSync(join('..data', k), join(dir, k));
  return { dir, update: write };
}

describe('bearer tokens', () => {
  const vol = secretVolume({ transcription: 'old-token\n', feedback: '# feedback senders\nfb-token\n' });
  let now = 0;
  const problems: string[] = [];
  const failures: string[] = [];
  const transcription = new TokenFile(join(vol.dir, 'transcription'), { now: () => now, recheckMs: 1000 });
  const feedback = new TokenFile(join(vol.dir, 'feedback'), { now: () => now, onProblem: (_p, m) => problems.push(m) });
  let server: Server;
  let url = '';
  let bodiesRead = 0;
  beforeAll(async () => {
    const app = express();
    app.use(requireBearer({ transcription, feedback, onFailure: (r) => failures.push(r) }));
    const ok = (req: express.Request, res: express.Response): void => {
      req.on('data', () => undefined);
      req.on('end', () => {
        bodiesRead++;
        res.json({ ok: true });
      });
    };
    app.post('/v1/audio/transcriptions', ok);
    app.get('/v1/models', ok);
    app.post('/v1/feedback', ok);
    for (const p of ['/healthz', '/readyz', '/metrics']) app.get(p, ok);
    server = await new Promise<Server>((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s));
    });
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
    rmSync(vol.dir, { recursive: true, force: true });
  });

  const call = async (method: string, path: string, token?: string): Promise<number> => {
    const r = await fetch(url + path, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, ...(method === 'POST' ? { body: 'x'.repeat(1000) } : {}) });
    await r.arrayBuffer();
    return r.status;
  };

  it('guards each route with its own file, before the route sees the body; probes and metrics stay open', async () => {
    const before = bodiesRead;
    expect(await call('POST', '/v1/audio/transcriptions')).toBe(401);
    expect(await call('POST', '/v1/audio/transcriptions', 'wrong')).toBe(401);
    expect(await call('POST', '/v1/audio/transcriptions', 'fb-token')).toBe(401);
    expect(await call('GET', '/v1/models')).toBe(401);
    expect(await call('POST', '/v1/feedback', 'old-token')).toBe(401);
    expect(bodiesRead).toBe(before);
    expect(failures).toEqual(['transcriptions', 'transcriptions', 'transcriptions', 'models', 'feedback']);
    expect(await call('POST', '/v1/audio/transcriptions', 'old-token')).toBe(200);
    expect(await call('GET', '/v1/models', 'old-token')).toBe(200);
    expect(await call('POST', '/v1/feedback', 'fb-token')).toBe(200);
    for (const p of ['/healthz', '/readyz', '/metrics']) expect(await call('GET', p)).toBe(200);
    const r = await fetch(`${url}/v1/feedback`, { method: 'POST', body: '{}' });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="whisperops-agent"');
    expect(await r.json()).toEqual({ error: { message: 'this route needs an "Authorization: Bearer <token>" header', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  });

  it('picks up a rotated Secret without a restart (old and new token during the overlap, then only the new)', async () => {
    vol.update({ transcription: 'old-token\nnew-token\n', feedback: 'fb-token\n' });
    expect(await call('POST', '/v1/audio/transcriptions', 'new-token')).toBe(401); // not re-read within recheckMs
    now += 1000;
    expect(await call('POST', '/v1/audio/transcriptions', 'new-token')).toBe(200);
    expect(await call('POST', '/v1/audio/transcriptions', 'old-token')).toBe(200);
    vol.update({ transcription: 'new-token\n', feedback: 'fb-token\n' });
    now += 1000;
    expect(await call('POST', '/v1/audio/transcriptions', 'old-token')).toBe(401);
    expect(await call('POST', '/v1/audio/transcriptions', 'new-token')).toBe(200);
  });

  it('fails closed when a configured file is empty or unreadable, and opens again when it is back', async () => {
    vol.update({ transcription: 'new-token\n', feedback: '\n# nobody\n' });
    now += 1000;
    expect(await call('POST', '/v1/feedback', 'fb-token')).toBe(401);
    rmSync(join(vol.dir, 'feedback'));
    now += 1000;
    expect(await call('POST', '/v1/feedback', 'fb-token')).toBe(401);
    symlinkSync(join('..data', 'feedback'), join(vol.dir, 'feedback'));
    vol.update({ transcription: 'new-token\n', feedback: 'fb-2\n' });
    now += 1000;
    expect(await call('POST', '/v1/feedback', 'fb-2')).toBe(200);
    expect(problems).toEqual(['the token file holds no token', expect.stringMatching(/^the token file cannot be read: ENOENT/)]);
  });

  it('a refused upload still being sent gets its 401, not a connection reset (up to 1 MiB is read and dropped)', async () => {
    const body = new Uint8Array(512 * 1024);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body, headers: { authorization: 'Bearer wrong' } });
      expect(r.status).toBe(401);
      await r.arrayBuffer();
    }
  });

  it('parses the header and routes strictly', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    expect(routeOf('/v1/models/x')).toBe('models');
    expect(routeOf('/v1/feedbackx')).toBeUndefined();
    expect(routeOf('/metrics')).toBeUndefined();
  });
});
