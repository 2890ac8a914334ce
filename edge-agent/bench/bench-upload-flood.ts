// Upload-flood benchmark (`npm run bench:upload-flood`): the agent's RSS while N clients keep sending
// max-size uploads at once, with the upload budget (default) and, for comparison, with the budget
// raised so high that every upload is read at once (what the agent did before admission moved ahead of
// the body). The agent runs as its own process on 127.0.0.1 (`npm run agent` flags, 2 workers); its
// VmRSS is sampled from /proc every 20 ms; VmHWM (the kernel's high-water mark) is read at the end.
// Each upload is a 16-bit mono WAV of exactly --max-upload-bytes (22,050 Hz, ~594 s: under the 600 s
// limit) of digital silence, so it is read, decoded, resampled and windowed, but has no speech windows
// (inference does not dominate the run: with speech, 594 s is 60 model windows).
// Env: FLOOD_CLIENTS=16 FLOOD_ROUNDS=2 FLOOD_MAX_UPLOAD_BYTES=26214400 FLOOD_BUDGET_BYTES=67108864
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { encodeWav16 } from '../src/audio/wav.js';
import { spawnAgent, type AgentProcess } from './agent-process.js';

const clients = Number(process.env.FLOOD_CLIENTS ?? 16);
const rounds = Number(process.env.FLOOD_ROUNDS ?? 2);
const maxUpload = Number(process.env.FLOOD_MAX_UPLOAD_BYTES ?? 25 * 1024 * 1024);
const budget = Number(process.env.FLOOD_BUDGET_BYTES ?? 64 * 1024 * 1024);
const MiB = 1024 * 1024;

function rssOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function startAgent(budgetBytes: number): Promise<AgentProcess> {
  return spawnAgent(['--workers', '2', '--max-concurrent-streams', '16', '--max-queue', '64', '--max-upload-bytes', String(maxUpload), '--max-upload-buffer-bytes', String(budgetBytes), '--log-level', 'warn', '--shutdown-delay-seconds', '0']);
}

/** One raw HTTP/1.1 upload of `body` (a prebuilt multipart body); resolves with the status code. */
function upload(port: number, body: Buffer, boundary: string): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    s.write(`POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`);
    s.write(body);
  });
}

async function flood(budgetBytes: number, body: Buffer, boundary: string): Promise<string> {
  const agent = await startAgent(budgetBytes);
  const port = Number(new URL(agent.url).port);
  await new Promise((r) => setTimeout(r, 1000));
  const base = rssOf(agent.pid).rss;
  let peak = base;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(agent.pid).rss);
    } catch {
      // exited
    }
  }, 20);
  const t0 = Date.now();
  const codes: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let r = 0; r < rounds; r++) codes.push(await upload(port, body, boundary));
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  const hwm = rssOf(agent.pid).hwm;
  const m = await (await fetch(`${agent.url}/metrics`)).text();
  const capacity = Number(/^whisperops_agent_upload_buffer_capacity_bytes\{[^}]*\} (\S+)/m.exec(m)?.[1] ?? NaN);
  await agent.stop();
  const count = (c: number): number => codes.filter((x) => x === c).length;
  return (
    `| ${(capacity / MiB).toFixed(1)} MiB | ${clients} × ${rounds} | ${count(200)} / ${count(429)} / ${codes.length - count(200) - count(429)} | ${seconds.toFixed(1)} | ${(base / MiB).toFixed(0)} | ` +
    `${(peak / MiB).toFixed(0)} | ${(hwm / MiB).toFixed(0)} | ${((hwm - base) / capacity).toFixed(2)} |`
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  // Exactly maxUpload bytes of WAV: 44-byte header + 16-bit samples of silence (no speech windows).
  const samples = new Float32Array(Math.floor((maxUpload - 44) / 2));
  const wav = encodeWav16(samples, 22050);
  const boundary = 'floodBoundary7MA4YWxk';
  const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`), Buffer.from(wav), Buffer.from(`\r\n--${boundary}--\r\n`)]);
  console.log(`# upload flood — ${new Date().toISOString()}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at start`);
  console.log(`uploads: ${(wav.length / MiB).toFixed(2)} MiB WAV each (${(samples.length / 22050).toFixed(0)} s at 22,050 Hz, 16-bit; = --max-upload-bytes), ${clients} clients × ${rounds} uploads, agent: 2 workers, 16 streams, queue 64`);
  console.log('| upload budget | uploads | 200 / 429 / other | seconds | RSS before (MiB) | RSS peak, sampled (MiB) | VmHWM (MiB) | (VmHWM − before) / budget |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  console.log(await flood(budget, body, boundary));
  console.log(await flood(clients * body.length * 2, body, boundary));
  console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s; load average at end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

void main();
