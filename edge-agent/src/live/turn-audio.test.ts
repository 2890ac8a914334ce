import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decodeWav } from '../audio/wav.js';
import { TurnAudio, turnRequest } from './turn-audio.js';

const ramp = (from: number, n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (from + i) / 100_000);

describe('TurnAudio', () => {
  it('gives back a turn\'s samples by its times on the decoder\'s time line, across chunks, then drops them', () => {
    const t = new TurnAudio(1000, 10_000, 50);
    for (let i = 0; i < 10; i++) t.push(ramp(i * 100, 100), true);
    const a = t.take(250, 730); // samples 250..729
    expect(a).toEqual(ramp(250, 480));
    expect(t.keptSamples).toBe(1000 - 730);
    // Everything before the taken turn's end is gone: an earlier turn has no audio any more.
    expect(t.take(100, 200)).toBeUndefined();
    expect(t.take(730, 1000)).toEqual(ramp(730, 270));
  });

  it('while no turn is open keeps only the pre-roll; with a turn open up to the bound, after which the turn\'s start is lost', () => {
    const t = new TurnAudio(1000, 300, 50);
    t.push(ramp(0, 200), false);
    expect(t.keptSamples).toBe(50);
    t.push(ramp(200, 100), true); // speech from ~170 (pre-roll reaches back 30 samples)
    expect(t.take(170, 300)).toEqual(ramp(170, 130));
    t.push(ramp(300, 400), true); // a turn longer than the bound (300 samples)
    expect(t.keptSamples).toBe(300);
    expect(t.take(320, 700)).toBeUndefined();
    t.push(ramp(700, 10), true);
    t.clear();
    expect(t.keptSamples).toBe(0);
    t.reset();
    t.push(ramp(0, 10), true);
    expect(t.take(0, 10)).toEqual(ramp(0, 10));
  });

  it('any chunking gives the same samples (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), (sizes, a, b) => {
      const t = new TurnAudio(1000, 1_000_000, 1_000_000);
      let at = 0;
      for (const n of sizes) {
        t.push(ramp(at, n), true);
        at += n;
      }
      const start = a % at;
      const end = start + 1 + (b % (at - start));
      expect(t.take(start, end)).toEqual(ramp(start, end - start));
    }));
  });
});

describe('turnRequest', () => {
  it('makes a completed turn a recent request with its item id, text and model, and its audio a 16-bit WAV at the session\'s rate', () => {
    const audio = Float32Array.from({ length: 2400 }, (_, i) => Math.sin(i / 10) / 2);
    const { request, wav } = turnRequest(
      { itemId: 'item_abc', deployment: 'tiny', modelVersion: '1.0.0', role: 'stable', transcript: 'hello there', audioStartMs: 200, audioEndMs: 300, durationSeconds: 0.4 },
      audio, 24000, 1_700_000_000_000,
    );
    expect(request).toEqual({ id: 'item_abc', deployment: 'tiny', modelVersion: '1.0.0', role: 'stable', text: 'hello there', at: 1_700_000_000_000, audioSeconds: 0.1, durationSeconds: 0.4 });
    const back = decodeWav(wav ?? new Uint8Array());
    expect(back.sampleRate).toBe(24000);
    expect(back.samples.length).toBe(2400);
    expect(Math.abs((back.samples[100] ?? 0) - (audio[100] ?? 0))).toBeLessThan(1e-4);
    expect(turnRequest({ itemId: 'i', deployment: 'd', modelVersion: 'v', role: 'stable', transcript: '', audioStartMs: 0, audioEndMs: 0 }, undefined, 8000, 0).wav).toBeUndefined();
  });
});
