// The whole agent in-process (real HTTP server, 2 inference worker threads, the embedded INT8 model)
// with real speech from espeak-ng.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { startAgent } from './agent.js';
import type { Agent } from './agent.js';
import { decodeWav, encodeWav16 } from './audio/wav.js';
import { parseOptions } from './options.js';
import type { AgentOptions } from './options.js';
import { derivedArtifact, embeddedRef, REPO_ROOT, soxConvert, speak, tempDir, testSentences, TRAINING_VOICES, writeConfigMap } from './testing/speech.js';
import { wordErrors } from './text/wer.js';

jest.setTimeout(180_000);
const quiet = pino({ level: process.env.AGENT_TEST_LOG ?? 'silent' });

function options(over: Partial<AgentOptions>): AgentOptions {
  const o = parseOptions(['--port', '0', '--workers', '2', '--threads', '1'], {}, REPO_ROOT);
  if (o === 'help') throw new Error('unexpected');
  return { ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, ...over };
}

async function transcribe(url: string, wav: Uint8Array, fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.set('file', new Blob([wav], { type: 'audio/wav' }), 'audio.wav');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
}

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  return found ? sum : NaN;
}

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const sentences = testSentences();
const clips = sentences.map((s, i) => ({ sentence: s, voice: TRAINING_VOICES[i % 4] ?? 'en-us', wpm: 150 + (i % 3) * 15 }));
const audio = clips.map((c) => speak(c.sentence, c.voice, c.wpm));

/**
 * Golden token ids: the greedy output of the embedded INT8 model for each test clip (espeak-ng speech
 * of the general sentences), recorded once and compared exactly: a change of decoding, features,
 * resampling or the model shows up as a diff, not as a WER that is still under a loose bound.
 * After a deliberate change, re-record with WHISPEROPS_RECORD_GOLDEN=1 and review the diff.
 */
interface GoldenClip { sentence: string; voice: string; wpm: number; tokens: number[]; text: string }
const GOLDEN_FILE = join(REPO_ROOT, 'test', 'fixtures', 'golden-tokens.json');
function readGolden(): { model: { version: string; sha256: string }; espeak: string; clips: GoldenClip[] } {
  return JSON.parse(readFileSync(GOLDEN_FILE, 'utf8')) as { model: { version: string; sha256: string }; espeak: string; clips: GoldenClip[] };
}

describe('edge agent: embedded INT8 model, 2 workers, model set from a ConfigMap-style folder', () => {
  let agent: Agent;
  let url: string;
  const configDir = tempDir('configmap');
  const datasetDir = tempDir('dataset');
  const base = embeddedRef();
  const setV1 = { pool: 'edge-test', scenarios: ['general', 'medical'], models: [{ name: 'general', stable: base }] };
  let firstIds: string[] = [];

  beforeAll(async () => {
    const file = writeConfigMap(configDir, 'model-set.yaml', JSON.stringify(setV1));
    // A file:// dataset store; a manifest after every uploaded sample.
    const datasetStoreUri = `${pathToFileURL(datasetDir).href}/`;
    agent = await startAgent(options({ config: file, datasetStoreUri, agentId: 'agent-test', datasetFlushSamples: 1, maxUploadBytes: 2 * 1024 * 1024, maxAudioSeconds: 60, configPollSeconds: 1 }), quiet);
    url = agent.url;
    await until(async () => (await fetch(`${url}/readyz`)).status === 200);
  });

  afterAll(async () => {
    await agent.shutdown();
    rmSync(configDir, { recursive: true, force: true });
    rmSync(datasetDir, { recursive: true, force: true });
  });

  it(`transcribes ${sentences.length} general sentences (training voices) to exactly the golden token ids`, async () => {
    const responses = await Promise.all(audio.map((wav) => transcribe(url, wav, { model: 'general', response_format: 'verbose_json' })));
    let errors = 0;
    let words = 0;
    firstIds = [];
    const got: GoldenClip[] = [];
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      const body = (await res.json()) as { text: string; segments: { tokens: number[] }[] };
      const clip = clips[i];
      if (clip) got.push({ ...clip, tokens: body.segments.flatMap((seg) => seg.tokens), text: body.text });
      firstIds.push(res.headers.get('x-request-id') ?? '');
      expect(res.headers.get('x-whisperops-model-version')).toBe(base.version);
      // Server-Timing names where the time went; the parts add up to no more than the total.
      const timing = Object.fromEntries((res.headers.get('server-timing') ?? '').split(', ').map((p) => [p.split(';dur=')[0], Number(p.split(';dur=')[1])]));
      expect(Object.keys(timing)).toEqual(['parse', 'wav', 'queue', 'hop', 'features', 'encoder', 'decoder', 'total']);
      expect(timing.encoder).toBeGreaterThan(0);
      expect(timing.decoder).toBeGreaterThan(0);
      expect(timing.features).toBeGreaterThan(0);
      const parts = ['parse', 'wav', 'queue', 'hop', 'features', 'encoder', 'decoder'].reduce((a, k) => a + (timing[k] ?? NaN), 0);
      expect(parts).toBeLessThanOrEqual((timing.total ?? 0) + 0.05);
      const e = wordErrors(sentences[i] ?? '', body.text);
      errors += e.errors;
      words += e.referenceWords;
    }
    const wer = errors / words;
    if (process.env.WHISPEROPS_RECORD_GOLDEN === '1') {
      const espeak = execFileSync('espeak-ng', ['--version'], { encoding: 'utf8' }).trim();
      const head = JSON.stringify({ about: 'Greedy token ids of the embedded INT8 model for the agent test clips (edge-agent/src/agent.test.ts); re-record with WHISPEROPS_RECORD_GOLDEN=1.', model: { version: base.version, sha256: base.sha256 }, espeak, wer, clips: [] }, null, 1);
      writeFileSync(GOLDEN_FILE, `${head.replace('"clips": []', `"clips": [\n${got.map((c) => `  ${JSON.stringify(c)}`).join(',\n')}\n ]`)}\n`);
    }
    const golden = readGolden();
    expect(golden.model).toEqual({ version: base.version, sha256: base.sha256 });
    expect(golden.clips.map((c) => [c.sentence, c.voice, c.wpm])).toEqual(clips.map((c) => [c.sentence, c.voice, c.wpm]));
    // Exactly the recorded greedy output, clip by clip (the text follows from the ids).
    expect(got.map((c) => c.tokens)).toEqual(golden.clips.map((c) => c.tokens));
    expect(got.map((c) => c.text)).toEqual(golden.clips.map((c) => c.text));
    expect(firstIds.every((id) => /^req_[0-9a-f]{32}$/.test(id))).toBe(true);
  });

  it('accepts WAV in any common PCM/float format, rate and channel count', async () => {
    const ref = sentences[1] ?? '';
    const wav = audio[1] ?? new Uint8Array();
    const variants: [string, string[]][] = [
      ['8-bit unsigned', ['-b', '8', '-e', 'unsigned-integer']],
      ['16-bit 16 kHz', ['-b', '16', '-r', '16000']],
      ['24-bit 44.1 kHz stereo', ['-b', '24', '-c', '2', '-r', '44100']],
      ['32-bit int 48 kHz', ['-b', '32', '-e', 'signed-integer', '-r', '48000']],
      ['float32 stereo 22.05 kHz', ['-b', '32', '-e', 'floating-point', '-c', '2']],
      ['float64 16 kHz', ['-b', '64', '-e', 'floating-point', '-r', '16000']],
    ];
    for (const [name, args] of variants) {
      const res = await transcribe(url, soxConvert(wav, args));
      expect([name, res.status]).toEqual([name, 200]);
      const { text } = (await res.json()) as { text: string };
      const e = wordErrors(ref, text);
      expect([name, e.errors / e.referenceWords < 0.35]).toEqual([name, true]);
    }
    // Telephone-band audio is accepted and upsampled; the model (trained on 16 kHz speech) gets what it gets.
    const narrow = await transcribe(url, soxConvert(wav, ['-r', '8000']));
    expect(narrow.status).toBe(200);
  });

  it('answers every OpenAI response format', async () => {
    const wav = audio[0] ?? new Uint8Array();
    const verbose = await transcribe(url, wav, { response_format: 'verbose_json', language: 'en', temperature: '0' });
    const v = (await verbose.json()) as { text: string; request_id: string; duration: number; segments: { start: number; end: number; text: string }[]; language: string };
    expect(v.request_id).toBe(verbose.headers.get('x-request-id'));
    expect(v.language).toBe('english');
    expect(v.segments.length).toBe(1);
    expect(v.duration).toBeCloseTo(decodeWav(wav).samples.length / 22050, 2);
    const text = await (await transcribe(url, wav, { response_format: 'text' })).text();
    expect(text.trim()).toBe(v.text);
    const srt = await (await transcribe(url, wav, { response_format: 'srt' })).text();
    expect(srt).toMatch(/^1\n00:00:00,000 --> 00:00:0\d,\d{3}\n\S/);
    const vtt = await (await transcribe(url, wav, { response_format: 'vtt' })).text();
    expect(vtt).toMatch(/^WEBVTT\n\n00:00:00\.000 --> /);
  });

  it('transcribes audio longer than one window in windows that follow the speech', async () => {
    const pieces = [0, 2, 4].map((i) => decodeWav(audio[i] ?? new Uint8Array()).samples);
    const gap = new Float32Array(22050 * 3);
    const joined = new Float32Array(pieces.reduce((n, p) => n + p.length + gap.length, 0));
    let at = 0;
    for (const p of pieces) {
      joined.set(p, at);
      at += p.length + gap.length;
    }
    const res = await transcribe(url, encodeWav16(joined, 22050), { response_format: 'verbose_json' });
    const v = (await res.json()) as { text: string; segments: { start: number; end: number }[] };
    // Three utterances with 3 s pauses: one window each, with the pauses left out.
    expect(joined.length / 22050).toBeGreaterThan(15);
    expect(v.segments.length).toBe(3);
    v.segments.forEach((seg, i) => {
      expect(seg.end - seg.start).toBeLessThanOrEqual(10);
      if (i > 0) expect(seg.start).toBeGreaterThan((v.segments[i - 1]?.end ?? 0) + 2);
    });
    const ref = [0, 2, 4].map((i) => sentences[i]).join(' ');
    const e = wordErrors(ref, v.text);
    expect(e.errors / e.referenceWords).toBeLessThan(0.45);
  });

  it.each([
    ['an empty file', () => transcribe(url, new Uint8Array(0)), 400, 'empty_file'],
    ['an MP3 file', () => transcribe(url, Uint8Array.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 9, 1, 2, 3])), 415, 'unsupported_format'],
    ['A-law WAV', () => transcribe(url, soxConvert(audio[0] ?? new Uint8Array(), ['-e', 'a-law', '-r', '8000'])), 415, 'unsupported_codec'],
    ['a truncated WAV header', () => transcribe(url, new TextEncoder().encode('RIFF\0\0\0\0WAVEfmt ')), 400, 'malformed'],
    ['an upload over the size limit', () => transcribe(url, new Uint8Array(3 * 1024 * 1024)), 413, 'file_too_large'],
    ['audio over the duration limit', () => transcribe(url, encodeWav16(new Float32Array(8000 * 61), 8000)), 413, 'audio_too_long'],
    ['an unknown model', () => transcribe(url, audio[0] ?? new Uint8Array(), { model: 'nope' }), 404, 'model_not_found'],
    ['an unsupported language', () => transcribe(url, audio[0] ?? new Uint8Array(), { language: 'fr' }), 400, 'unsupported_language'],
    ['an unknown response_format', () => transcribe(url, audio[0] ?? new Uint8Array(), { response_format: 'xml' }), 400, 'invalid_value'],
    ['a bad temperature', () => transcribe(url, audio[0] ?? new Uint8Array(), { temperature: '7' }), 400, 'invalid_value'],
    ['no file field', () => fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: (() => { const f = new FormData(); f.set('model', 'general'); return f; })() }), 400, 'missing_file'],
    ['a JSON body', () => fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 400, 'invalid_request'],
  ])('refuses %s with a precise 4xx', async (_name, call, status, code) => {
    const res = await call();
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(10);
  });

  it('lists models OpenAI-style', async () => {
    const list = (await (await fetch(`${url}/v1/models`)).json()) as { object: string; data: { id: string; stable: { version: string } }[] };
    expect(list.object).toBe('list');
    expect(list.data.map((d) => d.id)).toEqual(['general']);
    expect(list.data[0]?.stable.version).toBe(base.version);
    expect((await fetch(`${url}/v1/models/nope`)).status).toBe(404);
  });

  it('turns feedback into word-error counters and a dataset sample', async () => {
    const id = firstIds[3] ?? '';
    const before = await metricsText(url);
    const labels = { deployment: 'general', model_version: base.version, scenario: 'medical' };
    const res = await fetch(`${url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request_id: id, reference: sentences[3], scenario: 'medical' }) });
    expect(res.status).toBe(200);
    const fb = (await res.json()) as { word_errors: number; reference_words: number; dataset_sample: string; transcript: string };
    expect(fb.reference_words).toBe(wordErrors(sentences[3] ?? '', '').referenceWords);
    expect(fb.word_errors).toBe(wordErrors(sentences[3] ?? '', fb.transcript).errors);
    expect(fb.dataset_sample).toBe('queued');
    const after = await metricsText(url);
    const inc = (name: string): number => metricValue(after, name, labels) - (Number.isNaN(metricValue(before, name, labels)) ? 0 : metricValue(before, name, labels));
    expect(inc('whisperops_agent_word_errors_total')).toBe(fb.word_errors);
    expect(inc('whisperops_agent_reference_words_total')).toBe(fb.reference_words);
    // The sample, as trainer-image reads it: <scenario>/<day>/manifest-<agent>-<start>-<seq>.jsonl with
    // {audio (relative), text, scenario, ...}, and the WAV beside it (uploaded in the background).
    const folder = join(datasetDir, 'medical', new Date().toISOString().slice(0, 10));
    await until(async () => metricValue(await metricsText(url), 'whisperops_agent_dataset_samples_total', { scenario: 'medical', result: 'written' }) === 1, 30_000);
    const manifests = readdirSafe(folder).filter((f) => f.endsWith('.jsonl'));
    expect(manifests).toEqual([expect.stringMatching(/^manifest-agent-test-\d{8}T\d{6}Z-000001\.jsonl$/)]);
    const lines = readFileSync(join(folder, manifests[0] ?? ''), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(line).toEqual({
      audio: `agent-test-${id}.wav`, text: sentences[3], scenario: 'medical', deployment: 'general', modelVersion: base.version, role: 'stable',
      pool: 'edge-test', agent: 'agent-test', requestId: id, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), hypothesis: fb.transcript, audioSeconds: expect.any(Number),
    });
    // espeak-ng streams its WAV (header sizes never filled in): the sample is the same 16-bit samples, re-headed.
    const stored = decodeWav(readFileSync(join(folder, `agent-test-${id}.wav`)));
    const sent = decodeWav(audio[3] ?? new Uint8Array());
    expect([stored.sampleRate, stored.encoding, stored.samples.length]).toEqual([sent.sampleRate, 'pcm_s16le', sent.samples.length]);
    expect(Buffer.from(stored.samples.buffer).equals(Buffer.from(sent.samples.buffer))).toBe(true);
    const written = await metricsText(url);
    expect(metricValue(written, 'whisperops_agent_dataset_written_bytes_total')).toBe(readFileSync(join(folder, `agent-test-${id}.wav`)).length + readFileSync(join(folder, manifests[0] ?? '')).length);
    // Duplicates, unknown ids and bad bodies are refused; scenarios outside the allow-list become "other".
    const post = (body: unknown): Promise<Response> => fetch(`${url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ request_id: id, reference: 'x' })).status).toBe(409);
    expect((await post({ request_id: 'req_unknown', reference: 'x' })).status).toBe(404);
    expect((await post({ request_id: firstIds[4] })).status).toBe(400);
    const other = await post({ request_id: firstIds[4], reference: sentences[4], scenario: 'Some Unlisted Scenario' });
    expect(((await other.json()) as { scenario: string }).scenario).toBe('other');
  });

  it('exposes the documented metrics', async () => {
    const m = await metricsText(url);
    const v = { deployment: 'general', model_version: base.version };
    expect(metricValue(m, 'whisperops_agent_requests_total', { route: 'transcriptions', code: '200', ...v })).toBeGreaterThanOrEqual(sentences.length);
    expect(metricValue(m, 'whisperops_agent_requests_total', { route: 'transcriptions', code: '415' })).toBeGreaterThanOrEqual(2);
    expect(metricValue(m, 'whisperops_agent_request_duration_seconds_count', v)).toBeGreaterThanOrEqual(sentences.length);
    expect(m).toMatch(/whisperops_agent_request_duration_seconds_bucket\{le="30",pool="edge-test",deployment="general"/);
    // Requests that got feedback are timed again under the scenario it named (one medical, one other above).
    for (const scenario of ['medical', 'other']) {
      expect(metricValue(m, 'whisperops_agent_scenario_request_duration_seconds_count', { ...v, scenario })).toBe(1);
      expect(metricValue(m, 'whisperops_agent_scenario_request_duration_seconds_sum', { ...v, scenario })).toBeGreaterThan(0);
    }
    expect(metricValue(m, 'whisperops_agent_scenario_request_duration_seconds_sum', { ...v, scenario: 'medical' })).toBeLessThanOrEqual(metricValue(m, 'whisperops_agent_request_duration_seconds_sum', v));
    expect(metricValue(m, 'whisperops_agent_inference_duration_seconds_sum', v)).toBeGreaterThan(0);
    expect(metricValue(m, 'whisperops_agent_real_time_factor_count', v)).toBeGreaterThan(0);
    expect(metricValue(m, 'whisperops_agent_audio_seconds_total', v)).toBeGreaterThan(30);
    expect(metricValue(m, 'whisperops_agent_capacity_streams')).toBe(16);
    expect(metricValue(m, 'whisperops_agent_active_streams')).toBe(0);
    expect(metricValue(m, 'whisperops_agent_queue_depth')).toBe(0);
    expect(metricValue(m, 'whisperops_agent_model_info', { ...v, role: 'stable', sha256: base.sha256 })).toBe(1);
    expect(metricValue(m, 'whisperops_agent_model_traffic_weight_ratio', { ...v, role: 'stable' })).toBe(1);
    expect(metricValue(m, 'whisperops_agent_event_loop_lag_seconds', { quantile: '0.99' })).toBeGreaterThanOrEqual(0);
    expect(metricValue(m, 'whisperops_agent_inference_workers')).toBe(2);
    expect(metricValue(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(m).toContain('pool="edge-test"');
  });

  it('hot-swaps stable and candidate under load with zero failed requests, and refuses bad artifacts', async () => {
    const ref = ({ uri, sha256, version }: { uri: string; sha256: string; version: string }) => ({ uri, sha256, version });
    const v2 = ref(derivedArtifact('hot-2'));
    const v3 = ref(derivedArtifact('hot-3'));
    const corrupt = ref(derivedArtifact('hot-4', { corrupt: 'onnx/decoder_model_merged_quantized.onnx' }));
    const statuses: number[] = [];
    const versions = new Set<string>();
    let countFrom = 0; // only requests started after this instant count into `versions`
    let countedAfter = 0;
    const healthMs: number[] = [];
    let stop = false;
    const client = async (k: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const started = performance.now();
        const res = await transcribe(url, audio[(k + i) % audio.length] ?? new Uint8Array(), { model: 'general' });
        statuses.push(res.status);
        if (started >= countFrom) {
          versions.add(res.headers.get('x-whisperops-model-version') ?? '');
          countedAfter++;
        }
        await res.arrayBuffer();
      }
    };
    const prober = async (): Promise<void> => {
      while (!stop) {
        const t = performance.now();
        await (await fetch(`${url}/healthz`)).arrayBuffer();
        healthMs.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const load = [0, 1, 2, 3].map(client);
    const health = prober();
    await new Promise((r) => setTimeout(r, 500));
    // Swap: stable → v2 with candidate v3 at 50 %, through a ConfigMap-style ..data symlink swap.
    writeConfigMap(configDir, 'model-set.yaml', JSON.stringify({ ...setV1, models: [{ name: 'general', stable: v2, candidate: { ...v3, weight: 50 } }] }));
    await until(() => versions.has('hot-2') && versions.has('hot-3'));
    const during = await metricsText(url);
    expect(metricValue(during, 'whisperops_agent_model_info', { model_version: 'hot-3', role: 'candidate' })).toBe(1);
    expect(metricValue(during, 'whisperops_agent_model_traffic_weight_ratio', { model_version: 'hot-3', role: 'candidate' })).toBe(0.5);
    // A corrupt artifact and a manifest whose sha256 does not match are refused: v2 keeps serving as stable
    // (the new set has no candidate, so v3 leaves once idle).
    writeConfigMap(configDir, 'model-set.yaml', JSON.stringify({ ...setV1, models: [{ name: 'general', stable: corrupt }, { name: 'other', stable: { ...v2, sha256: 'f'.repeat(64) } }] }));
    await until(async () => metricValue(await metricsText(url), 'whisperops_agent_model_loads_total', { result: 'file_checksum_mismatch', model_version: 'hot-4' }) === 1);
    await until(async () => metricValue(await metricsText(url), 'whisperops_agent_model_loads_total', { result: 'manifest_checksum_mismatch' }) === 1);
    // An invalid file is refused as a whole.
    writeConfigMap(configDir, 'model-set.yaml', 'pool: [unclosed');
    await until(async () => metricValue(await metricsText(url), 'whisperops_agent_config_reloads_total', { result: 'invalid' }) >= 1);
    versions.clear();
    countFrom = performance.now();
    countedAfter = 0;
    await until(() => countedAfter >= 4);
    stop = true;
    await Promise.all([...load, health]);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect([...versions]).toEqual(['hot-2']);
    expect((await fetch(`${url}/v1/models/other`)).status).toBe(404);
    const m = await metricsText(url);
    expect(metricValue(m, 'whisperops_agent_model_info', { model_version: 'hot-2', role: 'stable' })).toBe(1);
    expect(metricValue(m, 'whisperops_agent_model_traffic_weight_ratio', { model_version: 'hot-2' })).toBe(1);
    // Replaced models are gone from model_info.
    expect(metricValue(m, 'whisperops_agent_model_info', { model_version: 'hot-3' })).toBeNaN();
    expect(metricValue(m, 'whisperops_agent_model_info', { model_version: base.version })).toBeNaN();
    // The event loop stayed responsive while both workers were busy.
    healthMs.sort((a, b) => a - b);
    expect(healthMs[Math.floor(healthMs.length * 0.99)]).toBeLessThan(1000);
  });
});

describe('edge agent: overload and graceful shutdown', () => {
  it('runs golden probes, answers 429 with Retry-After beyond streams + queue, then drains in-flight work on shutdown', async () => {
    // A golden-probe set in the trainer's dataset format: JSONL {audio (relative), text, scenario}.
    const probeDir = tempDir('probes');
    [0, 1].forEach((i) => writeFileSync(join(probeDir, `p${i}.wav`), audio[i] ?? new Uint8Array()));
    writeFileSync(join(probeDir, 'probes.jsonl'), [0, 1].map((i) => JSON.stringify({ audio: `p${i}.wav`, text: sentences[i], scenario: 'golden' })).join('\n') + '\n');
    const agent = await startAgent(
      options({
        modelDir: join(REPO_ROOT, 'models', 'tiny-whisper-synth'),
        workers: 1,
        maxConcurrentStreams: 2,
        maxQueue: 1,
        shutdownDelaySeconds: 0.3,
        drainTimeoutSeconds: 60,
        probeSet: join(probeDir, 'probes.jsonl'),
        probeIntervalSeconds: 3600,
      }),
      quiet,
    );
    const url = agent.url;
    expect(await agent.runProbes()).toBe(true);
    const pm = await metricsText(url);
    const probeLabels = { deployment: 'tiny-whisper-synth', role: 'stable', scenario: 'golden' };
    const refWords = [0, 1].reduce((n, i) => n + wordErrors(sentences[i] ?? '', '').referenceWords, 0);
    expect(metricValue(pm, 'whisperops_agent_probe_reference_words_total', probeLabels)).toBe(refWords);
    expect(metricValue(pm, 'whisperops_agent_probe_word_errors_total', probeLabels) / refWords).toBeLessThan(0.45);
    expect(metricValue(pm, 'whisperops_agent_probe_runs_total', { result: 'success' })).toBe(1);

    const wav = audio[2] ?? new Uint8Array();
    const responses = await Promise.all(Array.from({ length: 8 }, () => transcribe(url, wav)));
    const codes = responses.map((r) => r.status).sort();
    expect(codes.filter((c) => c === 200).length).toBe(3);
    expect(codes.filter((c) => c === 429).length).toBe(5);
    for (const r of responses.filter((x) => x.status === 429)) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('overloaded');
    }
    const m = await metricsText(url);
    expect(metricValue(m, 'whisperops_agent_requests_total', { code: '429' })).toBe(5);
    expect(metricValue(m, 'whisperops_agent_rejected_requests_total', { reason: 'overloaded' })).toBe(5);

    // Shutdown: readiness fails at once, the in-flight request still completes, then the port closes.
    const inflight = transcribe(url, wav);
    await new Promise((r) => setTimeout(r, 100));
    const stopping = agent.shutdown();
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect((await inflight).status).toBe(200);
    await stopping;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
