// Static INT8 (QDQ, fixed scales) through the real worker: a request's token ids do not depend on what
// it is batched with, so the pool batches a static model across requests (its LoadSpec.maxBatch) while a
// dynamic INT8 model beside it in the same worker stays unbatched, also across the windows of one request.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { decodeWav } from '../audio/wav.js';
import { EMBEDDED_MODEL, speak, testSentences } from '../testing/speech.js';
import { ensureStaticInt8Model } from '../testing/static-int8.js';
import { InferencePool } from './pool.js';
import type { JobResult } from './protocol.js';

jest.setTimeout(600_000);

describe('static INT8 batching', () => {
  let pool: InferencePool;
  const clips = testSentences().slice(0, 4).map((s, i) => decodeWav(speak(s, i % 2 ? 'en-gb' : 'en-us')));
  const job = (i: number) => ({ audio: clips[i]?.samples.slice() ?? new Float32Array(0), sampleRate: clips[i]?.sampleRate ?? 16000, language: 'en', prompt: '', temperature: 0 });
  beforeAll(async () => {
    const model = ensureStaticInt8Model();
    // pool default 1 (dynamic INT8's); the static model brings its own 4
    pool = new InferencePool({ workers: 1, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 1 });
    await pool.load({ key: 'static', dir: model.dir, dtype: 'int8', maxBatch: 4 });
    await pool.load({ key: 'dynamic', dir: EMBEDDED_MODEL, dtype: 'int8' });
    expect([pool.maxBatchOf('static'), pool.maxBatchOf('dynamic')]).toEqual([4, 1]);
  });
  afterAll(() => pool.close());

  /** Four jobs queued behind a busy worker, so that they are dispatched together. */
  async function queuedTogether(key: string): Promise<JobResult[]> {
    const busy = pool.run('dynamic', job(0));
    const all = Promise.all(clips.map((_, i) => pool.run(key, job(i))));
    await busy;
    return all;
  }

  it('decodes the same token ids alone and batched across requests', async () => {
    const alone: JobResult[] = [];
    for (let i = 0; i < clips.length; i++) alone.push(await pool.run('static', job(i)));
    expect(alone.map((r) => r.batchWindows)).toEqual([1, 1, 1, 1]);
    const batched = await queuedTogether('static');
    expect(batched.map((r) => r.batchWindows)).toEqual([4, 4, 4, 4]);
    expect(batched.map((r) => r.windows.map((w) => w.tokens))).toEqual(alone.map((r) => r.windows.map((w) => w.tokens)));
    // the windows end at different steps, so the batch shrinks as they finish (rows compacted) on the way
    expect(new Set(alone.map((r) => r.windows.map((w) => w.tokens.length).join())).size).toBeGreaterThan(1);
    expect(alone.every((r) => r.text.length > 0)).toBe(true);
  });

  it('keeps the dynamic INT8 model beside it unbatched, across requests and across one request\'s windows', async () => {
    const dyn = await queuedTogether('dynamic');
    expect(dyn.map((r) => r.batchWindows)).toEqual([1, 1, 1, 1]);
    // 25 s of speech: several windows, decoded one by one for the dynamic model, together for the static one
    const c = clips[0];
    if (!c) throw new Error('no clip');
    const long = new Float32Array(25 * c.sampleRate);
    for (let off = 0; off + c.samples.length <= long.length; off += c.samples.length + c.sampleRate) long.set(c.samples, off);
    const input = { audio: long, sampleRate: c.sampleRate, language: 'en', prompt: '', temperature: 0 };
    const [d, s] = [await pool.run('dynamic', { ...input, audio: long.slice() }), await pool.run('static', { ...input, audio: long.slice() })];
    // (windows end at pauses: more than three here)
    expect(d.windows.length).toBeGreaterThan(2);
    expect(s.windows.length).toBe(d.windows.length);
    expect([d.batchWindows, s.batchWindows]).toEqual([1, Math.min(4, s.windows.length)]);
  });
});
