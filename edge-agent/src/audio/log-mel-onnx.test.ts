/**
 * @jest-environment ./test/jest/ort-environment.cjs
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { LogMel } from './log-mel.js';
import { logMelFixture, maxAbsDiff, WHISPER_TINY_SYNTH } from './log-mel-fixture.js';
import { OnnxLogMel } from './log-mel-onnx.js';

describe('OnnxLogMel (the front end the agent runs)', () => {
  const sessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

  it("matches transformers' WhisperFeatureExtractor (fixture from testdata/make-log-mel-fixture.py)", async () => {
    const onnxMel = await OnnxLogMel.create(WHISPER_TINY_SYNTH, sessionOptions);
    const { signal, diff } = logMelFixture();
    const { maxDiff, paddedDiff } = diff(await onnxMel.compute(signal));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(paddedDiff).toBeLessThan(1e-5);
    await onnxMel.release();
  });

  it('equals the float64 reference within float32 rounding, for any audio and call order', async () => {
    const onnxMel = await OnnxLogMel.create(WHISPER_TINY_SYNTH, sessionOptions);
    const reference = new LogMel(WHISPER_TINY_SYNTH);
    const clip = fc
      .record({ lead: fc.integer({ min: 0, max: 40_000 }), body: fc.integer({ min: 0, max: 170_000 }), amp: fc.double({ min: 1e-4, max: 1, noNaN: true }), seed: fc.integer() })
      .map(({ lead, body, amp, seed }) => {
        const a = new Float32Array(lead + body);
        for (let i = 0; i < body; i++) a[lead + i] = Math.fround(amp * (0.6 * Math.sin(0.031 * i + seed) + 0.4 * Math.sin(0.0007 * i * i + 0.3 * seed)));
        return a;
      });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(clip, { minLength: 1, maxLength: 3 }), async (clips) => {
          for (const a of clips) expect(maxAbsDiff(await onnxMel.compute(a), reference.compute(a))).toBeLessThan(2e-4);
        }),
        { numRuns: 8 },
      );
    } finally {
      await onnxMel.release();
    }
    // Up to 24 clips of up to 13 s through both front ends: ~1 s idle, several on a loaded 2-core CI machine.
  }, 60_000);

  it('gives the floor value everywhere for silence and empty audio', async () => {
    const onnxMel = await OnnxLogMel.create(WHISPER_TINY_SYNTH, sessionOptions);
    for (const a of [new Float32Array(16000), new Float32Array(0)]) {
      const f = await onnxMel.compute(a);
      expect(new Set(f)).toEqual(new Set([(-10 + 4) / 4]));
    }
    await onnxMel.release();
  });

  it('refuses an odd n_fft', async () => {
    await expect(OnnxLogMel.create({ ...WHISPER_TINY_SYNTH, n_fft: 401 }, sessionOptions)).rejects.toThrow('n_fft must be even, got 401');
  });
});
