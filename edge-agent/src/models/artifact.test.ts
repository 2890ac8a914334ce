// ArtifactFetcher against real sources — a folder (file://) and a real local HTTP server (http://) —
// and, for the streaming download itself (caps, checksums, partial folders), an in-memory store
// whose files arrive in chunks; the ways an artifact goes bad, each with its reason.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { tempDir } from '../testing/speech.js';
import { ArtifactError, ArtifactFetcher, FileArtifactStore, HttpArtifactStore, MANIFEST, parseManifest, readChunks, sha256 } from './artifact.js';
import type { ArtifactStore, FetcherLimits } from './artifact.js';

/** Temporary folders of this file, removed after its tests. */
const scratchDirs: string[] = [];
function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

const FILES: Record<string, string> = {
  'config.json': '{"max_source_positions":500}',
  'generation_config.json': '{}',
  'preprocessor_config.json': '{}',
  'tokenizer.json': '{}',
  'onnx/encoder_model_quantized.onnx': 'enc-int8',
  'onnx/decoder_model_merged_quantized.onnx': 'dec-int8',
  'onnx/encoder_model.onnx': 'enc-fp32',
  'onnx/decoder_model_merged.onnx': 'dec-fp32',
};

function makeArtifact(version: string, opts: { tamper?: string; omit?: string[] } = {}): { dir: string; sha: string } {
  const dir = scratch('art');
  const files: Record<string, { sha256: string; bytes: number }> = {};
  for (const [rel, content] of Object.entries(FILES)) {
    if (opts.omit?.includes(rel)) continue;
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
    files[rel] = { sha256: sha256(Buffer.from(content)), bytes: content.length };
  }
  // Same size, other bytes: only the sha256 can tell.
  if (opts.tamper) writeFileSync(join(dir, opts.tamper), [...(FILES[opts.tamper] ?? '')].reverse().join(''));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 1, version, files }));
  writeFileSync(join(dir, MANIFEST), manifest);
  return { dir, sha: sha256(manifest) };
}

async function failure(p: Promise<unknown>): Promise<ArtifactError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ArtifactError);
    return err as ArtifactError;
  }
}

async function reason(p: Promise<unknown>): Promise<string> {
  return (await failure(p))?.reason ?? 'ok';
}

describe('ArtifactFetcher', () => {
  const root = scratch('http-root');
  let server: Server;
  let base = '';
  let requests: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      try {
        res.end(readFileSync(join(root, decodeURIComponent(req.url ?? '/'))));
      } catch {
        res.statusCode = 404;
        res.end('not found');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const fetcher = (): ArtifactFetcher => new ArtifactFetcher([new FileArtifactStore(), new HttpArtifactStore(5000)], scratch('cache'));

  it('verifies a file:// artifact in place and picks the INT8 files', async () => {
    const a = makeArtifact('v1');
    const got = await fetcher().fetch({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }, 'int8');
    expect(got.dir.replace(/\/$/, '')).toBe(a.dir);
    expect(got.dtype).toBe('int8');
  });

  it('falls back to fp32 files when an artifact has no INT8 export', async () => {
    const a = makeArtifact('v1', { omit: ['onnx/encoder_model_quantized.onnx', 'onnx/decoder_model_merged_quantized.onnx'] });
    expect((await fetcher().fetch({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }, 'int8')).dtype).toBe('fp32');
  });

  it('downloads the files the agent reads for its dtype (not the other dtype\'s, nor anything else listed) into a content-addressed cache, once', async () => {
    const a = makeArtifact('v2');
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-r', a.dir, join(root, 'v2')]);
    const f = fetcher();
    requests = [];
    const got = await f.fetch({ uri: `${base}/v2/`, version: 'v2', sha256: a.sha }, 'int8');
    expect(got.dir.endsWith(a.sha)).toBe(true);
    expect(readFileSync(join(got.dir, 'onnx/decoder_model_merged_quantized.onnx'), 'utf8')).toBe('dec-int8');
    const int8 = ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'onnx/encoder_model_quantized.onnx', 'onnx/decoder_model_merged_quantized.onnx'];
    expect(requests.sort()).toEqual(['/v2/model-manifest.json', ...int8.map((r) => `/v2/${r}`)].sort());
    expect(readdirSync(join(got.dir, 'onnx')).sort()).toEqual(['decoder_model_merged_quantized.onnx', 'encoder_model_quantized.onnx']);
    requests = [];
    await f.fetch({ uri: `${base}/v2`, version: 'v2', sha256: a.sha }, 'int8');
    expect(requests).toEqual(['/v2/model-manifest.json']);
    // The same artifact for an fp32 agent: its pair is fetched (the cache did not hold it).
    requests = [];
    const fp32 = await f.fetch({ uri: `${base}/v2`, version: 'v2', sha256: a.sha }, 'fp32');
    expect(fp32.dtype).toBe('fp32');
    expect(requests).toEqual(expect.arrayContaining(['/v2/onnx/encoder_model.onnx', '/v2/onnx/decoder_model_merged.onnx']));
    expect(readFileSync(join(fp32.dir, 'onnx/encoder_model.onnx'), 'utf8')).toBe('enc-fp32');
  });

  it('fetches a role head when the manifest lists one, and ignores a corrupt file the agent does not read', async () => {
    const a = makeArtifact('v7', { tamper: 'onnx/encoder_model.onnx' });
    writeFileSync(join(a.dir, 'onnx/role_head.onnx'), 'role');
    const manifest = JSON.parse(readFileSync(join(a.dir, MANIFEST), 'utf8')) as { files: Record<string, { sha256: string; bytes: number }> };
    manifest.files['onnx/role_head.onnx'] = { sha256: sha256(Buffer.from('role')), bytes: 4 };
    manifest.files['model.safetensors'] = { sha256: 'f'.repeat(64), bytes: 10 }; // listed, absent: never read
    const bytes = Buffer.from(JSON.stringify(manifest));
    writeFileSync(join(a.dir, MANIFEST), bytes);
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-r', a.dir, join(root, 'v7')]);
    const got = await fetcher().fetch({ uri: `${base}/v7`, version: 'v7', sha256: sha256(bytes) }, 'int8');
    expect(readFileSync(join(got.dir, 'onnx/role_head.onnx'), 'utf8')).toBe('role');
    // file:// in place too: the tampered fp32 encoder and the absent safetensors do not matter to INT8.
    expect((await fetcher().fetch({ uri: `file://${a.dir}`, version: 'v7', sha256: sha256(bytes) }, 'int8')).dtype).toBe('int8');
    // ...but they do to an fp32 agent.
    expect(await reason(fetcher().fetch({ uri: `file://${a.dir}`, version: 'v7', sha256: sha256(bytes) }, 'fp32'))).toBe('file_checksum_mismatch');
  });

  it.each([
    ['a manifest whose sha256 differs from the model set', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v1', sha256: 'e'.repeat(64) }), 'manifest_checksum_mismatch', {}],
    ['a manifest of another version', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v9', sha256: a.sha }), 'version_mismatch', {}],
    ['a file that does not match its manifest', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }), 'file_checksum_mismatch', { tamper: 'onnx/encoder_model_quantized.onnx' }],
    ['a folder without a manifest', () => ({ uri: 'file:///nonexistent/model', version: 'v1', sha256: 'a'.repeat(64) }), 'missing_file', {}],
    ['an unsupported scheme', () => ({ uri: 'gs://bucket/model', version: 'v1', sha256: 'a'.repeat(64) }), 'unsupported_uri', {}],
    ['an s3:// artifact when the agent has no S3 store', () => ({ uri: 's3://bucket/model', version: 'v1', sha256: 'a'.repeat(64) }), 'unsupported_uri', {}],
  ])('refuses %s', async (_name, ref, expected, opts) => {
    const a = makeArtifact('v1', opts);
    expect(await reason(fetcher().fetch(ref(a), 'int8'))).toBe(expected);
  });

  it('refuses an http:// artifact with a corrupt file and leaves no partial download', async () => {
    const a = makeArtifact('v3', { tamper: 'tokenizer.json' });
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-r', a.dir, join(root, 'v3')]);
    const cache = scratch('cache');
    const f = new ArtifactFetcher([new HttpArtifactStore(5000)], cache);
    expect(await reason(f.fetch({ uri: `${base}/v3/`, version: 'v3', sha256: a.sha }, 'int8'))).toBe('file_checksum_mismatch');
    expect(execFileSync('ls', ['-A', cache]).toString()).toBe('');
    expect(await reason(f.fetch({ uri: `${base}/missing/`, version: 'v3', sha256: a.sha }, 'int8'))).toBe('missing_file');
    expect(await reason(f.fetch({ uri: 'http://127.0.0.1:1/x/', version: 'v3', sha256: a.sha }, 'int8'))).toBe('download_error');
  });
});

describe('ArtifactFetcher, file:// in place', () => {
  it('refuses a file longer than its manifest lists, or shorter, before hashing it', async () => {
    const a = makeArtifact('v1');
    const fetcher = new ArtifactFetcher([new FileArtifactStore()], scratch('cache'));
    writeFileSync(join(a.dir, 'tokenizer.json'), '{"more":"bytes"}');
    const long = await failure(fetcher.fetch({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }, 'int8'));
    expect([long?.reason, long?.message]).toEqual(['file_too_large', `tokenizer.json of file://${a.dir} has 16 bytes, more than the 2 its manifest lists`]);
    writeFileSync(join(a.dir, 'tokenizer.json'), '{');
    const short = await failure(fetcher.fetch({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }, 'int8'));
    expect([short?.reason, short?.message]).toEqual(['file_checksum_mismatch', `tokenizer.json of file://${a.dir} has 1 bytes, its manifest lists 2`]);
  });
});

/** A real HTTP server whose answers a test scripts per request. */
async function scriptedServer(handler: (path: string, res: ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => handler(req.url ?? '/', res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('HttpArtifactStore', () => {
  it('times out a body that stops arriving (per-read idle timeout), however long the download as a whole', async () => {
    const srv = await scriptedServer((path, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      if (path === '/slow/steady.bin') {
        // 10 pieces, 60 ms apart: 600 ms in all, longer than the 200 ms idle timeout, never idle that long.
        let sent = 0;
        const tick = setInterval(() => {
          res.write(Buffer.alloc(100, 7));
          if (++sent === 10) { clearInterval(tick); res.end(); }
        }, 60);
      } else {
        res.write(Buffer.alloc(100, 1)); // then silence
      }
    });
    try {
      const store = new HttpArtifactStore(200);
      let n = 0;
      for await (const chunk of await store.open(new URL(`${srv.url}/slow/`), 'steady.bin', 1000)) n += chunk.byteLength;
      expect(n).toBe(1000);
      const started = Date.now();
      const err = await failure((async () => {
        for await (const chunk of await store.open(new URL(`${srv.url}/slow/`), 'stalled.bin', 1000)) expect(chunk.byteLength).toBeGreaterThan(0);
      })());
      expect(err?.reason).toBe('download_error');
      expect(err?.message).toBe(`reading GET ${srv.url}/slow/stalled.bin failed: no data for 200 ms`);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await srv.close();
    }
  });

  it('refuses a body whose Content-Length is over the cap before reading it, and maps 404 / 5xx', async () => {
    let bodiesStarted = 0;
    const srv = await scriptedServer((path, res) => {
      if (path.startsWith('/a/big')) {
        res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
        bodiesStarted++;
        res.write(Buffer.alloc(1024));
        return; // never finishes: the client must not wait for it
      }
      res.statusCode = path.startsWith('/a/gone') ? 404 : 503;
      res.end();
    });
    try {
      const store = new HttpArtifactStore(5000);
      const big = await failure(store.open(new URL(`${srv.url}/a/`), 'big.onnx', 1000));
      expect(big?.reason).toBe('file_too_large');
      expect(big?.message).toBe(`GET ${srv.url}/a/big.onnx: Content-Length ${64 * 1024 * 1024}`);
      expect(bodiesStarted).toBe(1);
      expect(await reason(store.open(new URL(`${srv.url}/a/`), 'gone.json', 1000))).toBe('missing_file');
      const down = await failure(store.open(new URL(`${srv.url}/a/`), 'x.json', 1000));
      expect([down?.reason, down?.message]).toEqual(['download_error', `GET ${srv.url}/a/x.json: HTTP 503`]);
    } finally {
      await srv.close();
    }
  });

  it('the fetcher says which file was over its manifest\'s size when the server announces it', async () => {
    const a = makeArtifact('v5');
    const srv = await scriptedServer((path, res) => {
      const file = decodeURIComponent(path.replace(/^\/v5\//, ''));
      const body = file === 'config.json' ? Buffer.alloc(4096, 32) : readFileSync(join(a.dir, file));
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
    });
    try {
      const cache = scratch('cache');
      const err = await failure(new ArtifactFetcher([new HttpArtifactStore(5000)], cache).fetch({ uri: `${srv.url}/v5/`, version: 'v5', sha256: a.sha }, 'int8'));
      expect(err?.reason).toBe('file_too_large');
      expect(err?.message).toBe(`config.json of ${srv.url}/v5/ has more than the 28 bytes its manifest lists (GET ${srv.url}/v5/config.json: Content-Length 4096)`);
      expect(readdirSync(cache)).toEqual([]);
    } finally {
      await srv.close();
    }
  });
});

/**
 * Artifacts in memory under mem://<name>/, served in chunks of `chunk` bytes. Records what was opened,
 * how many bytes each read handed out, and which reads were released (finished or stopped early).
 */
class MemoryStore implements ArtifactStore {
  readonly schemes = ['mem:'] as const;
  readonly opened: string[] = [];
  readonly released: string[] = [];
  readonly served = new Map<string, number>();
  constructor(
    private readonly files: Map<string, Uint8Array>,
    private readonly opts: { chunk?: number; failAt?: { rel: string; bytes: number } } = {},
  ) {}
  open(base: URL, relPath: string): Promise<AsyncIterable<Uint8Array>> {
    const key = `${base.host}/${relPath}`;
    const data = this.files.get(key);
    if (!data) return Promise.reject(new ArtifactError('missing_file', `no ${key}`));
    this.opened.push(relPath);
    const { chunk = 7, failAt } = this.opts;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return Promise.resolve((async function* () {
      try {
        for (let at = 0; at < data.length; at += chunk) {
          if (failAt?.rel === relPath && at >= failAt.bytes) throw new ArtifactError('download_error', `connection reset reading ${key}`);
          await Promise.resolve(); // a real source's chunks arrive asynchronously
          const piece = data.subarray(at, Math.min(at + chunk, data.length));
          self.served.set(relPath, (self.served.get(relPath) ?? 0) + piece.length);
          yield piece;
        }
      } finally {
        self.released.push(relPath);
      }
    })());
  }
}

const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s);

/** An in-memory artifact: `content` as stored, `listed` (default: the content) as its manifest describes it. */
function memoryArtifact(
  version: string,
  content: Record<string, Uint8Array>,
  listed: Record<string, { sha256?: string; bytes?: number | null }> = {},
): { files: Map<string, Uint8Array>; ref: { uri: string; version: string; sha256: string } } {
  const base = {
    'config.json': bytesOf('{"max_source_positions":500}'), 'generation_config.json': bytesOf('{}'), 'preprocessor_config.json': bytesOf('{}'),
    'tokenizer.json': bytesOf('{}'), 'onnx/encoder_model_quantized.onnx': bytesOf('enc'), 'onnx/decoder_model_merged_quantized.onnx': bytesOf('dec'),
  };
  const all: Record<string, Uint8Array> = { ...base, ...content };
  const files: Record<string, { sha256: string; bytes?: number }> = {};
  for (const [rel, data] of Object.entries(all)) {
    const l = listed[rel] ?? {};
    const bytes = l.bytes === undefined ? data.length : l.bytes;
    files[rel] = { sha256: l.sha256 ?? sha256(data), ...(bytes === null ? {} : { bytes }) };
  }
  const manifest = bytesOf(JSON.stringify({ version, files }));
  const map = new Map(Object.entries(all).map(([rel, data]) => [`${version}/${rel}`, data]));
  map.set(`${version}/${MANIFEST}`, manifest);
  return { files: map, ref: { uri: `mem://${version}/`, version, sha256: sha256(manifest) } };
}

describe('ArtifactFetcher streaming download', () => {
  const big = new Uint8Array(100_000).map((_, i) => (i * 31) % 251);
  const fetchWith = (store: MemoryStore, limits: FetcherLimits = {}) => {
    const cache = scratch('cache');
    return { cache, fetcher: new ArtifactFetcher([store], cache, limits) };
  };

  it('writes every file chunk by chunk into the cache, verified, and releases every read', async () => {
    const a = memoryArtifact('m1', { 'onnx/encoder_model_quantized.onnx': big });
    const store = new MemoryStore(a.files, { chunk: 4096 });
    const { cache, fetcher } = fetchWith(store);
    const got = await fetcher.fetch(a.ref, 'int8');
    expect(got.dir).toBe(join(cache, a.ref.sha256));
    expect(readdirSync(cache)).toEqual([a.ref.sha256]);
    expect(Buffer.from(readFileSync(join(got.dir, 'onnx/encoder_model_quantized.onnx'))).equals(Buffer.from(big))).toBe(true);
    expect(readFileSync(join(got.dir, MANIFEST))).toEqual(Buffer.from(a.files.get(`m1/${MANIFEST}`) ?? []));
    expect(store.released.sort()).toEqual(store.opened.sort());
    expect(store.opened.length).toBe(1 + 6);
  });

  it.each([
    ['more bytes than its manifest lists', { 'tokenizer.json': { bytes: 10_000 } }, { 'tokenizer.json': big }, {},
      'file_too_large', 'tokenizer.json of mem://m2/ has more than the 10000 bytes its manifest lists'],
    ['fewer bytes than its manifest lists', { 'tokenizer.json': { bytes: 3 } }, {}, {},
      'file_checksum_mismatch', 'tokenizer.json of mem://m2/ has 2 bytes, its manifest lists 3'],
    ['a byte changed in the middle (same size)', { 'onnx/encoder_model_quantized.onnx': { sha256: sha256(big.map((b, i) => (i === 50_000 ? b ^ 1 : b))) } }, { 'onnx/encoder_model_quantized.onnx': big }, {},
      'file_checksum_mismatch', `onnx/encoder_model_quantized.onnx of mem://m2/ has sha256 ${sha256(big)}, its manifest says ${sha256(big.map((b, i) => (i === 50_000 ? b ^ 1 : b)))}`],
    ['no size listed and more than the agent\'s per-file cap', { 'tokenizer.json': { bytes: null } }, { 'tokenizer.json': big }, { maxFileBytes: 50_000 },
      'file_too_large', 'tokenizer.json of mem://m2/ is larger than the agent\'s limit of 50000 bytes per file'],
  ])('refuses a file with %s, and leaves nothing in the cache', async (_name, listed, content, limits, expected, message) => {
    const a = memoryArtifact('m2', content, listed);
    const store = new MemoryStore(a.files, { chunk: 1000 });
    const { cache, fetcher } = fetchWith(store, limits);
    const err = await failure(fetcher.fetch(a.ref, 'int8'));
    expect([err?.reason, err?.message]).toEqual([expected, message]);
    expect(readdirSync(cache)).toEqual([]);
    expect(store.released.sort()).toEqual(store.opened.sort());
  });

  it('stops reading an oversized file at its cap: at most one chunk more is read', async () => {
    const a = memoryArtifact('m3', { 'config.json': big }, { 'config.json': { bytes: 5000 } });
    const store = new MemoryStore(a.files, { chunk: 1000 });
    const { fetcher } = fetchWith(store);
    expect(await reason(fetcher.fetch(a.ref, 'int8'))).toBe('file_too_large');
    expect(store.served.get('config.json')).toBe(6000);
    expect(store.released).toContain('config.json');
  });

  it('refuses a manifest that lists a file over the per-file cap before downloading anything', async () => {
    const a = memoryArtifact('m4', {}, { 'onnx/encoder_model_quantized.onnx': { bytes: 3 * 1024 ** 3 } });
    const store = new MemoryStore(a.files);
    const err = await failure(fetchWith(store).fetcher.fetch(a.ref, 'int8'));
    expect([err?.reason, err?.message]).toEqual(['file_too_large', `${MANIFEST} of mem://m4/ lists onnx/encoder_model_quantized.onnx with ${3 * 1024 ** 3} bytes, over the agent's limit of ${2 * 1024 ** 3} bytes per file`]);
    expect(store.opened).toEqual([MANIFEST]);
  });

  it('caps model-manifest.json (read into memory) at 1 MiB by default', async () => {
    const a = memoryArtifact('m5', {});
    a.files.set(`m5/${MANIFEST}`, bytesOf(JSON.stringify({ version: 'm5', files: {}, padding: 'x'.repeat(1024 ** 2) })));
    const store = new MemoryStore(a.files, { chunk: 64 * 1024 });
    const err = await failure(fetchWith(store).fetcher.fetch(a.ref, 'int8'));
    expect([err?.reason, err?.message]).toEqual(['file_too_large', `${MANIFEST} of mem://m5/ is larger than the agent's limit of ${1024 ** 2} bytes for manifests`]);
    expect(store.served.get(MANIFEST)).toBeLessThanOrEqual(1024 ** 2 + 64 * 1024);
    expect(await reason(fetchWith(new MemoryStore(a.files), { maxManifestBytes: 2 * 1024 ** 2 }).fetcher.fetch(a.ref, 'int8'))).toBe('manifest_checksum_mismatch');
  });

  it('a read that fails mid-stream removes the whole partial folder, files already complete included', async () => {
    const a = memoryArtifact('m6', { 'onnx/decoder_model_merged_quantized.onnx': big });
    const store = new MemoryStore(a.files, { chunk: 1000, failAt: { rel: 'onnx/decoder_model_merged_quantized.onnx', bytes: 30_000 } });
    const { cache, fetcher } = fetchWith(store);
    const err = await failure(fetcher.fetch(a.ref, 'int8'));
    expect([err?.reason, err?.message]).toEqual(['download_error', 'connection reset reading m6/onnx/decoder_model_merged_quantized.onnx']);
    expect(readdirSync(cache)).toEqual([]);
    // and the next fetch starts afresh and succeeds
    const ok = new MemoryStore(a.files);
    expect((await new ArtifactFetcher([ok], cache).fetch(a.ref, 'int8')).dir).toBe(join(cache, a.ref.sha256));
  });

  it('refuses a manifest path that leaves the folder, and a size that is no byte count, before reading any file', () => {
    for (const [files, message] of [
      [{ '../../etc/evil': { sha256: 'a'.repeat(64), bytes: 1 } }, 'manifest path escapes the artifact folder: ../../etc/evil'],
      [{ 'config.json': { sha256: 'a'.repeat(64), bytes: -1 } }, `${MANIFEST}: file config.json has "bytes" -1, not a byte count`],
      [{ 'config.json': { sha256: 'a'.repeat(64), bytes: '12' } }, `${MANIFEST}: file config.json has "bytes" "12", not a byte count`],
    ] as const) {
      let thrown: unknown;
      try {
        parseManifest(bytesOf(JSON.stringify({ version: 'v', files })));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ArtifactError);
      expect([(thrown as ArtifactError).reason, (thrown as ArtifactError).message]).toEqual(['invalid_manifest', message]);
    }
  });

  it('any content in any chunking: the file on disk is the content, or the refusal names the reason (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: -3, max: 3 }), fc.boolean(),
      async (content, chunk, sizeDelta, corrupt) => {
        const stored = corrupt && content.length > 0 ? content.map((b, i) => (i === content.length >> 1 ? b ^ 0xff : b)) : content;
        const listedBytes = Math.max(0, content.length + sizeDelta);
        const a = memoryArtifact('p1', { 'tokenizer.json': stored }, { 'tokenizer.json': { sha256: sha256(content), bytes: listedBytes } });
        const store = new MemoryStore(a.files, { chunk });
        const { cache, fetcher } = fetchWith(store);
        const result = await fetcher.fetch(a.ref, 'int8').then((r) => ({ ok: true as const, dir: r.dir }), (err: unknown) => ({ ok: false as const, err: err as ArtifactError }));
        const expected = stored.length > listedBytes ? 'file_too_large' : stored.length < listedBytes || (corrupt && content.length > 0) ? 'file_checksum_mismatch' : 'ok';
        if (result.ok) {
          expect(expected).toBe('ok');
          expect(createHash('sha256').update(readFileSync(join(result.dir, 'tokenizer.json'))).digest('hex')).toBe(sha256(content));
        } else {
          expect(result.err.reason).toBe(expected);
          expect(readdirSync(cache)).toEqual([]);
        }
        expect(store.released.sort()).toEqual(store.opened.sort());
      },
    ), { numRuns: 60 });
  });
});

describe('readChunks', () => {
  it('turns a source\'s error into download_error naming the object, and keeps an ArtifactError as it is', async () => {
    const failing = async function* (): AsyncGenerator<Uint8Array> {
      yield await Promise.resolve(bytesOf('a'));
      throw new Error('ECONNRESET');
    };
    const err = await failure((async () => { for await (const c of readChunks(failing(), 's3://b/k')) expect(c.length).toBe(1); })());
    expect([err?.reason, err?.message]).toEqual(['download_error', 'reading s3://b/k failed: ECONNRESET']);
    const refusing = async function* (): AsyncGenerator<Uint8Array> {
      yield* [];
      await Promise.resolve();
      throw new ArtifactError('file_too_large', 'as the store said');
    };
    const kept = await failure((async () => { for await (const c of readChunks(refusing(), 's3://b/k')) expect(c).toBeUndefined(); })());
    expect([kept?.reason, kept?.message]).toEqual(['file_too_large', 'as the store said']);
  });

  it('does not count the time the consumer spends on a chunk as the source being idle', async () => {
    const source = async function* (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3; i++) yield await Promise.resolve(bytesOf('x'));
    };
    let aborted = false;
    let n = 0;
    for await (const c of readChunks(source(), 'slow consumer', { ms: 50, abort: () => { aborted = true; } })) {
      n += c.length;
      await new Promise((r) => setTimeout(r, 120));
    }
    expect([n, aborted]).toEqual([3, false]);
  });
});

describe('ArtifactFetcher retries', () => {
  it('tries a read again after HTTP 500 and after a stalled body, with a back-off, and ends with a verified cache', async () => {
    const art = makeArtifact('9.0.0');
    const hits = new Map<string, number>();
    const srv = await scriptedServer((path, res) => {
      const n = (hits.get(path) ?? 0) + 1;
      hits.set(path, n);
      const rel = path.replace(/^\/art\//, '');
      const body = readFileSync(join(art.dir, decodeURIComponent(rel)));
      if (rel === MANIFEST && n === 1) {
        res.writeHead(500).end('try later');
        return;
      }
      if (rel === 'onnx/encoder_model_quantized.onnx' && n <= 2) {
        if (n === 1) res.writeHead(503).end();
        else {
          res.writeHead(200, { 'content-length': String(body.length) });
          res.write(body.subarray(0, 3)); // then silence: the idle timeout ends this try
        }
        return;
      }
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    });
    try {
      const cache = scratch('cache');
      const fetcher = new ArtifactFetcher([new HttpArtifactStore(300)], cache, { retry: { attempts: 4, initialMs: 50, maxMs: 80 }, random: () => 1 });
      const t0 = Date.now();
      const got = await fetcher.fetch({ version: '9.0.0', uri: `${srv.url}/art/`, sha256: art.sha }, 'int8');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(50 + 50 + 80 + 300 - 20); // manifest back-off, two encoder back-offs, one idle timeout
      expect(readFileSync(join(got.dir, 'onnx/encoder_model_quantized.onnx'), 'utf8')).toBe('enc-int8');
      expect(hits.get(`/art/${MANIFEST}`)).toBe(2);
      expect(hits.get('/art/onnx/encoder_model_quantized.onnx')).toBe(3);
      expect(readdirSync(cache)).toEqual([art.sha]);
    } finally {
      await srv.close();
    }
  });

  it('gives up after the last try with download_error (URL query redacted); checksum failures are not retried', async () => {
    const art = makeArtifact('9.0.1', { tamper: 'tokenizer.json' });
    const hits = new Map<string, number>();
    const srv = await scriptedServer((path, res) => {
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const url = new URL(path, 'http://x');
      if (url.pathname.startsWith('/down/')) {
        res.writeHead(500).end();
        return;
      }
      const body = readFileSync(join(art.dir, decodeURIComponent(url.pathname.replace(/^\/art\//, ''))));
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    });
    try {
      const fetcher = new ArtifactFetcher([new HttpArtifactStore(300)], scratch('cache'), { retry: { attempts: 3, initialMs: 10, maxMs: 20 } });
      const down = await failure(fetcher.fetch({ version: '9.0.1', uri: `${srv.url}/down/?X-Amz-Signature=secret`, sha256: art.sha }, 'int8'));
      expect(down?.reason).toBe('download_error');
      expect(down?.message).not.toContain('secret');
      expect([...hits.entries()].filter(([p]) => p.startsWith('/down/')).reduce((a, [, n]) => a + n, 0)).toBe(3);
      expect(await reason(fetcher.fetch({ version: '9.0.1', uri: `${srv.url}/art/`, sha256: art.sha }, 'int8'))).toBe('file_checksum_mismatch');
      expect(hits.get('/art/tokenizer.json')).toBe(1);
    } finally {
      await srv.close();
    }
  });
});

describe('ArtifactFetcher resumes a failed download (HTTP Range)', () => {
  const BIG = 'onnx/encoder_model_quantized.onnx';
  /** An artifact whose BIG file is `body`: its first GET stops after `cutAt` bytes and stays silent; later GETs honour Range (unless `ignoreRange`). */
  async function flaky(body: Buffer, cutAt: number, ignoreRange: boolean) {
    const seen: { range: string | undefined; sent: number }[] = [];
    const content: Record<string, Buffer> = Object.fromEntries(Object.entries(FILES).map(([k, v]) => [k, Buffer.from(v)]));
    content[BIG] = body;
    const files = Object.fromEntries(Object.entries(content).map(([k, v]) => [k, { sha256: sha256(v), bytes: v.length }]));
    const manifest = Buffer.from(JSON.stringify({ version: 'r1', files }));
    const server = createServer((req, res) => {
      const rel = decodeURIComponent((req.url ?? '').replace(/^\/r\//, ''));
      if (rel === MANIFEST) return void res.writeHead(200, { 'content-length': String(manifest.length) }).end(manifest);
      const file = content[rel];
      if (!file) return void res.writeHead(404).end();
      if (rel !== BIG) return void res.writeHead(200, { 'content-length': String(file.length) }).end(file);
      const range = req.headers.range;
      const from = !ignoreRange && range ? Number(/^bytes=(\d+)-$/.exec(range)?.[1] ?? 0) : 0;
      const first = seen.length === 0;
      const part = body.subarray(from);
      if (from > 0) res.writeHead(206, { 'content-length': String(part.length), 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
      else res.writeHead(200, { 'content-length': String(body.length) });
      const send = first ? part.subarray(0, cutAt) : part;
      seen.push({ range, sent: send.length });
      if (first) res.write(send); // then silence: the idle timeout ends this try
      else res.end(send);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/r/`;
    return { url, seen, sha: sha256(manifest), close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
  }

  it.each([
    ['resumes from where the file on disk ends', false],
    ['starts again when the server ignores Range', true],
  ])('%s, and the result is verified', async (_name, ignoreRange) => {
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251;
    const srv = await flaky(body, 1024 * 1024, ignoreRange);
    try {
      const fetcher = new ArtifactFetcher([new HttpArtifactStore(300)], scratch('cache'), { retry: { attempts: 3, initialMs: 10, maxMs: 20 } });
      const got = await fetcher.fetch({ version: 'r1', uri: srv.url, sha256: srv.sha }, 'int8');
      expect(readFileSync(join(got.dir, BIG)).equals(body)).toBe(true);
      expect(srv.seen).toHaveLength(2);
      expect(srv.seen[0]?.range).toBeUndefined();
      const from = Number(/^bytes=(\d+)-$/.exec(srv.seen[1]?.range ?? '')?.[1]);
      expect(from).toBeGreaterThan(0);
      expect(from).toBeLessThanOrEqual(1024 * 1024);
      // Resumed: only the rest crossed the wire again. Ignored: the whole file again, started from scratch.
      expect(srv.seen[1]?.sent).toBe(ignoreRange ? body.length : body.length - from);
    } finally {
      await srv.close();
    }
  });
});
