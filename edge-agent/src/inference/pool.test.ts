// The worker pool with the real model: two workers transcribe in parallel, and a worker that dies
// fails only its own jobs and is replaced with its models reloaded.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { decodeWav } from '../audio/wav.js';
import { EMBEDDED_MODEL, speak } from '../testing/speech.js';
import { InferencePool } from './pool.js';

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
