// The agent's admission before the body is read, the size caps and the slow-client deadlines, on a real
// socket against the whole agent (embedded INT8 model, 1 worker, 1 stream).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { startAgent } from '../agent.js';
import type { Agent } from '../agent.js';
import { parseOptions } from '../options.js';
import { REPO_ROOT, speak, tempDir } from '../testing/speech.js';

jest.setTimeout(120_000);

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A raw connection: what the server answers (status line and all) and when it closes. */
function rawClient(port: number): { socket: Socket; received: () => string; closed: Promise<number> } {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (data += d));
  socket.on('error', () => undefined);
  const t0 = Date.now();
  const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - t0)));
  return { socket, received: () => data, closed };
}

function multipart(wav: Uint8Array, boundary = 'XyZ'): Buffer {
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
    Buffer.from(wav),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

function head(port: number, length: number | undefined, boundary = 'XyZ'): string {
  return (
    `POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
    (length === undefined ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`) +
    '\r\n'
  );
}

describe('edge agent: admission before the body, size caps, slow clients', () => {
  let agent: Agent;
  let port: number;
  const wav = speak('The quick brown fox jumps over the lazy dog.');

  beforeAll(async () => {
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent(
      { ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, maxConcurrentStreams: 1, maxQueue: 2, maxUploadBytes: 1024 * 1024, headersTimeoutSeconds: 1, bodyTimeoutSeconds: 2 },
      pino({ level: 'silent' }),
    );
    port = Number(new URL(agent.url).port);
  });

  afterAll(async () => {
    await agent.shutdown();
  });

  const metrics = async (): Promise<string> => (await fetch(`${agent.url}/metrics`)).text();

  it('refuses a declared Content-Length over the cap with 413 before reading a byte of the body', async () => {
    const c = rawClient(port);
    c.socket.write(head(port, 50 * 1024 * 1024));
    const ms = await c.closed;
    expect(c.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(c.received()).toContain('"code":"file_too_large"');
    expect(ms).toBeLessThan(5_000);
    expect(metric(await metrics(), 'whisperops_agent_upload_buffer_bytes')).toBe(0);
  });

  it('caps a chunked body while it streams (413) and releases its reservation', async () => {
    const c = rawClient(port);
    c.socket.write(head(port, undefined));
    const body = multipart(new Uint8Array(2 * 1024 * 1024));
    for (let i = 0; i < body.length && !c.socket.destroyed; i += 64 * 1024) {
      const part = body.subarray(i, i + 64 * 1024);
      c.socket.write(`${part.length.toString(16)}\r\n`);
      c.socket.write(part);
      c.socket.write('\r\n');
    }
    if (!c.socket.destroyed) c.socket.write('0\r\n\r\n');
    const ms = await c.closed;
    expect(ms).toBeLessThan(5_000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(metric(await metrics(), 'whisperops_agent_upload_buffer_bytes')).toBe(0);
  });

  it('disconnects a client that never finishes its request head (slowloris) with 408', async () => {
    const c = rawClient(port);
    c.socket.write(`POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n`);
    const drip = setInterval(() => c.socket.write('X-A: b\r\n'), 300);
    const ms = await c.closed;
    clearInterval(drip);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(10_000);
  });

  it('times out a slow body with 408 without holding the stream: a normal request is served meanwhile, metrics back to zero', async () => {
    const body = multipart(wav);
    const slow = rawClient(port);
    slow.socket.write(head(port, body.length));
    slow.socket.write(body.subarray(0, 100));
    const drip = setInterval(() => {
      if (!slow.socket.destroyed) slow.socket.write(body.subarray(100, 101));
    }, 200);
    await new Promise((r) => setTimeout(r, 300));
    const m = await metrics();
    expect(metric(m, 'whisperops_agent_upload_buffer_bytes')).toBe(body.length);
    expect(metric(m, 'whisperops_agent_active_streams')).toBe(0);
    // The only stream slot is free: a well-behaved client is served while the slow one drips.
    const form = new FormData();
    form.set('file', new Blob([wav], { type: 'audio/wav' }), 'a.wav');
    const ok = await fetch(`${agent.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { text: string }).text.toLowerCase()).toContain('quick');
    expect(slow.socket.destroyed).toBe(false);
    const ms = await slow.closed;
    clearInterval(drip);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(slow.received()).toContain('"code":"request_timeout"');
    expect(ms).toBeGreaterThanOrEqual(1_900);
    const after = await metrics();
    expect(metric(after, 'whisperops_agent_upload_buffer_bytes')).toBe(0);
    expect(metric(after, 'whisperops_agent_active_streams')).toBe(0);
    expect(after).toMatch(/whisperops_agent_rejected_requests_total\{reason="body_timeout"[^}]*\} 1/);
  });

  it('releases the reservation of a client that disconnects mid-body', async () => {
    const body = multipart(wav);
    const c = rawClient(port);
    c.socket.write(head(port, body.length));
    c.socket.write(body.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 200));
    expect(metric(await metrics(), 'whisperops_agent_upload_buffer_bytes')).toBe(body.length);
    c.socket.destroy();
    await c.closed;
    const end = Date.now() + 5_000;
    while (metric(await metrics(), 'whisperops_agent_upload_buffer_bytes') !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(metric(await metrics(), 'whisperops_agent_upload_buffer_bytes')).toBe(0);
  });
});
