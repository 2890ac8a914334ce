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

export class LogMel {
  private readonly rfft: RealPowerSpectrum;
  private readonly window: Float64Array;
  private readonly filters: SparseFilter[];
  /** The filters flattened: filter m covers bins melStart[m] … melStart[m] + melLen[m] − 1, weights from melOff[m]. */
  private readonly melStart: Int32Array;
  private readonly melLen: Int32Array;
  private readonly melOff: Int32Array;
  private readonly melW: Float64Array;
  private readonly nBins: number;
  private readonly power: Float64Array;
  private readonly padded: Float32Array;

  constructor(readonly config: PreprocessorConfig) {
    const { n_fft: nFft, feature_size: nMels, sampling_rate: sr, n_samples: nSamples } = config;
    this.rfft = new RealPowerSpectrum(nFft);
    this.window = new Float64Array(nFft);
    for (let i = 0; i < nFft; i++) this.window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / nFft);
    this.nBins = Math.floor(nFft / 2) + 1;
    this.filters = melFilterBank(this.nBins, nMels, sr);
    this.melStart = Int32Array.from(this.filters, (f) => f.start);
    this.melLen = Int32Array.from(this.filters, (f) => f.weights.length);
    this.melOff = new Int32Array(nMels);
    let off = 0;
    this.filters.forEach((f, m) => {
      this.melOff[m] = off;
      off += f.weights.length;
    });
    this.melW = new Float64Array(off);
    this.filters.forEach((f, m) => this.melW.set(f.weights, this.melOff[m]));
    this.power = new Float64Array(this.nBins);
    this.padded = new Float32Array(nSamples + 2 * Math.floor(nFft / 2));
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
    const { n_fft: nFft, hop_length: hop, n_samples: nSamples, feature_size: nMels, nb_max_frames: nFrames } = this.config;
    const half = Math.floor(nFft / 2);
    const len = Math.min(audio.length, nSamples);
    const padded = this.padded;
    padded.fill(0);
    padded.set(audio.subarray(0, len), half);
    // Reflect padding (numpy "reflect": the edge sample is not repeated).
    for (let i = 1; i <= half; i++) {
      padded[half - i] = padded[half + i];
      padded[half + nSamples - 1 + i] = padded[half + nSamples - 1 - i];
    }
    let firstNz = padded.length;
    let lastNz = -1;
    for (let i = 0; i < padded.length; i++) if (padded[i] !== 0) { firstNz = i; break; }
    for (let i = padded.length - 1; i >= 0; i--) if (padded[i] !== 0) { lastNz = i; break; }
    const LOG_FLOOR = -10; // log10(1e-10)
    let maxLog = -Infinity;
    const { power, window, melStart, melLen, melOff, melW } = this;
    for (let t = 0; t < nFrames; t++) {
      const start = t * hop;
      if (start > lastNz || start + nFft - 1 < firstNz) {
        for (let m = 0; m < nMels; m++) out[m * nFrames + t] = LOG_FLOOR;
        maxLog = Math.max(maxLog, LOG_FLOOR);
        continue;
      }
      this.rfft.compute(padded, start, window, power);
      for (let m = 0; m < nMels; m++) {
        const b0 = melStart[m];
        const w0 = melOff[m];
        const len = melLen[m];
        let acc = 0;
        for (let j = 0; j < len; j++) acc += melW[w0 + j] * power[b0 + j];
        const v = Math.log10(acc > 1e-10 ? acc : 1e-10);
        out[m * nFrames + t] = v;
        if (v > maxLog) maxLog = v;
      }
    }
    const floor = maxLog - 8;
    for (let i = 0; i < nMels * nFrames; i++) {
      const v = out[i] < floor ? floor : out[i];
      out[i] = (v + 4) / 4;
    }
    return out;
  }
}
