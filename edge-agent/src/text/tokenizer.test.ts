import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { WhisperTokenizer } from './tokenizer.js';

const tk = new WhisperTokenizer(JSON.parse(readFileSync(new URL('../../../models/tiny-whisper-synth/tokenizer.json', import.meta.url), 'utf8')));

describe('WhisperTokenizer (embedded model)', () => {
  it('knows the Whisper special tokens', () => {
    expect(['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|transcribe|>', '<|notimestamps|>'].map((t) => tk.specialId(t))).toEqual([0, 1000, 1001, 1003, 1007]);
    expect(() => tk.specialId('<|fr|>')).toThrow(/no token/);
  });

  it('decodes and skips special tokens', () => {
    const ids = tk.encode(' hello world');
    expect(tk.decode([1000, 1001, 1003, 1007, ...ids, 0])).toBe(' hello world');
    expect(tk.decode([1000, ...ids], { skipSpecial: false })).toBe('<|startoftranscript|> hello world');
  });

  it('round-trips the general corpus style text, including non-ASCII bytes', () => {
    for (const s of [" don't stop me now", ' the location of the status quo', ' ünïcode — ok', '   spaced   out ']) {
      expect(tk.decode(tk.encode(s))).toBe(s);
    }
  });

  it('encodes like the Hugging Face tokenizer (ids checked with transformers 5.24)', () => {
    // AutoTokenizer.from_pretrained(models/tiny-whisper-synth)(" hello world", add_special_tokens=False).input_ids
    expect(tk.encode(' hello world')).toEqual([374, 295, 79, 812]);
    expect(tk.encode(' the location of the status quo')).toEqual([290, 404, 67, 360, 333, 290, 315, 273, 320, 458, 79]);
  });
});
