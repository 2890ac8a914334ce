// The decoder's key/value cache is sized per layer: config.json's whisperops_attention_heads (a
// head-pruned model, trainer-image compress.py) or decoder_attention_heads in every layer, checked
// against the merged decoder graph's declared past shapes. The real pruned model is loaded and served in
// test/trainer/agent-serves-compressed.test.ts; here the layout rules and the unpruned embedded model.
import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { EMBEDDED_MODEL } from '../testing/speech.js';
import { decoderHeadLayout, layoutMismatch, ModelLoadError } from './whisper-model.js';

const base = { decoder_layers: 2, decoder_attention_heads: 4 };

function pastInputs(decoder: number[], cross: number[], headDim = 64): ort.InferenceSession.ValueMetadata[] {
  return decoder.flatMap((d, l) =>
    ['key', 'value'].flatMap((kv) => [
      { name: `past_key_values.${l}.decoder.${kv}`, isTensor: true as const, type: 'float32' as const, shape: ['batch_size', d, 'past_decoder_sequence_length', headDim] },
      { name: `past_key_values.${l}.encoder.${kv}`, isTensor: true as const, type: 'float32' as const, shape: ['batch_size', cross[l] ?? 0, 'encoder_sequence_length', headDim] },
    ]),
  );
}

describe('decoderHeadLayout', () => {
  it('is decoder_attention_heads in every layer without the key (an unpruned model)', () => {
    expect(decoderHeadLayout(base)).toEqual({ decoder: [4, 4], cross: [4, 4] });
  });

  it('takes each layer\'s self- and cross-attention heads from whisperops_attention_heads', () => {
    expect(decoderHeadLayout({ ...base, whisperops_attention_heads: { encoder: [1, 4], decoder: [3, 1], cross: [2, 4] } })).toEqual({ decoder: [3, 1], cross: [2, 4] });
  });

  it.each([
    [{ decoder: [3, 1] }, 'whisperops_attention_heads.cross must list 2 head counts'],
    [{ decoder: [3], cross: [2, 4] }, 'whisperops_attention_heads.decoder must list 2 head counts (1..4)'],
    [{ decoder: [0, 1], cross: [2, 4] }, 'got [0,1]'],
    [{ decoder: [5, 1], cross: [2, 4] }, 'got [5,1]'],
    [{ decoder: [1.5, 1], cross: [2, 4] }, 'got [1.5,1]'],
    ['3,1', 'whisperops_attention_heads.decoder must list'],
  ])('refuses a malformed layout %j', (value, message) => {
    expect(() => decoderHeadLayout({ ...base, whisperops_attention_heads: value })).toThrow(ModelLoadError);
    expect(() => decoderHeadLayout({ ...base, whisperops_attention_heads: value })).toThrow(message);
  });
});

describe('layoutMismatch', () => {
  it('accepts a graph whose past inputs declare the layout\'s heads, or no fixed head count', () => {
    expect(layoutMismatch(pastInputs([3, 1], [2, 4]), { decoder: [3, 1], cross: [2, 4] }, 64)).toBeUndefined();
    const symbolic = pastInputs([3, 1], [2, 4]).map((m) => ({ ...m, shape: ['batch_size', 'heads', 'seq', 64] }));
    expect(layoutMismatch(symbolic, { decoder: [3, 1], cross: [2, 4] }, 64)).toBeUndefined();
  });

  it('names the first input whose heads, head size or presence disagree', () => {
    expect(layoutMismatch(pastInputs([3, 1], [2, 4]), { decoder: [3, 1], cross: [2, 3] }, 64)).toMatch(
      /^decoder_model_merged input past_key_values\.1\.encoder\.key has 4 heads but the layout gives layer 1 3 \(cross\[1\]/,
    );
    expect(layoutMismatch(pastInputs([3, 1], [2, 4]), { decoder: [4, 4], cross: [4, 4] }, 64)).toMatch(/past_key_values\.0\.decoder\.key has 3 heads but the layout gives layer 0 4/);
    expect(layoutMismatch(pastInputs([3, 1], [2, 4], 32), { decoder: [3, 1], cross: [2, 4] }, 64)).toMatch(/head size 32/);
    expect(layoutMismatch(pastInputs([3], [2]), { decoder: [3, 1], cross: [2, 4] }, 64)).toMatch(/has no input past_key_values\.1\.decoder\.key \(config\.json has 2 decoder layers\)/);
  });

  it('finds the embedded (unpruned) model\'s graph and config in agreement', async () => {
    const config = JSON.parse(readFileSync(join(EMBEDDED_MODEL, 'config.json'), 'utf8')) as { decoder_layers: number; decoder_attention_heads: number; d_model: number };
    const s = await ort.InferenceSession.create(join(EMBEDDED_MODEL, 'onnx', 'decoder_model_merged_quantized.onnx'));
    try {
      const layout = decoderHeadLayout(config);
      expect(layout).toEqual({ decoder: [4, 4, 4, 4], cross: [4, 4, 4, 4] });
      expect(layoutMismatch(s.inputMetadata, layout, config.d_model / config.decoder_attention_heads)).toBeUndefined();
      expect(layoutMismatch(s.inputMetadata, { ...layout, cross: [4, 4, 2, 4] }, 64)).toMatch(/past_key_values\.2\.encoder\.key has 4 heads but the layout gives layer 2 2/);
    } finally {
      await s.release();
    }
  });
});
