// Names of a model artifact's ONNX files (the optimum / transformers.js layout). Kept apart from
// whisper-model.ts so the main thread never loads onnxruntime-node: only inference workers do.

export type ModelDtype = 'int8' | 'fp32';

/**
 * Windows one worker decodes together for a model under `--max-batch auto`: 4, except 1 for a model
 * quantized with *dynamic* INT8 — its activation scales are computed per run, so batch mates would change
 * each other's transcripts. A static INT8 model (manifest quantization "int8-static": fixed QDQ scales)
 * computes every row alone, so it is batched like fp32.
 */
export function autoMaxBatch(dtype: ModelDtype, quantization: string | undefined): number {
  return dtype === 'int8' && quantization !== 'int8-static' ? 1 : 4;
}

export function onnxFileNames(dtype: ModelDtype): { encoder: string; decoder: string } {
  const suffix = dtype === 'int8' ? '_quantized' : '';
  return { encoder: `onnx/encoder_model${suffix}.onnx`, decoder: `onnx/decoder_model_merged${suffix}.onnx` };
}

/** The role head's graph (trainer-image roles.py): last_hidden_state [B, T, d_model], valid_frames [B] → role_logits [B, R]. */
export const ROLE_HEAD_FILE = 'onnx/role_head.onnx';

/** Files the agent reads when an artifact lists them (beside requiredFiles): the speaker-role head. */
export const OPTIONAL_MODEL_FILES: readonly string[] = [ROLE_HEAD_FILE];
