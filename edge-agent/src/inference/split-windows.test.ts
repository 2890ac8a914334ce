import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { splitWindows } from './whisper-model.js';

const SR = 16000;
const WINDOW = 10 * SR;

function signal(parts: [kind: 'tone' | 'silence', seconds: number][]): Float32Array {
  const out = new Float32Array(Math.round(parts.reduce((n, [, s]) => n + s, 0) * SR));
  let at = 0;
  for (const [kind, seconds] of parts) {
    const n = Math.round(seconds * SR);
    if (kind === 'tone') for (let i = 0; i < n; i++) out[at + i] = 0.3 * Math.sin((2 * Math.PI * 300 * i) / SR) * (1 + 0.5 * Math.sin(i / 900));
    at += n;
  }
  return out;
}

describe('splitWindows', () => {
  it('gives one window per utterance, trimmed to the speech with 100 ms margin', () => {
    const w = splitWindows(signal([['silence', 1], ['tone', 2], ['silence', 3], ['tone', 1.5], ['silence', 0.5]]), WINDOW, SR);
    expect(w.length).toBe(2);
    expect(w[0]?.[0]).toBeCloseTo(0.9 * SR, -3);
    expect(w[0]?.[1]).toBeCloseTo(3.1 * SR, -3);
    expect(w[1]?.[0]).toBeCloseTo(5.9 * SR, -3);
  });

  it('keeps short pauses inside one window', () => {
    expect(splitWindows(signal([['tone', 2], ['silence', 0.3], ['tone', 2]]), WINDOW, SR).length).toBe(1);
  });

  it('gives no window for digital silence', () => {
    expect(splitWindows(new Float32Array(SR * 3), WINDOW, SR)).toEqual([]);
  });

  it('cuts continuous speech longer than a window into contiguous windows of at most the window length', () => {
    fc.assert(
      fc.property(fc.double({ min: 10.5, max: 45, noNaN: true }), (seconds) => {
        const audio = signal([['tone', seconds]]);
        const w = splitWindows(audio, WINDOW, SR);
        expect(w.length).toBeGreaterThanOrEqual(Math.ceil(seconds / 10));
        w.forEach(([s, e], i) => {
          expect(e - s).toBeLessThanOrEqual(WINDOW);
          expect(e).toBeGreaterThan(s);
          if (i > 0) expect(s).toBe(w[i - 1]?.[1]);
        });
        expect(w[0]?.[0]).toBe(0);
        expect(w[w.length - 1]?.[1]).toBe(audio.length);
      }),
      { numRuns: 15 },
    );
  });
});
