// The whole agent in-process (real HTTP server, 2 workers, the embedded INT8 model served over a real
// local HTTP artifact server) under faults: bearer tokens on the wire, an artifact server answering 500,
// a corrupt artifact, an artifact download that stalls, a deployment that cannot load; the stable model
// keeps serving every request throughout (nothing lost), /readyz says whether every deployment is
// loaded, and a failed model set is applied again by itself once the server is fixed.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAgent } from './agent.js';
import { decodeWav, encodeWav16 } from './audio/wav.js';
import type { Agent } from './agent.js';
import { parseOptions } from './options.js';
import type { AgentOptions } from './options.js';
import { derivedArtifact, EMBEDDED_MODEL, embeddedRef, REPO_ROOT, speak, tempDir, writeConfigMap } from './testing/speech.js';

jest.setTimeout(300_000);

const TOKEN = 'transcribe-s3cr3t';
const FEEDBACK_TOKEN = 'feedback-s3cr3t';

/** Serves artifact folders: /<mode>/<name>/<file>, mode ok | fail (500) | stall (headers, 10 bytes, silence). */
async function artifactServer(folders: Record<string, string>) {
  const modes = new Map<string, 'ok' | 'fail' | 'stall'>();
  const hits: string[] = [];
  const server = createServer((req, res) => {
    const [, name = '', ...rest] = (req.url ?? '/').split('?')[0]?.split('/') ?? [];
    hits.push(`${name}/${rest.join('/')}`);
    const dir = folders[name];
    const mode = modes.get(name) ?? 'ok';
    if (!dir) return void res.writeHead(404).end();
    if (mode === 'fail') return void res.writeHead(500).end('internal error');
    let body: Buffer;
    try {
      body = readFileSync(join(dir, decodeURIComponent(rest.join('/'))));
    } catch {
      return void res.writeHead(404).end();
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    if (mode === 'stall' && rest.join('/') !== 'model-manifest.json') res.write(body.subarray(0, 10));
    else res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  return { server, url, modes, hits };
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('edge agent under faults (artifact server, auth), stable keeps serving', () => {
  const wav = speak('your program is sick');
  const configDir = tempDir('configmap');
  const secretDir = tempDir('secret');
  const logLines: string[] = [];
  const base = embeddedRef();
  const corrupt = derivedArtifact('fault-corrupt', { corrupt: 'onnx/decoder_model_merged_quantized.onnx' });
  const v2 = derivedArtifact('fault-2');
  let srv: Awaited<ReturnType<typeof artifactServer>>;
  let agent: Agent;
  let url = '';
  let served = 0;
  const versions = new Map<string, number>();

  const transcribe = async (token: string | null = TOKEN): Promise<Response> => {
    const form = new FormData();
    form.set('file', new Blob([wav], { type: 'audio/wav' }), 'a.wav');
    return fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form, headers: token ? { authorization: `Bearer ${token}` } : {} });
  };
  /** Transcriptions sent one after another while `during` runs: every one must succeed. */
  const keepServing = async (during: Promise<unknown>): Promise<number> => {
    let done = false;
    void during.finally(() => (done = true));
    let n = 0;
    while (!done || n === 0) {
      const r = await transcribe();
      expect(r.status).toBe(200);
      const v = r.headers.get('x-whisperops-model-version') ?? '';
      versions.set(v, (versions.get(v) ?? 0) + 1);
      await r.arrayBuffer();
      n++;
      served++;
    }
    await during;
    return n;
  };
  const setModels = (models: unknown[]): Promise<void> => {
    writeConfigMap(configDir, 'model-set.yaml', JSON.stringify({ pool: 'faults', models }));
    return agent.reloadConfig();
  };
  const ref = (name: string, a: { sha256: string; version: string }) => ({ version: a.version, sha256: a.sha256, uri: `${srv.url}/${name}/?X-Amz-Signature=presigned-s3cr3t` });

  beforeAll(async () => {
    srv = await artifactServer({ base: EMBEDDED_MODEL, corrupt: corrupt.dir, v2: v2.dir, b: v2.dir });
    writeFileSync(join(secretDir, 'transcription'), `${TOKEN}\n`);
    writeFileSync(join(secretDir, 'feedback'), `${FEEDBACK_TOKEN}\n`);
    const file = writeConfigMap(configDir, 'model-set.yaml', JSON.stringify({ pool: 'faults', models: [{ name: 'asr', stable: ref('base', base) }] }));
    const o = parseOptions(['--port', '0', '--workers', '2', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    const opts: AgentOptions = {
      ...o, config: file, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, configPollSeconds: 3600, artifactIdleTimeoutSeconds: 1,
      transcriptionTokenFile: join(secretDir, 'transcription'), feedbackTokenFile: join(secretDir, 'feedback'),
    };
    const log = pino({ level: 'info' }, { write: (l: string) => void logLines.push(l) });
    agent = await startAgent(opts, log);
    url = agent.url;
    await until(async () => (await fetch(`${url}/readyz`)).status === 200);
  });

  afterAll(async () => {
    await agent.shutdown();
    srv.server.closeAllConnections();
    srv.server.close();
    for (const d of [configDir, secretDir, corrupt.dir, v2.dir]) rmSync(d, { recursive: true, force: true });
  });

  it('bearer tokens: transcription and feedback each need their own; feedback only for a request id the agent issued; probes and metrics open', async () => {
    expect((await transcribe(null)).status).toBe(401);
    expect((await transcribe(FEEDBACK_TOKEN)).status).toBe(401);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    for (const p of ['/healthz', '/readyz', '/metrics']) expect((await fetch(url + p)).status).toBe(200);
    const r = await transcribe();
    expect(r.status).toBe(200);
    const id = r.headers.get('x-request-id') ?? '';
    const feedback = (token: string | undefined, requestId: string) =>
      fetch(`${url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ request_id: requestId, reference: 'your program is sick' }) });
    expect((await feedback(undefined, id)).status).toBe(401);
    expect((await feedback(TOKEN, id)).status).toBe(401);
    expect((await feedback(FEEDBACK_TOKEN, 'req_' + 'f'.repeat(32))).status).toBe(404); // never issued
    expect((await feedback(FEEDBACK_TOKEN, id)).status).toBe(200);
    expect((await feedback(FEEDBACK_TOKEN, id)).status).toBe(409);
    const m = await (await fetch(`${url}/metrics`)).text();
    expect(metric(m, 'whisperops_agent_auth_failures_total', { route: 'transcriptions' })).toBe(2);
    expect(metric(m, 'whisperops_agent_auth_failures_total', { route: 'feedback' })).toBe(2);
    expect(metric(m, 'whisperops_agent_auth_failures_total', { route: 'models' })).toBe(1);
  });

  it('artifact server 500, a corrupt artifact, a stalled download: each refused, the stable serves every request meanwhile', async () => {
    srv.modes.set('v2', 'fail');
    await keepServing(setModels([{ name: 'asr', stable: ref('v2', v2) }]));
    await keepServing(setModels([{ name: 'asr', stable: ref('corrupt', corrupt) }]));
    srv.modes.set('v2', 'stall');
    const t0 = Date.now();
    await keepServing(setModels([{ name: 'asr', stable: ref('v2', v2) }]));
    const stalledMs = Date.now() - t0;
    const m = await (await fetch(`${url}/metrics`)).text();
    expect(metric(m, 'whisperops_agent_model_loads_total', { model_version: 'fault-2', result: 'download_error' })).toBe(2);
    expect(metric(m, 'whisperops_agent_model_loads_total', { model_version: 'fault-corrupt', result: 'file_checksum_mismatch' })).toBe(1);
    expect(metric(m, 'whisperops_agent_model_info', { model_version: base.version, role: 'stable' })).toBe(1);
    // The stall: 4 tries, each ended by the 1 s idle timeout, with back-offs of 0.25..0.5, 0.5..1, 1..2 s between them.
    expect(stalledMs).toBeGreaterThanOrEqual(4 * 1000 + 1750);
    expect([...versions.keys()]).toEqual([base.version]);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // Nothing in the log carries the presigned URL's signature or a token.
    expect(logLines.join('\n')).not.toMatch(/s3cr3t/);
    process.stdout.write(`faults: ${served} transcriptions during 500 / corrupt / stalled swaps, all 200, versions ${JSON.stringify(Object.fromEntries(versions))}; stalled swap refused after ${stalledMs} ms\n`);
  });

  it('a failed set is applied again by itself with a back-off once the artifact server is fixed; /readyz needs every deployment', async () => {
    srv.modes.set('b', 'fail');
    await setModels([{ name: 'asr', stable: ref('base', base) }, { name: 'b', stable: ref('b', v2) }]);
    expect((await fetch(`${url}/readyz`)).status).toBe(503); // b is assigned and not loaded
    expect((await transcribe()).status).toBe(200); // asr still serves
    srv.modes.set('b', 'ok');
    const t0 = Date.now();
    await until(async () => (await fetch(`${url}/readyz`)).status === 200, 60_000);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(agent.manager.table.get('b')?.stable.version).toBe('fault-2');
    expect(served).toBeGreaterThan(3);
  });
});

describe('edge agent inference watchdog', () => {
  let agent: Agent;
  const speech = decodeWav(speak('your program is sick'));
  beforeAll(async () => {
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, inferenceTimeoutSeconds: 2 }, pino({ level: 'silent' }));
    await until(async () => (await fetch(`${agent.url}/readyz`)).status === 200);
  });
  afterAll(() => agent.shutdown());

  const post = (wav: Uint8Array): Promise<Response> => {
    const form = new FormData();
    form.set('file', new Blob([wav], { type: 'audio/wav' }), 'a.wav');
    return fetch(`${agent.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  };

  it('a request over its deadline fails with 504 inference_timeout at the deadline, the worker is recycled, the next request is served', async () => {
    // 120 utterances with 1 s pauses: over 100 windows, far more than 2 s of decoding on one worker.
    const gap = new Float32Array(speech.sampleRate);
    const long = new Float32Array((speech.samples.length + gap.length) * 120);
    for (let i = 0; i < 120; i++) long.set(speech.samples, i * (speech.samples.length + gap.length));
    const t0 = Date.now();
    const r = await post(encodeWav16(long, speech.sampleRate));
    const waited = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('inference_timeout');
    expect(waited).toBeGreaterThanOrEqual(2_000);
    expect(waited).toBeLessThan(8_000);
    const ok = await post(encodeWav16(speech.samples, speech.sampleRate));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { text: string }).text).toBe('your program is sick');
    const m = await (await fetch(`${agent.url}/metrics`)).text();
    expect(metric(m, 'whisperops_agent_inference_timeouts_total')).toBe(1);
    expect(metric(m, 'whisperops_agent_worker_restarts_total')).toBe(1);
    expect(metric(m, 'whisperops_agent_rejected_requests_total', { reason: 'inference_timeout' })).toBe(1);
  });
});
