// The log-mel front end on onnxruntime, the one the agent runs. Framing and Whisper's normalisation are
// shared with the JavaScript reference (log-mel.ts); the arithmetic in between runs in a small ONNX graph
// built here from preprocessor_config.json, on ORT's vectorised GEMM:
//   windowed frame y (n_fft samples) → even part e[j] = y[j] + y[n−j], odd part o[j] = y[j] − y[n−j]
//   Re X = e · C, Im X = o · S (cosine and sine tables over n/2 + 1 bins: half the multiplications of a
//   plain DFT matrix), power Re² + Im², mel = power · M (Slaney filters), log10(max(mel, 1e-10)).
// In float32; the features match the float64 reference to ~1e-5 (tested) and WhisperFeatureExtractor to
// the fixture's tolerance. Measured on this machine: see edge-agent/README.md (front end).
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { Framer, hannWindow, melFilterBank, normalizeLogMel } from './log-mel.js';
import type { PreprocessorConfig } from './log-mel.js';

const { onnx } = onnxProto;

function initializer(name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

function valueInfo(name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/**
 * The ONNX model: inputs even [T, n/2 + 1] and odd [T, n/2 − 1] (the window already applied), output
 * log10 mel power [T, nMels].
 */
export function logMelModel(config: PreprocessorConfig): Uint8Array {
  const n = config.n_fft;
  if (n % 2 !== 0) throw new Error(`n_fft must be even, got ${n}`);
  const h = n / 2;
  const bins = h + 1;
  const nMels = config.feature_size;
  // C[j][k] = cos(2πjk/n), j = 0 … n/2; S[j][k] = sin(2πjk/n), j = 1 … n/2 − 1 (float64, then rounded once).
  const C = new Float32Array(bins * bins);
  const S = new Float32Array((h - 1) * bins);
  for (let j = 0; j <= h; j++) for (let k = 0; k < bins; k++) C[j * bins + k] = Math.cos((2 * Math.PI * ((j * k) % n)) / n);
  for (let j = 1; j < h; j++) for (let k = 0; k < bins; k++) S[(j - 1) * bins + k] = Math.sin((2 * Math.PI * ((j * k) % n)) / n);
  const M = new Float32Array(bins * nMels);
  melFilterBank(bins, nMels, config.sampling_rate).forEach((f, m) => f.weights.forEach((w, i) => (M[(f.start + i) * nMels + m] = w)));
  const node = (op: string, input: string[], output: string): onnxProto.onnx.INodeProto => ({ opType: op, input, output: [output], name: output });
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'whisper_log_mel',
    node: [
      node('MatMul', ['even', 'C'], 're'),
      node('MatMul', ['odd', 'S'], 'im'),
      node('Mul', ['re', 're'], 're2'),
      node('Mul', ['im', 'im'], 'im2'),
      node('Add', ['re2', 'im2'], 'power'),
      node('MatMul', ['power', 'M'], 'mel'),
      node('Max', ['mel', 'floor'], 'mel_floored'),
      node('Log', ['mel_floored'], 'ln'),
      node('Mul', ['ln', 'inv_ln10'], 'log10_mel'),
    ],
    initializer: [
      initializer('C', [bins, bins], C),
      initializer('S', [h - 1, bins], S),
      initializer('M', [bins, nMels], M),
      initializer('floor', [], Float32Array.of(1e-10)),
      initializer('inv_ln10', [], Float32Array.of(1 / Math.LN10)),
    ],
    input: [valueInfo('even', ['T', bins]), valueInfo('odd', ['T', h - 1])],
    output: [valueInfo('log10_mel', ['T', nMels])],
  };
  return onnx.ModelProto.encode({ irVersion: 8, producerName: 'whisperops-edge-agent', opsetImport: [{ domain: '', version: 17 }], graph }).finish();
}

export class OnnxLogMel {
  private readonly framer: Framer;
  private readonly window: Float32Array;
  private readonly even: Float32Array;
  private readonly odd: Float32Array;

  private constructor(
    readonly config: PreprocessorConfig,
    private readonly session: ort.InferenceSession,
  ) {
    this.framer = new Framer(config);
    this.window = Float32Array.from(hannWindow(config.n_fft));
    const h = config.n_fft / 2;
    this.even = new Float32Array(config.nb_max_frames * (h + 1));
    this.odd = new Float32Array(config.nb_max_frames * (h - 1));
  }

  static async create(config: PreprocessorConfig, options: ort.InferenceSession.SessionOptions): Promise<OnnxLogMel> {
    return new OnnxLogMel(config, await ort.InferenceSession.create(logMelModel(config), options));
  }

  /** Same contract as LogMel.compute: features of `audio` into `out` (nMels × nb_max_frames). */
  async compute(audio: Float32Array, out: Float32Array = new Float32Array(this.config.feature_size * this.config.nb_max_frames)): Promise<Float32Array> {
    const { n_fft: n, hop_length: hop, feature_size: nMels, nb_max_frames: nFrames } = this.config;
    const h = n / 2;
    const { tLo, tHi } = this.framer.frame(audio);
    const T = tHi - tLo + 1;
    let maxLog = -Infinity;
    if (T > 0) {
      const x = this.framer.padded;
      const { even, odd, window: w } = this;
      for (let r = 0; r < T; r++) {
        const s = (tLo + r) * hop;
        const e = r * (h + 1);
        const o = r * (h - 1);
        even[e] = x[s] * w[0];
        even[e + h] = x[s + h] * w[h];
        for (let j = 1; j < h; j++) {
          const a = x[s + j] * w[j];
          const b = x[s + n - j] * w[n - j];
          even[e + j] = a + b;
          odd[o + j - 1] = a - b;
        }
      }
      const res = await this.session.run({
        even: new ort.Tensor('float32', even.subarray(0, T * (h + 1)), [T, h + 1]),
        odd: new ort.Tensor('float32', odd.subarray(0, T * (h - 1)), [T, h - 1]),
      });
      const mel = res.log10_mel?.data;
      if (!(mel instanceof Float32Array)) throw new Error('log-mel session returned no log10_mel');
      for (let r = 0; r < T; r++) {
        const t = tLo + r;
        for (let m = 0; m < nMels; m++) {
          const v = mel[r * nMels + m];
          out[m * nFrames + t] = v;
          if (v > maxLog) maxLog = v;
        }
      }
    }
    normalizeLogMel(out, nMels, nFrames, tLo, tHi, maxLog);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
