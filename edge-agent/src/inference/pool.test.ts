// The worker pool with the real model: two workers transcribe in parallel, and a worker that dies
// fails only its own jobs and is replaced with its models reloaded.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { decodeWav } from '../audio/wav.js';
import { EMBEDDED_MODEL, speak } from '../testing/speech.js';
import { InferencePool, InferenceTimeoutError } from './pool.js';

jest.setTimeout(120_000);

describe('InferencePool', () => {
  let pool: InferencePool;
  const exits: number[] = [];
  beforeAll(async () => {
    pool = new InferencePool({ workers: 2, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 4, onWorkerExit: (i) => exits.push(i) });
    const info = await pool.load({ key: 'm', dir: EMBEDDED_MODEL, dtype: 'int8' });
    expect(info).toMatchObject({ languages: ['en'], windowSeconds: 10, sampleRate: 16000 });
  });
  afterAll(() => pool.close());

  const job = () => {
    const a = decodeWav(speak('your program is sick'));
    return { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 };
  };

  it('runs jobs on both workers and batches queued jobs of the same model', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => pool.run('m', job())));
    // (INT8 with batching: the agent's default is max-batch 1 for INT8; the pool itself batches as told.)
    expect(new Set(results.map((r) => r.text))).toEqual(new Set(['your program is sick']));
    expect(Math.max(...results.map((r) => r.batchWindows))).toBeGreaterThan(1);
  });

  it('a forced prefix starts the first window\'s transcript; forcing the model\'s own first words gives its own transcript, token for token', async () => {
    const a = decodeWav(speak('please call me back when you have finished the report'));
    const input = { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 };
    const free = await pool.run('m', input);
    const words = free.text.split(' ');
    expect(words.length).toBeGreaterThan(5);
    const own = await pool.run('m', { ...input, prefix: words.slice(0, 4).join(' ') });
    expect(own.windows[0]?.tokens).toEqual(free.windows[0]?.tokens);
    expect(own.text).toBe(free.text);
    // A prefix the model would not have said is kept verbatim, and decoding goes on after it.
    const other = await pool.run('m', { ...input, prefix: 'kindly phone' });
    expect(other.text.startsWith('kindly phone ')).toBe(true);
    expect(other.text.split(' ').length).toBeGreaterThan(4);
  });

  it('refuses unknown models and replaces a worker that exited', async () => {
    await expect(pool.run('nope', job())).rejects.toThrow(/not loaded/);
    pool.retireWorker(0);
    const t0 = Date.now();
    while (exits.length === 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    expect(exits).toEqual([0]);
    // The replacement reloads the model; every later job succeeds.
    const after = await Promise.all(Array.from({ length: 4 }, () => pool.run('m', job())));
    expect(after.every((r) => r.text === 'your program is sick')).toBe(true);
  });
});

describe('InferencePool watchdog and fault injection', () => {
  let pool: InferencePool;
  const exits: number[] = [];
  const timeouts: number[] = [];
  const speech = decodeWav(speak('your program is sick'));
  const short = () => ({ audio: speech.samples.slice(), sampleRate: speech.sampleRate, language: 'en', prompt: '', temperature: 0 });
  beforeAll(async () => {
    pool = new InferencePool({
      workers: 1,
      intraOpThreads: 1,
      executionProviders: ['cpu'],
      maxBatch: 1,
      jobTimeoutMs: 2_000,
      onTimeout: (i) => timeouts.push(i),
      onWorkerExit: (i) => exits.push(i),
    });
    await pool.load({ key: 'm', dir: EMBEDDED_MODEL, dtype: 'int8' });
  });
  afterAll(() => pool.close());

  it('fails a run over its deadline with InferenceTimeoutError at the deadline, recycles the worker, and serves the next job', async () => {
    // 120 utterances with pauses: over 100 windows, tens of seconds of decoding on one worker.
    const gap = new Float32Array(speech.sampleRate);
    const long = new Float32Array((speech.samples.length + gap.length) * 120);
    for (let i = 0; i < 120; i++) long.set(speech.samples, i * (speech.samples.length + gap.length));
    const t0 = Date.now();
    await expect(pool.run('m', { audio: long, sampleRate: speech.sampleRate, language: 'en', prompt: '', temperature: 0 })).rejects.toBeInstanceOf(InferenceTimeoutError);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(1_900);
    expect(waited).toBeLessThan(6_000);
    expect(timeouts).toEqual([0]);
    expect(exits).toEqual([]); // a recycled worker is not counted as a crash; its replacement was spawned at once
    const r = await pool.run('m', short());
    expect(r.text).toBe('your program is sick');
  });

  it('a worker whose message handler throws answers failed and keeps serving (its promise chain survives)', async () => {
    const reply = await pool.injectFault(0);
    expect(reply).toMatchObject({ type: 'failed', message: 'injected fault' });
    const r = await pool.run('m', short());
    expect(r.text).toBe('your program is sick');
    expect(exits).toEqual([]);
  });
});
