// Test support (not used by the agent) for the log-mel front ends: the signal of testdata/log-mel-fixture.json (made by
// testdata/make-log-mel-fixture.py with transformers' WhisperFeatureExtractor) and the comparison.
import { readFileSync } from 'node:fs';

export const WHISPER_TINY_SYNTH = { feature_size: 80, sampling_rate: 16000, hop_length: 160, n_fft: 400, n_samples: 160000, nb_max_frames: 1000 };

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * 1.5 s of chirp, tone, a 6 kHz component and clicks; `diff` gives the largest difference of features from
 * the fixture's values (Infinity for a wrong shape) and the difference of the last (padding) frame's value.
 */
export function logMelFixture(): { signal: Float32Array; diff: (features: Float32Array) => { maxDiff: number; paddedDiff: number } } {
  const fx = JSON.parse(readFileSync(new URL('./testdata/log-mel-fixture.json', import.meta.url), 'utf8')) as {
    rows: number[];
    frames: number[];
    values: number[][];
    padded_value: number;
    shape: number[];
  };
  const sr = 16000;
  const n = 1.5 * sr;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / sr;
    x[i] = 0.3 * Math.sin(2 * Math.PI * (200 * t + 1500 * t * t)) + 0.2 * Math.sin(2 * Math.PI * 440 * t) + 0.05 * Math.sin(2 * Math.PI * 6000 * t);
    if (i % 800 === 0) x[i] = Math.fround(x[i] + 0.5);
  }
  const diff = (f: Float32Array): { maxDiff: number; paddedDiff: number } => {
    if (f.length !== fx.shape[0] * fx.shape[1]) return { maxDiff: Infinity, paddedDiff: Infinity };
    let maxDiff = 0;
    fx.rows.forEach((r, ri) =>
      fx.frames.forEach((c, ci) => {
        maxDiff = Math.max(maxDiff, Math.abs(f[r * fx.shape[1] + c] - fx.values[ri][ci]));
      }),
    );
    return { maxDiff, paddedDiff: Math.abs(f[fx.shape[1] - 1] - fx.padded_value) };
  };
  return { signal: x, diff };
}
