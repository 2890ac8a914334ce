// Names of a model artifact's ONNX files (the optimum / transformers.js layout). Kept apart from
// whisper-model.ts so the main thread never loads onnxruntime-node: only inference workers do.

export type ModelDtype = 'int8' | 'fp32';

export function onnxFileNames(dtype: ModelDtype): { encoder: string; decoder: string } {
  const suffix = dtype === 'int8' ? '_quantized' : '';
  return { encoder: `onnx/encoder_model${suffix}.onnx`, decoder: `onnx/decoder_model_merged${suffix}.onnx` };
}
