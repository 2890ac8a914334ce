// Whisper's log-mel front end, numerically equal (to float rounding) to transformers'
// WhisperFeatureExtractor: periodic Hann window, centred STFT with reflect padding, power spectrum,
// Slaney-style mel filter bank, log10 with floor 1e-10, clamp to (max - 8), then (x + 4) / 4.
// One call turns at most `nSamples` samples (zero-padded) into `nbMaxFrames` frames.
import { RealPowerSpectrum } from './fft.js';

export interface PreprocessorConfig {
  feature_size: number;
  sampling_rate: number;
  hop_length: number;
  n_fft: number;
  n_samples: number;
  nb_max_frames: number;
  chunk_length?: number;
  dither?: number;
  padding_value?: number;
}

export function parsePreprocessorConfig(value: unknown): PreprocessorConfig {
  const v = value as Partial<PreprocessorConfig> | null;
  const need = ['feature_size', 'sampling_rate', 'hop_length', 'n_fft', 'n_samples', 'nb_max_frames'] as const;
  for (const k of need) {
    if (!v || typeof v[k] !== 'number' || !Number.isInteger(v[k]) || (v[k] ?? 0) <= 0) {
      throw new Error(`preprocessor_config.json: "${k}" must be a positive integer`);
    }
  }
  return v as PreprocessorConfig;
}

function hzToMel(f: number): number {
  const minLogHz = 1000;
  const minLogMel = 15;
  const logstep = 27 / Math.log(6.4);
  return f < minLogHz ? (3 * f) / 200 : minLogMel + Math.log(f / minLogHz) * logstep;
}

function melToHz(m: number): number {
  const minLogHz = 1000;
  const minLogMel = 15;
  const logstep = Math.log(6.4) / 27;
  return m < minLogMel ? (200 * m) / 3 : minLogHz * Math.exp(logstep * (m - minLogMel));
}

interface SparseFilter {
  start: number;
  weights: Float64Array;
}

/** Slaney mel filters over `nBins` FFT bins (0..sr/2), as in transformers' mel_filter_bank(norm="slaney"). */
export function melFilterBank(nBins: number, nMels: number, sampleRate: number): SparseFilter[] {
  const melMin = hzToMel(0);
  const melMax = hzToMel(sampleRate / 2);
  const filterFreqs = new Float64Array(nMels + 2);
  for (let i = 0; i < nMels + 2; i++) filterFreqs[i] = melToHz(melMin + ((melMax - melMin) * i) / (nMels + 1));
  const fftFreqs = new Float64Array(nBins);
  for (let i = 0; i < nBins; i++) fftFreqs[i] = ((Math.floor(sampleRate / 2)) * i) / (nBins - 1);
  const filters: SparseFilter[] = [];
  for (let m = 0; m < nMels; m++) {
    const lo = filterFreqs[m];
    const mid = filterFreqs[m + 1];
    const hi = filterFreqs[m + 2];
    const enorm = 2 / (hi - lo);
    const w: number[] = [];
    let start = -1;
    for (let b = 0; b < nBins; b++) {
      const down = (fftFreqs[b] - lo) / (mid - lo);
      const up = (hi - fftFreqs[b]) / (hi - mid);
      const v = Math.max(0, Math.min(down, up)) * enorm;
      if (v > 0) {
        if (start < 0) start = b;
        while (start + w.length < b) w.push(0);
        w.push(v);
      }
    }
    filters.push({ start: Math.max(0, start), weights: Float64Array.from(w) });
  }
  return filters;
}

/**
 * Whisper's framing: the audio (at most n_samples, zero-padded to n_samples) with n_fft/2 samples of
 * reflect padding on each side (numpy "reflect": the edge sample is not repeated); frame t starts at
 * t · hop. Only frames tLo … tHi can see audio: the others hold zeros, whose log-mel is the floor.
 * The buffer is reused across calls; only the part a call uses is written.
 */
export class Framer {
  readonly padded: Float32Array;
  /** End of the part of `padded` the last call wrote (beyond it, zeros). */
  private dirty = 0;

  constructor(readonly config: PreprocessorConfig) {
    this.padded = new Float32Array(config.n_samples + 2 * Math.floor(config.n_fft / 2));
  }

  /** Pads `audio` into `padded`; returns the frames that see audio (tLo > tHi when none does). */
  frame(audio: Float32Array): { tLo: number; tHi: number } {
    const { n_fft: nFft, hop_length: hop, n_samples: nSamples, nb_max_frames: nFrames } = this.config;
    const half = Math.floor(nFft / 2);
    const len = Math.min(audio.length, nSamples);
    const padded = this.padded;
    const used = half + len;
    if (this.dirty > used) padded.fill(0, used, this.dirty);
    padded.set(audio.subarray(0, len), half);
    for (let i = 1; i <= half; i++) padded[half - i] = padded[half + i];
    this.dirty = used;
    if (len >= nSamples - half) {
      // The end padding reflects audio only when the audio reaches into the last half window.
      for (let i = 1; i <= half; i++) padded[half + nSamples - 1 + i] = padded[half + nSamples - 1 - i];
      this.dirty = padded.length;
    }
    let firstNz = padded.length;
    let lastNz = -1;
    for (let i = 0; i < this.dirty; i++) if (padded[i] !== 0) { firstNz = i; break; }
    for (let i = this.dirty - 1; i >= 0; i--) if (padded[i] !== 0) { lastNz = i; break; }
    if (lastNz < 0) return { tLo: nFrames, tHi: -1 };
    return { tLo: Math.max(0, Math.ceil((firstNz - nFft + 1) / hop)), tHi: Math.min(nFrames - 1, Math.floor(lastNz / hop)) };
  }
}

const LOG_FLOOR = -10; // log10(1e-10)

/**
 * Whisper's normalisation of log10 mel power `out` (nMels × nFrames, row-major), where only frames
 * tLo … tHi are written and `maxLog` is their maximum: frames without audio take the floor, everything is
 * clamped to (max − 8), then mapped to (x + 4) / 4.
 */
export function normalizeLogMel(out: Float32Array, nMels: number, nFrames: number, tLo: number, tHi: number, maxLog: number): void {
  const max = tLo > 0 || tHi < nFrames - 1 ? Math.max(maxLog, LOG_FLOOR) : maxLog;
  const floor = max - 8;
  const silent = ((LOG_FLOOR < floor ? floor : LOG_FLOOR) + 4) / 4;
  for (let m = 0; m < nMels; m++) {
    const row = m * nFrames;
    if (tLo > 0) out.fill(silent, row, row + Math.min(tLo, nFrames));
    for (let i = row + tLo; i <= row + tHi; i++) {
      const v = out[i] < floor ? floor : out[i];
      out[i] = (v + 4) / 4;
    }
    if (tHi < nFrames - 1) out.fill(silent, row + Math.max(tHi + 1, tLo), row + nFrames);
  }
}

/** The log-mel front end in JavaScript (float64 FFT); the reference the ONNX front end is tested against. */
export class LogMel {
  private readonly rfft: RealPowerSpectrum;
  private readonly window: Float64Array;
  /** The filters flattened: filter m covers bins melStart[m] … melStart[m] + melLen[m] − 1, weights from melOff[m]. */
  private readonly melStart: Int32Array;
  private readonly melLen: Int32Array;
  private readonly melOff: Int32Array;
  private readonly melW: Float64Array;
  private readonly power: Float64Array;
  private readonly framer: Framer;

  constructor(readonly config: PreprocessorConfig) {
    const { n_fft: nFft, feature_size: nMels, sampling_rate: sr } = config;
    this.rfft = new RealPowerSpectrum(nFft);
    this.window = hannWindow(nFft);
    const nBins = Math.floor(nFft / 2) + 1;
    const filters = melFilterBank(nBins, nMels, sr);
    this.melStart = Int32Array.from(filters, (f) => f.start);
    this.melLen = Int32Array.from(filters, (f) => f.weights.length);
    this.melOff = new Int32Array(nMels);
    let off = 0;
    filters.forEach((f, m) => {
      this.melOff[m] = off;
      off += f.weights.length;
    });
    this.melW = new Float64Array(off);
    filters.forEach((f, m) => this.melW.set(f.weights, this.melOff[m]));
    this.power = new Float64Array(nBins);
    this.framer = new Framer(config);
  }

  /** Frames per window (the encoder's input length). */
  get frames(): number {
    return this.config.nb_max_frames;
  }

  /**
   * Log-mel features of `audio` (16 kHz mono, at most n_samples; zero-padded to n_samples), written to
   * `out` (nMels × nb_max_frames, row-major, as the encoder's `input_features` expects).
   */
  compute(audio: Float32Array, out: Float32Array = new Float32Array(this.config.feature_size * this.config.nb_max_frames)): Float32Array {
    const { hop_length: hop, feature_size: nMels, nb_max_frames: nFrames } = this.config;
    const { tLo, tHi } = this.framer.frame(audio);
    const padded = this.framer.padded;
    let maxLog = -Infinity;
    const { power, window, melStart, melLen, melOff, melW } = this;
    for (let t = tLo; t <= tHi; t++) {
      this.rfft.compute(padded, t * hop, window, power);
      for (let m = 0; m < nMels; m++) {
        const b0 = melStart[m];
        const w0 = melOff[m];
        const n = melLen[m];
        let acc = 0;
        for (let j = 0; j < n; j++) acc += melW[w0 + j] * power[b0 + j];
        const v = Math.log10(acc > 1e-10 ? acc : 1e-10);
        out[m * nFrames + t] = v;
        if (v > maxLog) maxLog = v;
      }
    }
    normalizeLogMel(out, nMels, nFrames, tLo, tHi, maxLog);
    return out;
  }
}

/** Periodic Hann window of length n (numpy: hann(n + 1)[:-1]). */
export function hannWindow(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}
