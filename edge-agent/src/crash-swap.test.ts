// An agent SIGKILLed in the middle of a model swap (its new artifact half downloaded), with real
// processes: the next agent started on the same cache serves the new model, verified — the half
// download is never used (and is cleaned up), and a cache folder damaged behind the agent's back is
// detected by its sha256 check and downloaded again.
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, truncateSync, copyFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { filesToFetch, sha256File } from './models/artifact.js';
import { derivedArtifact, EMBEDDED_MODEL, embeddedRef, REPO_ROOT, speak, tempDir, writeConfigMap } from './testing/speech.js';

jest.setTimeout(300_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(cond).catch(() => false))) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('agent SIGKILLed during a model swap', () => {
  const v2 = derivedArtifact('swap-2');
  const cache = tempDir('swap-cache');
  const configDir = tempDir('swap-config');
  const children: ChildProcess[] = [];
  let slow = true;
  const server = createServer((req, res) => {
    const [, name = '', ...rest] = (req.url ?? '/').split('/');
    const dir = name === 'base' ? EMBEDDED_MODEL : name === 'v2' ? v2.dir : undefined;
    let body: Buffer;
    try {
      if (!dir) throw new Error('unknown');
      body = readFileSync(join(dir, decodeURIComponent(rest.join('/'))));
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    if (!(slow && name === 'v2' && body.length > 1_000_000)) {
      res.end(body);
      return;
    }
    // The big files of v2 trickle: 64 KiB every 100 ms.
    let at = 0;
    const tick = setInterval(() => {
      if (res.destroyed) return clearInterval(tick);
      res.write(body.subarray(at, at + 65_536));
      at += 65_536;
      if (at >= body.length) {
        clearInterval(tick);
        res.end();
      }
    }, 100);
    res.on('close', () => clearInterval(tick));
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    for (const d of [v2.dir, cache, configDir]) rmSync(d, { recursive: true, force: true });
  });

  function startAgent(port: number, file: string): { child: ChildProcess; log: string[] } {
    const log: string[] = [];
    // node itself with tsx's loader (not the tsx CLI, which would run the agent in a grandchild that a SIGKILL of the child misses).
    const child = spawn(process.execPath, ['--import', 'tsx', 'edge-agent/src/main.ts', '--port', String(port), '--config', file, '--cache-dir', cache, '--workers', '1', '--config-poll-seconds', '1', '--shutdown-delay-seconds', '0'], {
      cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
    children.push(child);
    return { child, log };
  }

  const transcribe = async (url: string): Promise<{ version: string; text: string }> => {
    const form = new FormData();
    form.set('file', new Blob([speak('your program is sick')], { type: 'audio/wav' }), 'a.wav');
    const r = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    expect(r.status).toBe(200);
    return { version: r.headers.get('x-whisperops-model-version') ?? '', text: ((await r.json()) as { text: string }).text };
  };

  it('the next start serves the new model, verified; the half download is never used and is removed', async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const art = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const base = embeddedRef();
    const setOf = (name: string, ref: { version: string; sha256: string }) => JSON.stringify({ pool: 'swap', models: [{ name: 'asr', stable: { version: ref.version, sha256: ref.sha256, uri: `${art}/${name}/` } }] });
    const file = writeConfigMap(configDir, 'model-set.json', setOf('base', base));

    // Agent A serves the base model, then is told to swap to v2, whose download trickles.
    const tStart = Date.now();
    const phases: string[] = [];
    const phase = (name: string): void => void phases.push(`${name} ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
    const portA = await freePort();
    const a = startAgent(portA, file);
    const urlA = `http://127.0.0.1:${portA}`;
    await until('agent A ready', async () => (await fetch(`${urlA}/readyz`)).status === 200);
    expect((await transcribe(urlA)).version).toBe(base.version);
    phase('A ready');
    writeConfigMap(configDir, 'model-set.json', setOf('v2', v2));
    const partialOf = (): string | undefined => readdirSync(cache).find((n) => n.startsWith(`${v2.sha256}.partial-`));
    // Half downloaded: some file of the partial folder (the first big one in manifest order) has > 500 kB.
    await until('v2 half downloaded', () => {
      const p = partialOf();
      if (!p) return false;
      const sizes = (readdirSync(join(cache, p), { recursive: true }) as string[]).map((f) => statSync(join(cache, p, f)).size);
      return sizes.some((n) => n > 500_000);
    });
    phase('v2 half downloaded');
    // SIGKILL in the middle of the swap: no handler runs.
    a.child.kill('SIGKILL');
    await until('agent A gone', () => a.child.exitCode !== null || a.child.signalCode !== null, 10_000);
    expect(a.child.signalCode).toBe('SIGKILL');
    const leftover = partialOf();
    expect(leftover).toBeDefined();
    expect(existsSync(join(cache, v2.sha256))).toBe(false);

    // A cache folder damaged behind the agent's back (complete manifest, a truncated model file).
    mkdirSync(join(cache, v2.sha256, 'onnx'), { recursive: true });
    copyFileSync(join(v2.dir, 'model-manifest.json'), join(cache, v2.sha256, 'model-manifest.json'));
    const damaged = join(cache, v2.sha256, 'onnx', 'encoder_model_quantized.onnx');
    writeFileSync(damaged, readFileSync(join(EMBEDDED_MODEL, 'onnx', 'encoder_model_quantized.onnx')));
    truncateSync(damaged, 1000);

    // Agent B on the same cache and model set, the server fast again.
    slow = false;
    const portB = await freePort();
    const t0 = Date.now();
    const b = startAgent(portB, file);
    const urlB = `http://127.0.0.1:${portB}`;
    await until('agent B ready', async () => (await fetch(`${urlB}/readyz`)).status === 200);
    const readyMs = Date.now() - t0;
    const served = await transcribe(urlB);
    expect(served).toEqual({ version: 'swap-2', text: 'your program is sick' });
    // What B serves is verified: every file an INT8 agent reads is in the cache and matches v2's manifest.
    const manifest = JSON.parse(readFileSync(join(cache, v2.sha256, 'model-manifest.json'), 'utf8')) as { version: string; files: Record<string, { sha256: string; bytes: number }> };
    const wanted = filesToFetch(manifest, 'int8');
    expect(wanted).toContain('onnx/encoder_model_quantized.onnx');
    for (const rel of wanted) {
      expect([rel, await sha256File(join(cache, v2.sha256, rel))]).toEqual([rel, manifest.files[rel]?.sha256]);
    }
    expect(readdirSync(cache).filter((n) => n.includes('.partial-'))).toEqual([]);
    expect(b.log.join('')).toMatch(/Loaded and warmed up model/);
    b.child.kill('SIGTERM');
    await until('agent B stopped', () => b.child.exitCode !== null, 30_000);
    expect(b.child.exitCode).toBe(0);
    phase('B stopped');
    process.stdout.write(`crash-swap: agent B ready ${readyMs} ms after start (re-download of the damaged folder included); ${phases.join(', ')}\n`);
  });
});
