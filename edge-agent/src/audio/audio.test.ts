import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Fft, RealPowerSpectrum } from './fft.js';
import { hannWindow, LogMel, melFilterBank } from './log-mel.js';
import { logMelFixture, maxAbsDiff, WHISPER_TINY_SYNTH } from './log-mel-fixture.js';
import { resample } from './resample.js';
import { AudioFormatError, decodeWav, encodeWav16 } from './wav.js';

function naiveDft(re: number[], im: number[]): [number[], number[]] {
  const n = re.length;
  const oR: number[] = [];
  const oI: number[] = [];
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let t = 0; t < n; t++) {
      const a = (-2 * Math.PI * k * t) / n;
      sr += re[t] * Math.cos(a) - im[t] * Math.sin(a);
      si += re[t] * Math.sin(a) + im[t] * Math.cos(a);
    }
    oR.push(sr);
    oI.push(si);
  }
  return [oR, oI];
}

describe('Fft', () => {
  it.each([1, 2, 4, 5, 7, 12, 16, 200, 400])('equals the naive DFT for n=%i', (n) => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2 * n, maxLength: 2 * n }), (v) => {
        const re = v.slice(0, n);
        const im = v.slice(n);
        const [eR, eI] = naiveDft(re, im);
        const xr = Float64Array.from(re);
        const xi = Float64Array.from(im);
        new Fft(n).transform(xr, xi);
        for (let k = 0; k < n; k++) {
          expect(Math.abs(xr[k] - eR[k])).toBeLessThan(1e-9 * n);
          expect(Math.abs(xi[k] - eI[k])).toBeLessThan(1e-9 * n);
        }
      }),
      { numRuns: n > 100 ? 5 : 20 },
    );
  });

  it('RealPowerSpectrum equals |DFT|² of a windowed real signal', () => {
    const n = 400;
    const x = Float32Array.from({ length: n + 10 }, (_, i) => Math.sin(i * 0.37) + 0.1 * Math.cos(i * 2.1));
    const w = hannWindow(n);
    const out = new Float64Array(n / 2 + 1);
    new RealPowerSpectrum(n).compute(x, 5, w, out);
    const [eR, eI] = naiveDft(Array.from({ length: n }, (_, i) => x[5 + i] * w[i]), new Array<number>(n).fill(0));
    for (let k = 0; k <= n / 2; k++) expect(out[k]).toBeCloseTo(eR[k] ** 2 + eI[k] ** 2, 6);
  });
});

describe('LogMel', () => {
  it("matches transformers' WhisperFeatureExtractor (fixture from testdata/make-log-mel-fixture.py)", () => {
    const { signal, diff } = logMelFixture();
    const { maxDiff, paddedDiff } = diff(new LogMel(WHISPER_TINY_SYNTH).compute(signal));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(paddedDiff).toBeLessThan(1e-5);
  });

  it('equals the plain algorithm (every frame, full padding) for any audio length and call order', () => {
    // A small window (50 frames) so that lengths near and over n_samples are cheap; one instance is reused
    // across calls, so what a longer call leaves in its buffers must not leak into the next.
    const cfg = { feature_size: 80, sampling_rate: 16000, hop_length: 160, n_fft: 400, n_samples: 8000, nb_max_frames: 50 };
    const half = cfg.n_fft / 2;
    const filters = melFilterBank(cfg.n_fft / 2 + 1, cfg.feature_size, cfg.sampling_rate);
    const window = hannWindow(cfg.n_fft);
    const rfft = new RealPowerSpectrum(cfg.n_fft);
    const plain = (audio: Float32Array): Float32Array => {
      const padded = new Float32Array(cfg.n_samples + 2 * half);
      padded.set(audio.subarray(0, cfg.n_samples), half);
      for (let i = 1; i <= half; i++) {
        padded[half - i] = padded[half + i];
        padded[half + cfg.n_samples - 1 + i] = padded[half + cfg.n_samples - 1 - i];
      }
      const logs = new Float64Array(cfg.feature_size * cfg.nb_max_frames);
      const power = new Float64Array(cfg.n_fft / 2 + 1);
      for (let t = 0; t < cfg.nb_max_frames; t++) {
        rfft.compute(padded, t * cfg.hop_length, window, power);
        filters.forEach((f, m) => {
          let acc = 0;
          f.weights.forEach((w, j) => (acc += w * power[f.start + j]));
          logs[m * cfg.nb_max_frames + t] = Math.log10(Math.max(acc, 1e-10));
        });
      }
      const floor = Math.max(...logs) - 8;
      return Float32Array.from(logs, (v) => (Math.max(v, floor) + 4) / 4);
    };
    const lm = new LogMel(cfg);
    const clip = fc
      .record({ lead: fc.integer({ min: 0, max: 9000 }), body: fc.integer({ min: 0, max: 9000 }), trail: fc.integer({ min: 0, max: 3000 }), seed: fc.integer() })
      .map(({ lead, body, trail, seed }) => {
        const a = new Float32Array(lead + body + trail);
        for (let i = 0; i < body; i++) a[lead + i] = Math.fround(0.3 * Math.sin(0.05 * i + seed) + 0.1 * Math.sin(0.9 * i));
        return a;
      });
    fc.assert(
      fc.property(fc.array(clip, { minLength: 1, maxLength: 4 }), (clips) => {
        for (const a of clips) {
          const got = lm.compute(a);
          const want = plain(a);
          expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
        }
      }),
      { numRuns: 25 },
    );
  });

  it('gives the floor value everywhere for silence and stays finite', () => {
    const f = new LogMel(WHISPER_TINY_SYNTH).compute(new Float32Array(16000));
    expect(new Set(f).size).toBe(1);
    expect(f[0]).toBeCloseTo((-10 + 4) / 4, 6);
  });
});

describe('resample', () => {
  const tone = (hz: number, rate: number, seconds: number): Float32Array =>
    Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => Math.sin((2 * Math.PI * hz * i) / rate));
  const rms = (x: Float32Array, from = 0, to = x.length): number => {
    let s = 0;
    for (let i = from; i < to; i++) s += x[i] * x[i];
    return Math.sqrt(s / (to - from));
  };

  it.each([
    [22050, 16000],
    [44100, 16000],
    [48000, 16000],
    [8000, 16000],
    [11025, 16000],
    [44056, 16000],
  ])('%i → %i keeps an in-band tone (length, amplitude, phase)', (from, to) => {
    const y = resample(tone(1000, from, 1), from, to);
    expect(y.length).toBe(Math.floor((from * to) / from));
    const expected = tone(1000, to, 1);
    let err = 0;
    for (let i = 200; i < y.length - 200; i++) err = Math.max(err, Math.abs(y[i] - expected[i]));
    expect(err).toBeLessThan(0.01);
  });

  it('removes a tone above the new Nyquist frequency', () => {
    const y = resample(tone(10000, 44100, 1), 44100, 16000);
    expect(rms(y, 200, y.length - 200)).toBeLessThan(0.01);
  });

  it('returns the input when the rates are equal', () => {
    const x = tone(440, 16000, 0.1);
    expect(resample(x, 16000, 16000)).toBe(x);
  });
});

function wav(opts: { format: number; channels: number; rate: number; bits: number; data: Uint8Array; extensible?: boolean; extraChunk?: boolean }): Uint8Array {
  const fmtSize = opts.extensible ? 40 : 16;
  const extra = opts.extraChunk ? 8 + 3 + 1 : 0; // odd-sized LIST chunk + pad byte
  const total = 12 + 8 + fmtSize + extra + 8 + opts.data.length;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  const put = (at: number, s: string): void => [...s].forEach((c, i) => (b[at + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  dv.setUint32(4, total - 8, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, fmtSize, true);
  dv.setUint16(20, opts.extensible ? 0xfffe : opts.format, true);
  dv.setUint16(22, opts.channels, true);
  dv.setUint32(24, opts.rate, true);
  dv.setUint32(28, (opts.rate * opts.channels * opts.bits) / 8, true);
  dv.setUint16(32, (opts.channels * opts.bits) / 8, true);
  dv.setUint16(34, opts.bits, true);
  if (opts.extensible) {
    dv.setUint16(36, 22, true);
    dv.setUint16(38, opts.bits, true);
    dv.setUint16(44, opts.format, true);
  }
  let at = 20 + fmtSize;
  if (opts.extraChunk) {
    put(at, 'LIST');
    dv.setUint32(at + 4, 3, true);
    at += 12;
  }
  put(at, 'data');
  dv.setUint32(at + 4, opts.data.length, true);
  b.set(opts.data, at + 8);
  return b;
}

function samplesOf(kind: string, values: number[]): Uint8Array {
  const size = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8 }[kind] ?? 0;
  const b = new Uint8Array(values.length * size);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => {
    const o = i * size;
    if (kind === 'u8') dv.setUint8(o, Math.round(v * 128 + 128));
    if (kind === 's16') dv.setInt16(o, Math.round(v * 32767), true);
    if (kind === 's24') {
      const s = Math.round(v * 8388607);
      dv.setUint8(o, s & 0xff);
      dv.setUint8(o + 1, (s >> 8) & 0xff);
      dv.setInt8(o + 2, s >> 16);
    }
    if (kind === 's32') dv.setInt32(o, Math.round(v * 2147483647), true);
    if (kind === 'f32') dv.setFloat32(o, v, true);
    if (kind === 'f64') dv.setFloat64(o, v, true);
  });
  return b;
}

describe('decodeWav', () => {
  const values = [0, 0.5, -0.5, 0.25, -0.999, 0.75];
  it.each([
    ['u8', 1, 8, 'pcm_u8', 1 / 64],
    ['s16', 1, 16, 'pcm_s16le', 1e-4],
    ['s24', 1, 24, 'pcm_s24le', 1e-6],
    ['s32', 1, 32, 'pcm_s32le', 1e-7],
    ['f32', 3, 32, 'float32', 1e-7],
    ['f64', 3, 64, 'float64', 1e-7],
  ])('decodes %s', (kind, format, bits, encoding, tol) => {
    for (const extensible of [false, true]) {
      const a = decodeWav(wav({ format, channels: 1, rate: 22050, bits, data: samplesOf(kind, values), extensible, extraChunk: true }));
      expect(a.encoding).toBe(encoding);
      expect(a.sampleRate).toBe(22050);
      expect(a.samples.length).toBe(values.length);
      a.samples.forEach((s, i) => expect(Math.abs(s - values[i])).toBeLessThan(tol));
    }
  });

  it('averages stereo to mono', () => {
    const a = decodeWav(wav({ format: 1, channels: 2, rate: 8000, bits: 16, data: samplesOf('s16', [0.5, -0.5, 0.5, 0.25]) }));
    expect(a.channels).toBe(2);
    expect(Array.from(a.samples).map((v) => Number(v.toFixed(3)))).toEqual([0, 0.375]);
  });

  it('decodes 16-bit PCM the same from an unaligned buffer (no typed-array fast path)', () => {
    const b = wav({ format: 1, channels: 2, rate: 8000, bits: 16, data: samplesOf('s16', [0.5, -0.25, 0.125, 0.75]) });
    const shifted = new Uint8Array(b.length + 1).subarray(1);
    shifted.set(b);
    expect(Array.from(decodeWav(shifted).samples)).toEqual(Array.from(decodeWav(b).samples));
  });

  it('round-trips encodeWav16', () => {
    const x = Float32Array.from([0, 0.5, -0.5, 1, -1]);
    const a = decodeWav(encodeWav16(x, 16000));
    a.samples.forEach((s, i) => expect(s).toBeCloseTo(x[i], 3));
  });

  it('takes the data present when the size field says streaming (0xFFFFFFFF)', () => {
    const b = wav({ format: 1, channels: 1, rate: 16000, bits: 16, data: samplesOf('s16', values) });
    new DataView(b.buffer).setUint32(40, 0xffffffff, true);
    expect(decodeWav(b).samples.length).toBe(values.length);
  });

  const mp3 = Uint8Array.from([0x49, 0x44, 0x33, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
  const ogg = new TextEncoder().encode('OggS\0\x02rest-of-page');
  it.each([
    ['empty', new Uint8Array(0), 'empty', /empty/],
    ['mp3', mp3, 'unsupported_format', /MP3/],
    ['ogg', ogg, 'unsupported_format', /Ogg/],
    ['text', new TextEncoder().encode('hello there, not audio'), 'unsupported_format', /not a WAV/],
    ['A-law', wav({ format: 6, channels: 1, rate: 8000, bits: 8, data: new Uint8Array(10) }), 'unsupported_codec', /A-law/],
    ['12-bit PCM', wav({ format: 1, channels: 1, rate: 8000, bits: 12, data: new Uint8Array(10) }), 'unsupported_codec', /12-bit/],
    ['no data', wav({ format: 1, channels: 1, rate: 8000, bits: 16, data: new Uint8Array(0) }), 'empty', /no audio/],
    ['header only', new TextEncoder().encode('RIFF\0\0\0\0WAVE'), 'malformed', /fmt/],
    ['rate 0', wav({ format: 1, channels: 1, rate: 0, bits: 16, data: new Uint8Array(10) }), 'malformed', /sample rate/],
  ])('refuses %s', (_name, bytes, kind, message) => {
    let err: unknown;
    try {
      decodeWav(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AudioFormatError);
    expect((err as AudioFormatError).kind).toBe(kind);
    expect((err as AudioFormatError).message).toMatch(message);
  });

  it('refuses audio over the duration limit from the header', () => {
    const b = wav({ format: 1, channels: 1, rate: 1000, bits: 16, data: new Uint8Array(4000) });
    expect(() => decodeWav(b, { maxDurationSeconds: 1 })).toThrow(/limit is 1 s/);
  });
});
