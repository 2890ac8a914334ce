// The dataset stores: file:// on a real temp folder; s3:// against a real local HTTP server answering
// as S3 does (path-style PutObject, canned errors). Against the cluster's real S3 store:
// test/e2e/dataset-store.e2e.test.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDir } from '../testing/speech.js';
import { FileSampleStore, openSampleStore, S3SampleStore, StoreError, storeRoot, UnsupportedStoreError } from './store.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

async function failure(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('the put succeeded');
}

describe('openSampleStore', () => {
  it.each([
    ['s3://whisperops-datasets/pool-a', S3SampleStore, 's3://whisperops-datasets/pool-a/'],
    ['file:///var/lib/samples/', FileSampleStore, 'file:///var/lib/samples/'],
  ])('%s', (uri, kind, root) => {
    const s = openSampleStore(uri, {});
    expect(s).toBeInstanceOf(kind);
    expect(s.uri).toBe(root);
    expect(storeRoot(uri)).toBe(root);
  });

  it.each(['https://example.com/samples/', 'gs://bucket/x/', 's3:///no-bucket/', 'not a uri'])('refuses %s', (uri) => {
    expect(() => openSampleStore(uri, {})).toThrow(UnsupportedStoreError);
  });
});

describe('FileSampleStore', () => {
  const dir = tempDir('dataset-store');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes an object under nested folders, whole, leaving no partial file', async () => {
    const store = openSampleStore(`${pathToFileURL(dir).href}/root`, {});
    await store.put('finance/2026-11-26/a.wav', new Uint8Array([1, 2, 3]), 'audio/wav');
    await store.put('finance/2026-11-26/a.wav', new Uint8Array([4, 5]), 'audio/wav'); // replaced whole
    expect([...readFileSync(join(dir, 'root', 'finance', '2026-11-26', 'a.wav'))]).toEqual([4, 5]);
    expect(readdirSync(join(dir, 'root', 'finance', '2026-11-26'))).toEqual(['a.wav']);
  });

  it('refuses a key that leaves the store, and reports a failed write with the object\'s URI', async () => {
    const store = openSampleStore(`${pathToFileURL(dir).href}/root/`, {});
    expect((await failure(store.put('../outside.wav', new Uint8Array(1), 'audio/wav'))).message).toMatch(/escapes the dataset store/);
    // A file where a folder should be.
    await store.put('blocker', new Uint8Array(1), 'text/plain');
    const err = await failure(store.put('blocker/x.wav', new Uint8Array(1), 'audio/wav'));
    expect(err.message).toMatch(new RegExp(`^write ${pathToFileURL(dir).href}/root/blocker/x.wav: `));
  });
});

describe('S3SampleStore against a local S3-speaking HTTP server', () => {
  let server: Server;
  let endpoint = '';
  const seen: { method: string; url: string; type: string | undefined; auth: string; body: Buffer }[] = [];
  let answer: { status: number; body: string } = { status: 200, body: '' };

  const body = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });

  beforeAll(async () => {
    server = createServer((req, res) => {
      void body(req).then((b) => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', type: req.headers['content-type'], auth: req.headers.authorization ?? '', body: b });
        res.writeHead(answer.status, answer.status === 200 ? { etag: '"x"' } : { 'content-type': 'application/xml' });
        res.end(answer.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    endpoint = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  const env = () => ({ AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEEXAMPLE00', AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' });

  it('puts the object path-style at bucket/prefix/key with its bytes, type and a signature', async () => {
    const store = openSampleStore('s3://datasets/pool-a/', env());
    answer = { status: 200, body: '' };
    seen.length = 0;
    await store.put('finance/2026-11-26/agent-req_1.wav', new Uint8Array([82, 73, 70, 70]), 'audio/wav');
    await store.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'PUT', url: '/datasets/pool-a/finance/2026-11-26/agent-req_1.wav?x-id=PutObject', type: 'audio/wav' });
    expect(seen[0]?.body.toString()).toBe('RIFF');
    expect(seen[0]?.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE00\//);
  });

  it('turns an error answer into a StoreError naming the object and the S3 error, once (the writer does the retrying), no secret', async () => {
    const store = openSampleStore('s3://datasets/pool-a/', env());
    answer = { status: 500, body: `<?xml version="1.0"?><Error><Code>InternalError</Code><Message>disk full near ${SECRET}</Message></Error>` };
    seen.length = 0;
    const err = await failure(store.put('k.jsonl', new Uint8Array(1), 'application/x-ndjson'));
    await store.close();
    expect(seen).toHaveLength(1);
    expect(err.message).toBe('PUT s3://datasets/pool-a/k.jsonl: InternalError (HTTP 500): disk full near ***');
  });

  it('gives up on a store that does not answer, and on an abort', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const addr = silent.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const store = new S3SampleStore(new URL('s3://datasets/x/'), { ...env(), AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` }, 300);
      expect((await failure(store.put('a', new Uint8Array(1), 'text/plain'))).message).toMatch(/^PUT s3:\/\/datasets\/x\/a: aborted \(no answer in 300 ms\)/);
      const abort = new AbortController();
      const p = store.put('b', new Uint8Array(1), 'text/plain', abort.signal);
      setTimeout(() => abort.abort(new Error('shutting down')), 50);
      expect((await failure(p)).message).toMatch(/aborted \(shutting down\)/);
      await store.close();
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
