// Live speech in the dataset loop: a Realtime turn's item_id takes feedback like a file request's
// request id — word errors counted under the scenario, and with a dataset store the turn's audio (as
// received, 16-bit PCM at the session's rate) and the reference become a labelled sample in the
// trainer's manifest format. Whole agent (embedded INT8 model), a file:// store, a raw ws session.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import WebSocket from 'ws';
import { startAgent } from '../agent.js';
import type { Agent } from '../agent.js';
import { resample } from '../audio/resample.js';
import { decodeWav } from '../audio/wav.js';
import { parseOptions } from '../options.js';
import { REPO_ROOT, speak, tempDir } from '../testing/speech.js';
import { wordErrors } from '../text/wer.js';

jest.setTimeout(180_000);

const SR = 24000;
const sentence = 'please call me back when you have finished the report';

function pcm16(samples: Float32Array): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((x, i) => b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(x * 32767))), i * 2));
  return b;
}

describe('edge agent: feedback for a Realtime turn (item_id) becomes a labelled dataset sample', () => {
  let agent: Agent;
  const datasetDir = tempDir('live-dataset');

  beforeAll(async () => {
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, datasetStoreUri: `${pathToFileURL(datasetDir).href}/`, agentId: 'live-test', datasetFlushSamples: 1 }, pino({ level: 'silent' }));
  });

  afterAll(async () => {
    await agent.shutdown();
  });

  it('a turn streamed in real time, then POST /v1/feedback with its item_id: counted, queued, written with its audio', async () => {
    const speech = decodeWav(speak(sentence, 'en-us', 160));
    const voiced = resample(speech.samples, speech.sampleRate, SR);
    const silence = Math.round(0.3 * SR);
    const audio = new Float32Array(silence + voiced.length + Math.round(1.2 * SR));
    audio.set(voiced, silence);
    const ws = new WebSocket(`${agent.url.replace('http:', 'ws:')}/v1/realtime?intent=transcription`);
    const events: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: SR }, turn_detection: { type: 'server_vad', silence_duration_ms: 500 } } } } }));
    const chunk = Math.round(0.04 * SR);
    const t0 = performance.now();
    for (let i = 0; i < audio.length; i += chunk) {
      ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: pcm16(audio.subarray(i, i + chunk)).toString('base64') }));
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + ((i + chunk) / SR) * 1000 - performance.now())));
    }
    const end = Date.now() + 60_000;
    let completed: Record<string, unknown> | undefined;
    while (!(completed = events.find((e) => e.type === 'conversation.item.input_audio_transcription.completed')) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    ws.close();
    const started = events.find((e) => e.type === 'input_audio_buffer.speech_started');
    const stopped = events.find((e) => e.type === 'input_audio_buffer.speech_stopped');
    expect(completed).toBeDefined();
    const itemId = String(completed?.item_id);
    const transcript = String(completed?.transcript);
    expect(itemId).toMatch(/^item_/);

    const post = (body: unknown): Promise<Response> => fetch(`${agent.url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const res = await post({ request_id: itemId, reference: sentence, scenario: 'clinic' });
    expect(res.status).toBe(200);
    const fb = (await res.json()) as { word_errors: number; reference_words: number; dataset_sample: string; transcript: string; deployment: string };
    expect(fb.transcript).toBe(transcript);
    expect(fb.word_errors).toBe(wordErrors(sentence, transcript).errors);
    expect(fb.dataset_sample).toBe('queued');
    expect((await post({ request_id: itemId, reference: sentence })).status).toBe(409);

    // The sample as the trainer reads it: the turn's audio (speech_started → speech_stopped, as received) and the reference.
    const folder = join(datasetDir, 'clinic', new Date().toISOString().slice(0, 10));
    const deadline = Date.now() + 30_000;
    let manifests: string[] = [];
    while (Date.now() < deadline) {
      try {
        manifests = readdirSync(folder).filter((f) => f.endsWith('.jsonl'));
      } catch { /* not there yet */ }
      if (manifests.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(manifests).toHaveLength(1);
    const line = JSON.parse(readFileSync(join(folder, manifests[0] ?? ''), 'utf8').trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ audio: `live-test-${itemId}.wav`, text: sentence, scenario: 'clinic', requestId: itemId, hypothesis: transcript, role: 'stable', agent: 'live-test' });
    const wav = decodeWav(readFileSync(join(folder, `live-test-${itemId}.wav`)));
    expect(wav.sampleRate).toBe(SR);
    const startMs = Number(started?.audio_start_ms);
    const endMs = Number(stopped?.audio_end_ms);
    expect(wav.samples.length).toBe(Math.round((endMs / 1000) * SR) - Math.round((startMs / 1000) * SR));
    // It is the audio that was sent from the turn's start (16-bit both ways: equal to 1 LSB).
    const from = Math.round((startMs / 1000) * SR);
    let maxDiff = 0;
    for (let i = 0; i < wav.samples.length; i += 97) maxDiff = Math.max(maxDiff, Math.abs((wav.samples[i] ?? 0) - (audio[from + i] ?? 0)));
    expect(maxDiff).toBeLessThan(2 / 32768);
    // The whole utterance is in it: it starts before the speech and ends after it.
    expect(startMs).toBeLessThanOrEqual((silence / SR) * 1000);
    expect(endMs).toBeGreaterThanOrEqual(((silence + voiced.length) / SR) * 1000 - 100);
    process.stdout.write(`live feedback: "${transcript}" (${fb.word_errors}/${fb.reference_words} word errors), sample ${wav.samples.length / SR} s\n`);
  });
});
