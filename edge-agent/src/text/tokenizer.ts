// Byte-level BPE tokenizer (GPT-2 / Whisper style) read from a Hugging Face tokenizer.json: decode
// for transcripts, encode for OpenAI's `prompt` parameter, and the ids of Whisper's special tokens.

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  decoder?: { type?: string };
}

/** GPT-2's byte ↔ unicode table: printable bytes map to themselves, the rest to code points ≥ 256. */
function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const map = new Map<number, string>();
  bs.forEach((b, i) => map.set(b, String.fromCodePoint(cs[i] ?? 0)));
  return map;
}

// GPT-2's pre-tokenizer pattern (the ByteLevel pre-tokenizer with use_regex).
const PRE_TOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export class TokenizerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }
}

export class WhisperTokenizer {
  private readonly idToToken: string[] = [];
  private readonly tokenToId = new Map<string, number>();
  private readonly special = new Set<number>();
  private readonly specialByName = new Map<string, number>();
  private readonly mergeRank = new Map<string, number>();
  private readonly byteEncoder = bytesToUnicode();
  private readonly byteDecoder = new Map<string, number>();
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false });
  private readonly bpeCache = new Map<string, number[]>();

  constructor(json: unknown) {
    const t = json as TokenizerJson;
    if (t.model?.type !== 'BPE' || !t.model.vocab) throw new TokenizerError('tokenizer.json: expected a BPE model with a vocab');
    for (const [tok, id] of Object.entries(t.model.vocab)) {
      this.idToToken[id] = tok;
      this.tokenToId.set(tok, id);
    }
    (t.model.merges ?? []).forEach((m, rank) => {
      const [a, b] = Array.isArray(m) ? m : m.split(' ');
      this.mergeRank.set(`${a} ${b}`, rank);
    });
    for (const added of t.added_tokens ?? []) {
      this.idToToken[added.id] = added.content;
      this.tokenToId.set(added.content, added.id);
      if (added.special !== false) {
        this.special.add(added.id);
        this.specialByName.set(added.content, added.id);
      }
    }
    for (const [b, ch] of this.byteEncoder) this.byteDecoder.set(ch, b);
  }

  get vocabSize(): number {
    return this.idToToken.length;
  }

  /** The id of a special token such as `<|endoftext|>`; throws when the tokenizer lacks it. */
  specialId(name: string): number {
    const id = this.specialByName.get(name) ?? this.tokenToId.get(name);
    if (id === undefined) throw new TokenizerError(`tokenizer has no token ${name}`);
    return id;
  }

  hasToken(name: string): boolean {
    return this.tokenToId.has(name);
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  /** Text of `ids`, special tokens skipped. Like transformers 5, no clean-up of spaces unless asked (it corrupts BPE output). */
  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean; cleanUp?: boolean } = {}): string {
    const skipSpecial = opts.skipSpecial ?? true;
    const bytes: number[] = [];
    let text = '';
    const flush = (): void => {
      if (bytes.length) text += this.utf8.decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] ?? -1;
      if (this.special.has(id)) {
        if (!skipSpecial) {
          flush();
          text += this.idToToken[id] ?? '';
        }
        continue;
      }
      const tok = this.idToToken[id];
      if (tok === undefined) continue;
      for (const ch of tok) {
        const b = this.byteDecoder.get(ch);
        if (b !== undefined) bytes.push(b);
      }
    }
    flush();
    return opts.cleanUp ? cleanUpTokenizationSpaces(text) : text;
  }

  /** Token ids of `text` (no special tokens added). */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const match of text.matchAll(PRE_TOKENIZE)) {
      const piece = Array.from(new TextEncoder().encode(match[0]), (b) => this.byteEncoder.get(b) ?? '').join('');
      out.push(...this.bpe(piece));
    }
    return out;
  }

  private bpe(piece: string): number[] {
    const cached = this.bpeCache.get(piece);
    if (cached) return cached;
    let parts = Array.from(piece);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const rank = this.mergeRank.get(`${parts[i]} ${parts[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const a = parts[best] ?? '';
      const b = parts[best + 1] ?? '';
      const merged: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(parts[i] ?? '');
      }
      parts = merged;
    }
    const ids: number[] = [];
    for (const p of parts) {
      const id = this.tokenToId.get(p);
      if (id !== undefined) ids.push(id);
      else for (const ch of p) {
        const single = this.tokenToId.get(ch);
        if (single !== undefined) ids.push(single);
      }
    }
    if (this.bpeCache.size < 10_000) this.bpeCache.set(piece, ids);
    return ids;
  }
}

/** transformers' `clean_up_tokenization`. */
export function cleanUpTokenizationSpaces(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
