// Live transcription with the official `openai` package: its SSE streaming of POST
// /v1/audio/transcriptions (stream=true) and its Realtime WebSocket client over wss:// with a test CA,
// against the whole agent (embedded INT8 model, 2 workers); bad input, limits, capacity and TLS reload
// on raw `ws` connections.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import OpenAI, { toFile } from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { pino } from 'pino';
import WebSocket from 'ws';
import { startAgent } from '../agent.js';
import type { Agent } from '../agent.js';
import { resample } from '../audio/resample.js';
import { decodeWav, encodeWav16 } from '../audio/wav.js';
import { parseOptions } from '../options.js';
import { pcm16Base64, recordTranscriptionSession, SESSION_RATE } from '../testing/realtime.js';
import { REPO_ROOT, speak, tempDir } from '../testing/speech.js';
import { wordErrors } from '../text/wer.js';

jest.setTimeout(240_000);

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A test CA and a server certificate for 127.0.0.1 signed by it (openssl, P-256). */
function makeCerts(dir: string, serial: string): { ca: Buffer; cert: string; key: string } {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  try {
    readFileSync(join(dir, 'ca.crt'));
  } catch {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=whisperops test CA');
  }
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `srv-${serial}.key`, '-out', 'srv.csr', '-subj', '/CN=127.0.0.1');
  run('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${serial}`, '-out', `srv-${serial}.crt`, '-days', '1', '-extfile', 'san.ext');
  return { ca: readFileSync(join(dir, 'ca.crt')), cert: join(dir, `srv-${serial}.crt`), key: join(dir, `srv-${serial}.key`) };
}

const sentences = ['please call me back when you have finished the report', 'we will meet again at the station next week'];
const speech = sentences.map((s) => decodeWav(speak(s, 'en-us', 160)));
const [first, second] = speech as [ReturnType<typeof decodeWav>, ReturnType<typeof decodeWav>];

describe('edge agent: live transcription with the official openai client', () => {
  let agent: Agent;
  let ca: Buffer;
  let certFile: string;
  let keyFile: string;
  const dir = tempDir('tls');
  let fileTexts: string[] = [];

  beforeAll(async () => {
    const c = makeCerts(dir, '01');
    ca = c.ca;
    certFile = join(dir, 'server.crt');
    keyFile = join(dir, 'server.key');
    writeFileSync(certFile, readFileSync(c.cert));
    writeFileSync(keyFile, readFileSync(c.key));
    const o = parseOptions(['--port', '0', '--workers', '2', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent(
      { ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, maxConcurrentStreams: 3, maxQueue: 0, tlsCertFile: certFile, tlsKeyFile: keyFile, tlsPort: 0, liveIdleTimeoutSeconds: 3, liveMaxChunkBytes: 64 * 1024 },
      pino({ level: 'silent' }),
    );
    // The file path's transcription of the same audio (the reference for the live finals).
    const client = new OpenAI({ baseURL: `${agent.url}/v1`, apiKey: 'unused' });
    fileTexts = await Promise.all(speech.map(async (a) => (await client.audio.transcriptions.create({ file: await toFile(encodeWav16(a.samples, a.sampleRate), 'a.wav'), model: 'tiny-whisper-synth' })).text));
  });

  afterAll(async () => {
    await agent.shutdown();
  });

  const metrics = async (): Promise<string> => (await fetch(`${agent.url}/metrics`)).text();

  it('streams transcript.text.delta events as windows are decoded, then transcript.text.done (SSE, openai SDK)', async () => {
    // Two sentences with a 1.5 s pause: two speech windows, two deltas.
    const gap = new Float32Array(Math.round(1.5 * first.sampleRate));
    const joined = new Float32Array(first.samples.length + gap.length + second.samples.length);
    joined.set(first.samples);
    joined.set(second.samples, first.samples.length + gap.length);
    const wav = encodeWav16(joined, first.sampleRate);
    const client = new OpenAI({ baseURL: `${agent.url}/v1`, apiKey: 'unused' });
    const plain = await client.audio.transcriptions.create({ file: await toFile(wav, 'a.wav'), model: 'tiny-whisper-synth' });
    const stream = await client.audio.transcriptions.create({ file: await toFile(wav, 'a.wav'), model: 'tiny-whisper-synth', stream: true });
    const deltas: { delta: string; at: number }[] = [];
    let done: { text: string; at: number } | undefined;
    for await (const event of stream) {
      if (event.type === 'transcript.text.delta') deltas.push({ delta: event.delta, at: performance.now() });
      else if (event.type === 'transcript.text.done') done = { text: event.text, at: performance.now() };
    }
    expect(deltas.length).toBe(2);
    expect(done?.text).toBe(plain.text);
    expect(deltas.map((d) => d.delta).join('')).toBe(done?.text);
    // The first window's text arrived before the second window was decoded.
    expect((done?.at ?? 0) - (deltas[0]?.at ?? 0)).toBeGreaterThan(5);
  });

  it('transcribes speech streamed in real time over wss (Realtime client, server VAD): deltas while sending, finals ≈ file transcription, slot released', async () => {
    const client = new OpenAI({ baseURL: `${agent.tlsUrl}/v1`, apiKey: 'unused' });
    const rt = new OpenAIRealtimeWS({ intent: 'transcription', options: { ca } }, client);
    const { events, errors, streamRealTime } = await recordTranscriptionSession(rt, 'tiny-whisper-synth');
    const SR = SESSION_RATE;
    const pieces = speech.map((a) => resample(a.samples, a.sampleRate, SR));
    const gap = new Float32Array(Math.round(1.2 * SR));
    const audio = new Float32Array(pieces.reduce((n, p) => n + p.length + gap.length, 0));
    let at = 0;
    for (const p of pieces) {
      audio.set(p, at);
      at += p.length + gap.length;
    }
    await streamRealTime(audio);
    const end = Date.now() + 30_000;
    while (events.filter((x) => x.type === 'conversation.item.input_audio_transcription.completed').length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect((await metrics()).includes('whisperops_agent_live_sessions{pool="default"} 1')).toBe(true);
    rt.close();
    expect(errors).toEqual([]);
    // Event shapes.
    for (const x of events) expect(typeof x.e.event_id).toBe('string');
    expect(events[0]?.type).toBe('session.created');
    expect(events.find((x) => x.type === 'session.updated')?.e).toMatchObject({ session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
    const started = events.filter((x) => x.type === 'input_audio_buffer.speech_started');
    const stopped = events.filter((x) => x.type === 'input_audio_buffer.speech_stopped');
    const committed = events.filter((x) => x.type === 'input_audio_buffer.committed');
    const deltas = events.filter((x) => x.type === 'conversation.item.input_audio_transcription.delta');
    const completed = events.filter((x) => x.type === 'conversation.item.input_audio_transcription.completed');
    expect([started.length, stopped.length, committed.length, completed.length]).toEqual([2, 2, 2, 2]);
    for (const s of started) expect(typeof s.e.audio_start_ms).toBe('number');
    for (const d of deltas) expect(d.e).toMatchObject({ item_id: expect.any(String), content_index: 0, delta: expect.any(String) });
    expect(committed[1]?.e.previous_item_id).toBe(committed[0]?.e.item_id);
    // Deltas arrived while audio was still being sent, and each item's deltas add up to its final.
    expect(deltas.some((d) => d.sending)).toBe(true);
    let finalErrors = 0;
    let words = 0;
    completed.forEach((c, i) => {
      const item = c.e.item_id;
      expect(deltas.filter((d) => d.e.item_id === item).map((d) => d.e.delta).join('')).toBe(c.e.transcript);
      const e = wordErrors(fileTexts[i] ?? '', String(c.e.transcript));
      finalErrors += e.errors;
      words += e.referenceWords;
    });
    // Finals vs the file transcription of the same audio: the bound README documents (live transcription).
    expect(finalErrors / words).toBeLessThanOrEqual(0.4);
    const until = Date.now() + 10_000;
    while (metric(await metrics(), 'whisperops_agent_active_streams') !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const m = await metrics();
    expect(metric(m, 'whisperops_agent_active_streams')).toBe(0);
    expect(metric(m, 'whisperops_agent_live_sessions')).toBe(0);
    expect(metric(m, 'whisperops_agent_live_partial_latency_seconds_count')).toBeGreaterThan(0);
  });

  /** A raw ws connection on loopback plain HTTP; resolves once open with an event log. */
  async function rawSession(): Promise<{ ws: WebSocket; events: Record<string, unknown>[]; next: (type: string) => Promise<Record<string, unknown>>; closed: Promise<number> }> {
    const ws = new WebSocket(`${agent.url.replace('http:', 'ws:')}/v1/realtime?intent=transcription`);
    const events: Record<string, unknown>[] = [];
    const waiters: { type: string; resolve: (e: Record<string, unknown>) => void }[] = [];
    ws.on('message', (d: Buffer) => {
      const e = JSON.parse(d.toString()) as Record<string, unknown>;
      events.push(e);
      for (const w of waiters.splice(0)) {
        if (w.type === e.type) w.resolve(e);
        else waiters.push(w);
      }
    });
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    const next = (type: string): Promise<Record<string, unknown>> => {
      const seen = events.find((e) => e.type === type && !(e as { _taken?: boolean })._taken);
      if (seen) {
        (seen as { _taken?: boolean })._taken = true;
        return Promise.resolve(seen);
      }
      return new Promise((resolve) => waiters.push({ type, resolve: (e) => ((e as { _taken?: boolean })._taken = true, resolve(e)) }));
    };
    return { ws, events, next, closed };
  }

  it('answers bad input with error events and keeps the session; an abrupt disconnect leaks no slot', async () => {
    const s = await rawSession();
    await s.next('session.created');
    const errorFor = async (payload: string): Promise<{ code: string; message: string }> => {
      s.ws.send(payload);
      return ((await s.next('error')).error as { code: string; message: string });
    };
    expect((await errorFor('{not json')).code).toBe('invalid_json');
    expect((await errorFor('[1,2]')).code).toBe('invalid_json');
    expect((await errorFor(JSON.stringify({ type: 'session.update', session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } }))).code).toBe('invalid_value');
    expect((await errorFor(JSON.stringify({ type: 'session.update', session: { type: 'transcription', audio: { input: { transcription: { model: 'nope' } } } } }))).code).toBe('model_not_found');
    expect((await errorFor(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'not base64!' }))).code).toBe('invalid_value');
    expect((await errorFor(JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(3).toString('base64') }))).code).toBe('invalid_value');
    expect((await errorFor(JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(80 * 1024).toString('base64') }))).code).toBe('chunk_too_large');
    expect((await errorFor(JSON.stringify({ type: 'input_audio_buffer.commit' }))).code).toBe('input_audio_buffer_commit_empty');
    expect((await errorFor(JSON.stringify({ type: 'response.create' }))).code).toBe('invalid_value');
    // The beta protocol's session update and G.711 µ-law are accepted.
    s.ws.send(JSON.stringify({ type: 'transcription_session.update', session: { input_audio_format: 'g711_ulaw', turn_detection: null } }));
    expect(await s.next('transcription_session.updated')).toMatchObject({ session: { audio: { input: { format: { type: 'audio/pcmu' }, turn_detection: null } } } });
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    expect(metric(await metrics(), 'whisperops_agent_live_sessions')).toBe(1);
    s.ws.terminate();
    await s.closed;
    const until = Date.now() + 10_000;
    while (metric(await metrics(), 'whisperops_agent_live_sessions') !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const m = await metrics();
    expect([metric(m, 'whisperops_agent_live_sessions'), metric(m, 'whisperops_agent_active_streams')]).toEqual([0, 0]);
  });

  it('commits by hand without VAD; closes an idle session that never commits; refuses sessions beyond capacity with 429', async () => {
    const s = await rawSession();
    await s.next('session.created');
    s.ws.send(JSON.stringify({ type: 'session.update', session: { type: 'transcription', audio: { input: { turn_detection: null } } } }));
    await s.next('session.updated');
    const pcm = resample(first.samples, first.sampleRate, 24000);
    for (let i = 0; i < pcm.length; i += 4800) s.ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: pcm16Base64(pcm.subarray(i, i + 4800)) }));
    s.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }));
    const committed = await s.next('input_audio_buffer.committed');
    const completed = await s.next('conversation.item.input_audio_transcription.completed');
    expect(completed.item_id).toBe(committed.item_id);
    const e = wordErrors(fileTexts[0] ?? '', String(completed.transcript));
    expect(e.errors / e.referenceWords).toBeLessThanOrEqual(0.2);
    expect(s.events.some((x) => x.type === 'input_audio_buffer.speech_started')).toBe(false);
    // Capacity: 3 streams, no queue — this session and two more fill it; a fourth is refused.
    const others = [await rawSession(), await rawSession()];
    // Live sessions are streams: the operator's load signal (active_streams + queue_depth) counts them.
    const during = await metrics();
    expect([metric(during, 'whisperops_agent_live_sessions'), metric(during, 'whisperops_agent_active_streams')]).toEqual([3, 3]);
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${agent.url.replace('http:', 'ws:')}/v1/realtime?intent=transcription`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(429);
    for (const o of others) o.ws.close();
    // Idle: no client event for 3 s → an error event, then the close.
    const t0 = Date.now();
    expect(((await s.next('error')).error as { code: string }).code).toBe('session_idle_timeout');
    await s.closed;
    expect(Date.now() - t0).toBeLessThan(10_000);
    const until = Date.now() + 10_000;
    while (metric(await metrics(), 'whisperops_agent_active_streams') !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(metric(await metrics(), 'whisperops_agent_active_streams')).toBe(0);
  });

  it('serves a new certificate after the files change, without a restart', async () => {
    const port = Number(new URL(agent.tlsUrl ?? '').port);
    const serial = (): Promise<string> =>
      new Promise((res, rej) => {
        const sock = tlsConnect({ host: '127.0.0.1', port, ca, servername: undefined }, () => {
          res(sock.getPeerCertificate().serialNumber);
          sock.end();
        });
        sock.on('error', rej);
      });
    expect(await serial()).toBe('01');
    const next = makeCerts(dir, '02');
    writeFileSync(keyFile, readFileSync(next.key));
    writeFileSync(certFile, readFileSync(next.cert));
    expect(agent.reloadTls()).toBe(true);
    expect(await serial()).toBe('02');
  });
});

describe('edge agent: live session limits', () => {
  let agent: Agent;
  beforeAll(async () => {
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, liveMaxSessionSeconds: 3, liveMaxBufferBytes: 64 * 1024 }, pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await agent.shutdown();
  });

  it('refuses audio beyond the session buffer with buffer_full, ends the session at its maximum duration, releases its slot', async () => {
    const ws = new WebSocket(`${agent.url.replace('http:', 'ws:')}/v1/realtime?intent=transcription`);
    const events: { type: string; error?: { code: string } }[] = [];
    ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString()) as { type: string; error?: { code: string } }));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    const t0 = Date.now();
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'transcription', audio: { input: { turn_detection: null } } } }));
    // A loud tone without pauses, 0.2 s per append: 64 KiB of 32-bit samples at 24 kHz is 0.68 s.
    const tone = Float32Array.from({ length: 4800 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 220 * i) / 24000));
    for (let i = 0; i < 8; i++) ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: pcm16Base64(tone) }));
    expect(await closed).toBe(1000);
    const elapsed = Date.now() - t0;
    const codes = events.filter((e) => e.type === 'error').map((e) => e.error?.code);
    expect(codes).toContain('buffer_full');
    expect(codes[codes.length - 1]).toBe('session_expired');
    expect(elapsed).toBeGreaterThanOrEqual(2_500);
    expect(elapsed).toBeLessThan(15_000);
    const text = await (await fetch(`${agent.url}/metrics`)).text();
    expect(text).toMatch(/whisperops_agent_live_sessions_total\{[^}]*end="expired"[^}]*\} 1/);
    expect(metric(text, 'whisperops_agent_active_streams')).toBe(0);
  });
});
