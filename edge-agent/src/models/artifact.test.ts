// ArtifactFetcher against real sources: a folder (file://) and a real local HTTP server (http://),
// including the ways an artifact goes bad.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { tempDir } from '../testing/speech.js';
import { ArtifactError, ArtifactFetcher, FileArtifactStore, HttpArtifactStore, MANIFEST, sha256 } from './artifact.js';

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
  const dir = tempDir('art');
  const files: Record<string, { sha256: string; bytes: number }> = {};
  for (const [rel, content] of Object.entries(FILES)) {
    if (opts.omit?.includes(rel)) continue;
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
    files[rel] = { sha256: sha256(Buffer.from(content)), bytes: content.length };
  }
  if (opts.tamper) writeFileSync(join(dir, opts.tamper), 'tampered');
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 1, version, files }));
  writeFileSync(join(dir, MANIFEST), manifest);
  return { dir, sha: sha256(manifest) };
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(ArtifactError);
    return (err as ArtifactError).reason;
  }
}

describe('ArtifactFetcher', () => {
  const root = tempDir('http-root');
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

  const fetcher = (): ArtifactFetcher => new ArtifactFetcher([new FileArtifactStore(), new HttpArtifactStore(5000)], tempDir('cache'));

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

  it('downloads every file of an http:// artifact into a content-addressed cache, once', async () => {
    const a = makeArtifact('v2');
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-r', a.dir, join(root, 'v2')]);
    const f = fetcher();
    requests = [];
    const got = await f.fetch({ uri: `${base}/v2/`, version: 'v2', sha256: a.sha }, 'int8');
    expect(got.dir.endsWith(a.sha)).toBe(true);
    expect(readFileSync(join(got.dir, 'onnx/decoder_model_merged_quantized.onnx'), 'utf8')).toBe('dec-int8');
    expect(requests.length).toBe(1 + Object.keys(FILES).length);
    requests = [];
    await f.fetch({ uri: `${base}/v2`, version: 'v2', sha256: a.sha }, 'int8');
    expect(requests).toEqual(['/v2/model-manifest.json']);
  });

  it.each([
    ['a manifest whose sha256 differs from the model set', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v1', sha256: 'e'.repeat(64) }), 'manifest_checksum_mismatch', {}],
    ['a manifest of another version', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v9', sha256: a.sha }), 'version_mismatch', {}],
    ['a file that does not match its manifest', (a: { dir: string; sha: string }) => ({ uri: `file://${a.dir}`, version: 'v1', sha256: a.sha }), 'file_checksum_mismatch', { tamper: 'onnx/encoder_model.onnx' }],
    ['a folder without a manifest', () => ({ uri: 'file:///nonexistent/model', version: 'v1', sha256: 'a'.repeat(64) }), 'missing_file', {}],
    ['an unsupported scheme', () => ({ uri: 's3://bucket/model', version: 'v1', sha256: 'a'.repeat(64) }), 'unsupported_uri', {}],
  ])('refuses %s', async (_name, ref, expected, opts) => {
    const a = makeArtifact('v1', opts);
    expect(await reason(fetcher().fetch(ref(a), 'int8'))).toBe(expected);
  });

  it('refuses an http:// artifact with a corrupt file and leaves no partial download', async () => {
    const a = makeArtifact('v3', { tamper: 'tokenizer.json' });
    const { execFileSync } = await import('node:child_process');
    execFileSync('cp', ['-r', a.dir, join(root, 'v3')]);
    const cache = tempDir('cache');
    const f = new ArtifactFetcher([new HttpArtifactStore(5000)], cache);
    expect(await reason(f.fetch({ uri: `${base}/v3/`, version: 'v3', sha256: a.sha }, 'int8'))).toBe('file_checksum_mismatch');
    expect(execFileSync('ls', ['-A', cache]).toString()).toBe('');
    expect(await reason(f.fetch({ uri: `${base}/missing/`, version: 'v3', sha256: a.sha }, 'int8'))).toBe('missing_file');
    expect(await reason(f.fetch({ uri: 'http://127.0.0.1:1/x/', version: 'v3', sha256: a.sha }, 'int8'))).toBe('download_error');
  });
});
