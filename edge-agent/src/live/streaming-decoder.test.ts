// The streaming decoder: LocalAgreement-2 and the turn logic on a scripted decoder (pure), then real
// espeak-ng speech streamed in real time through the INT8 embedded model in 2 inference workers.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { resample } from '../audio/resample.js';
import { decodeWav } from '../audio/wav.js';
import { InferencePool } from '../inference/pool.js';
import { EMBEDDED_MODEL, speak } from '../testing/speech.js';
import { wordErrors } from '../text/wer.js';
import { agreedPrefix, DEFAULT_STREAMING, StreamingDecoder } from './streaming-decoder.js';
import type { DecodeFn, StreamEvent } from './streaming-decoder.js';

jest.setTimeout(180_000);
const SR = 16000;

const tone = (seconds: number, amp = 0.3): Float32Array => Float32Array.from({ length: Math.round(seconds * SR) }, (_, i) => amp * Math.sin((2 * Math.PI * 220 * i) / SR));
const silence = (seconds: number): Float32Array => new Float32Array(Math.round(seconds * SR));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('agreedPrefix', () => {
  it('compares words without case and punctuation', () => {
    expect(agreedPrefix(['The', 'cat,', 'sat'], ['the', 'cat', 'sits'])).toBe(2);
    expect(agreedPrefix([], ['a'])).toBe(0);
    expect(agreedPrefix(['a', 'b'], ['a', 'b'])).toBe(2);
  });
});

describe('StreamingDecoder on a scripted model', () => {
  // The scripted "model": one word per 0.25 s of sound in the window; while the window ends in sound
  // (a word still being spoken), the last word flickers between two spellings from decode to decode.
  const vocabulary = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
  let calls = 0;
  const prefixes: string[] = [];
  const scripted: DecodeFn = (audio, _rate, prefix) => {
    calls++;
    if (prefix) prefixes.push(prefix);
    let sound = 0;
    for (const x of audio) if (Math.abs(x) > 0.01) sound++;
    const n = Math.floor(sound / (0.25 * SR));
    const speaking = Math.abs(audio[audio.length - 1] ?? 0) + Math.abs(audio[audio.length - 10] ?? 0) > 0;
    const ws = vocabulary.slice(0, n).map((w, i) => (i === n - 1 && speaking && calls % 2 === 0 ? w.toUpperCase() + 'x' : w));
    return Promise.resolve({ windows: n === 0 ? [] : [{ start: 0, end: audio.length / SR, text: ' ' + ws.join(' ') }], workMs: 1 });
  };

  it('commits words two consecutive hypotheses agree on, append-only, and the rest at the turn end', async () => {
    const events: StreamEvent[] = [];
    const d = new StreamingDecoder(scripted, { ...DEFAULT_STREAMING, sampleRate: SR, prerollSeconds: 0 }, (e) => events.push(e));
    const speech = tone(2.6);
    for (let i = 0; i < speech.length; i += 800) {
      d.push(speech.subarray(i, i + 800));
      await tick();
    }
    d.push(silence(0.6));
    await d.close();
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('speech_started');
    expect(types).toContain('speech_stopped');
    expect(types[types.length - 1]).toBe('completed');
    const deltas = events.filter((e): e is Extract<StreamEvent, { type: 'delta' }> => e.type === 'delta');
    expect(deltas.length).toBeGreaterThan(2);
    const completed = events.find((e): e is Extract<StreamEvent, { type: 'completed' }> => e.type === 'completed');
    // Deltas concatenate to the final text; no flickering spelling was ever committed.
    expect(deltas.map((e) => e.delta).join('')).toBe(completed?.transcript);
    expect(completed?.transcript.split(' ').every((w) => vocabulary.includes(w))).toBe(true);
    expect(completed?.transcript.split(' ').length).toBeGreaterThanOrEqual(10);
    // Every re-decode after the first commit was handed the committed words as its forced prefix.
    expect(prefixes.length).toBeGreaterThan(2);
    for (const p of prefixes) expect(completed?.transcript.startsWith(p + ' ')).toBe(true);
    expect(new Set(prefixes).size).toBeGreaterThan(2);
  });

  it('ends a turn on commit even without speech, and clear drops audio', async () => {
    const events: StreamEvent[] = [];
    const d = new StreamingDecoder(scripted, { ...DEFAULT_STREAMING, sampleRate: SR }, (e) => events.push(e));
    expect(await d.commit()).toBe(false);
    d.push(tone(1, 0.001)); // under the VAD threshold
    expect(events).toEqual([]);
    d.clear();
    expect(d.bufferedSamples).toBe(0);
    d.push(tone(1, 0.001));
    expect(await d.commit()).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'completed']);
  });
});

describe('StreamingDecoder: espeak-ng speech in real time through the INT8 model', () => {
  let pool: InferencePool;
  beforeAll(async () => {
    pool = new InferencePool({ workers: 2, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 1 });
    await pool.load({ key: 'm', dir: EMBEDDED_MODEL, dtype: 'int8' });
  });
  afterAll(() => pool.close());

  const decode: DecodeFn = async (audio, sampleRate) => {
    const r = await pool.run('m', { audio, sampleRate, language: 'en', prompt: '', temperature: 0 });
    return { windows: r.windows, workMs: r.featuresMs + r.encoderMs + r.decoderMs };
  };

  it('sends deltas while audio is still arriving; finals match the file transcription; the window stays within the model window', async () => {
    const sentences = ['the patient was given two tablets of aspirin this morning', 'please call me back when you have finished the report', 'we will meet again at the station next week'];
    const pieces = sentences.map((s) => {
      const a = decodeWav(speak(s, 'en-us', 160));
      return resample(a.samples, a.sampleRate, SR);
    });
    const fileTexts = await Promise.all(pieces.map(async (p) => (await pool.run('m', { audio: p, sampleRate: SR, language: 'en', prompt: '', temperature: 0 })).text));
    const gap = silence(1.2);
    const stream = new Float32Array(pieces.reduce((n, p) => n + p.length + gap.length, 0));
    let at = 0;
    for (const p of pieces) {
      stream.set(p, at);
      at += p.length + gap.length;
    }
    const events: { e: StreamEvent; sentSeconds: number }[] = [];
    let sent = 0;
    let maxBuffered = 0;
    const d = new StreamingDecoder(decode, { ...DEFAULT_STREAMING, sampleRate: SR }, (e) => events.push({ e, sentSeconds: sent / SR }));
    // 40 ms chunks, paced in real time.
    const chunk = 0.04 * SR;
    const t0 = performance.now();
    for (let i = 0; i < stream.length; i += chunk) {
      d.push(stream.subarray(i, i + chunk));
      sent = Math.min(stream.length, i + chunk);
      maxBuffered = Math.max(maxBuffered, d.bufferedSamples);
      const due = t0 + (sent / SR) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    }
    await d.close();
    const completed = events.map((x) => x.e).filter((e): e is Extract<StreamEvent, { type: 'completed' }> => e.type === 'completed');
    expect(completed.length).toBe(3);
    const pooled = { vsFile: [0, 0], vsRef: [0, 0] };
    const add = (acc: number[], e: { errors: number; referenceWords: number }): void => {
      acc[0] = (acc[0] ?? 0) + e.errors;
      acc[1] = (acc[1] ?? 0) + e.referenceWords;
    };
    completed.forEach((c, i) => {
      // Within a turn, the deltas add up to the final text.
      const deltas = events.map((x) => x.e).filter((e): e is Extract<StreamEvent, { type: 'delta' }> => e.type === 'delta' && e.turn === c.turn);
      expect(deltas.map((e) => e.delta).join('')).toBe(c.transcript);
      add(pooled.vsFile, wordErrors(fileTexts[i] ?? '', c.transcript));
      add(pooled.vsRef, wordErrors(sentences[i] ?? '', c.transcript));
    });
    // The finals against the file transcription of the same audio, and against the text: within the bound
    // README documents (bench:live measures it on 30 utterances; at the 0.2 s step the finals differ from
    // the file transcription in 28 % of the words, WER 30.6 % against the file path's 18.6 %: the embedded
    // model garbles words it hears without their right context, and a commit cannot be taken back).
    const rate = (a: number[]): number => (a[0] ?? 0) / (a[1] ?? 1);
    expect(rate(pooled.vsFile)).toBeLessThanOrEqual(0.4);
    expect(rate(pooled.vsRef)).toBeLessThan(0.5);
    // The first turn's first delta came before its speech ended in the stream (text while speaking).
    const firstTurn = completed[0]?.turn;
    const firstDelta = events.find((x) => x.e.type === 'delta' && x.e.turn === firstTurn);
    expect(firstDelta?.sentSeconds).toBeLessThan((pieces[0]?.length ?? 0) / SR);
    // The growing window never held much more than the model's 10 s window.
    expect(maxBuffered / SR).toBeLessThan(10 + 1);
    console.log(
      `streaming: ${(stream.length / SR).toFixed(1)} s of audio, ${d.decodes} decodes, worker ${(d.workMs / 1000).toFixed(2)} s (${(d.workMs / 1000 / (stream.length / SR)).toFixed(3)} s per audio s); ` +
        `finals: ${completed.map((c) => JSON.stringify(c.transcript)).join(' | ')}; file: ${fileTexts.map((t) => JSON.stringify(t)).join(' | ')}`,
    );
  });
});
