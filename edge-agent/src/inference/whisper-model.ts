// One Whisper model on onnxruntime-node: the optimum/transformers.js ONNX layout
// (onnx/encoder_model{suffix}.onnx + onnx/decoder_model_merged{suffix}.onnx with use_cache_branch,
// past_key_values.* inputs and present.* outputs), the model's own preprocessor, generation config and
// tokenizer. Greedy (or temperature) decoding with the KV cache, batched over windows of equal prompt
// length. `InferenceSession.run` blocks the calling thread, so this class lives in a worker thread.
// A model whose config.json names speaker roles (whisperops_speaker_roles, trainer-image roles.py) has a
// role head, onnx/role_head.onnx: run on each batch's encoder output, it gives every window's role
// probabilities. A model without one is decoded exactly as before.
// A head-pruned model (trainer-image compress.py) has its own number of heads in every decoder layer's
// self-attention and cross-attention: config.json's whisperops_attention_heads lists them ({decoder: [...],
// cross: [...]} per layer) and the merged decoder's past_key_values.* inputs declare them; the cache of
// each layer is sized from that layout (uniform decoder_attention_heads without the key), and a model
// whose layout and graph disagree is refused at load.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parsePreprocessorConfig } from '../audio/log-mel.js';
import { OnnxLogMel } from '../audio/log-mel-onnx.js';
import type { PreprocessorConfig } from '../audio/log-mel.js';
import { WhisperTokenizer } from '../text/tokenizer.js';
import { onnxFileNames, ROLE_HEAD_FILE } from './model-files.js';
import type { ModelDtype } from './model-files.js';

export type { ModelDtype } from './model-files.js';

export interface SessionOptions {
  dtype: ModelDtype;
  /** ORT intra-op threads per session (explicit: several sessions share the cores). */
  intraOpThreads: number;
  /** ORT execution providers in order of preference, e.g. ["cuda", "cpu"]. */
  executionProviders: string[];
}

export class ModelLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelLoadError';
  }
}

interface ModelConfig {
  decoder_layers: number;
  decoder_attention_heads: number;
  d_model: number;
  max_source_positions: number;
  max_target_positions: number;
  vocab_size: number;
  /** Speaker roles of the model's role head, in the order of its logits (absent: no head). */
  whisperops_speaker_roles?: unknown;
  /** Heads per layer of a head-pruned model: {encoder, decoder, cross} (absent: uniform). */
  whisperops_attention_heads?: unknown;
}

/** Heads of each decoder layer's self-attention (decoder) and cross-attention (cross). */
export interface DecoderHeadLayout {
  decoder: number[];
  cross: number[];
}

/**
 * The decoder's head layout a config.json gives: whisperops_attention_heads' decoder and cross lists
 * (one positive integer per decoder layer, at most decoder_attention_heads), or decoder_attention_heads
 * in every layer when the key is absent. ModelLoadError when the entry is malformed.
 */
export function decoderHeadLayout(config: Pick<ModelConfig, 'decoder_layers' | 'decoder_attention_heads' | 'whisperops_attention_heads'>): DecoderHeadLayout {
  const L = config.decoder_layers;
  const H = config.decoder_attention_heads;
  const value = config.whisperops_attention_heads;
  if (value === undefined || value === null) return { decoder: new Array<number>(L).fill(H), cross: new Array<number>(L).fill(H) };
  const out: Partial<DecoderHeadLayout> = {};
  for (const kind of ['decoder', 'cross'] as const) {
    const list = typeof value === 'object' ? (value as Record<string, unknown>)[kind] : undefined;
    if (!Array.isArray(list) || list.length !== L || !list.every((h) => Number.isInteger(h) && (h as number) >= 1 && (h as number) <= H)) {
      throw new ModelLoadError(`config.json whisperops_attention_heads.${kind} must list ${L} head counts (1..${H}), one per decoder layer, got ${JSON.stringify(list ?? null).slice(0, 200)}`);
    }
    out[kind] = list as number[];
  }
  return out as DecoderHeadLayout;
}

/**
 * Checks the merged decoder's past_key_values.{l}.{decoder,encoder}.{key,value} inputs against the
 * layout: present for every layer, and where the graph declares a fixed head count or head size, equal
 * to the layout's and to d_model / decoder_attention_heads. Returns a description of the first
 * disagreement, undefined when they agree.
 */
export function layoutMismatch(inputs: readonly ort.InferenceSession.ValueMetadata[], layout: DecoderHeadLayout, headDim: number): string | undefined {
  const byName = new Map(inputs.map((m) => [m.name, m]));
  for (let l = 0; l < layout.decoder.length; l++) {
    for (const [kind, key] of [['decoder', 'decoder'], ['encoder', 'cross']] as const) {
      const want = layout[key][l];
      for (const kv of ['key', 'value']) {
        const name = `past_key_values.${l}.${kind}.${kv}`;
        const meta = byName.get(name);
        if (!meta) return `decoder_model_merged has no input ${name} (config.json has ${layout.decoder.length} decoder layers)`;
        if (!meta.isTensor || meta.shape.length === 0) continue; // no declared shape: nothing to check
        const [, heads, , dim] = meta.shape;
        if (typeof heads === 'number' && heads !== want) {
          return `decoder_model_merged input ${name} has ${heads} heads but the layout gives layer ${l} ${want} (${key === 'cross' ? 'cross' : 'decoder'}[${l}] of config.json whisperops_attention_heads, or decoder_attention_heads when it is absent)`;
        }
        if (typeof dim === 'number' && dim !== headDim) return `decoder_model_merged input ${name} has head size ${dim}, config.json gives d_model / decoder_attention_heads = ${headDim}`;
      }
    }
  }
  return undefined;
}

interface GenerationConfig {
  decoder_start_token_id?: number;
  eos_token_id?: number;
  max_length?: number;
  begin_suppress_tokens?: number[];
  suppress_tokens?: number[];
  lang_to_id?: Record<string, number>;
  task_to_id?: Record<string, number>;
  no_timestamps_token_id?: number;
}

export interface DecodeRequest {
  features: Float32Array;
  /** Token ids that precede the start-of-transcript sequence (<|startofprev|> + prompt), may be empty. */
  previous: number[];
  /** Tokens the transcript is forced to start with (after the task tokens); part of the result. */
  forced?: number[];
  language: string;
  temperature: number;
  /** Encoder frames that hold audio (validFrames()); the role head pools over these only. Default: all. */
  validFrames?: number;
}

export interface DecodeResult {
  tokens: number[];
  text: string;
  /** Mean log-probability of the generated tokens (OpenAI's avg_logprob). */
  avgLogprob: number;
  encoderMs: number;
  decoderMs: number;
  /** Probability of each role (model.roles order), when the model has a role head. */
  roleProbs?: number[];
}

/** The roles a config.json names: undefined when none; ModelLoadError when the entry is malformed. */
function parseRoles(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length < 2 || !value.every((r) => typeof r === 'string' && r.length > 0) || new Set(value).size !== value.length) {
    throw new ModelLoadError(`config.json whisperops_speaker_roles must list at least 2 distinct role names, got ${JSON.stringify(value).slice(0, 200)}`);
  }
  return value as string[];
}

function softmax(row: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i] ?? -Infinity);
  const e = Array.from({ length: row.length }, (_, i) => Math.exp((row[i] ?? -Infinity) - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

function readJson(dir: string, name: string): unknown {
  try {
    return JSON.parse(readFileSync(join(dir, name), 'utf8'));
  } catch (err) {
    throw new ModelLoadError(`cannot read ${name} in ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * How a batch of n rows keeps the positions `live` (ascending) in its first live.length rows: each live
 * row from the tail moves into the first free position before it ([from, to] pairs), so only as many
 * rows are copied as windows ended among the first live.length positions — not every row behind them.
 */
export function compactRows(live: number[]): [number, number][] {
  const k = live.length;
  const keep = new Set(live);
  const holes = Array.from({ length: k }, (_, p) => p).filter((p) => !keep.has(p));
  const tail = live.filter((p) => p >= k);
  return tail.map((from, i) => [from, holes[i] ?? 0] as [number, number]);
}

/** The first k entries of a per-row list after `moves` (compactRows), as dropRows leaves the tensors. */
export function moveRows<T>(xs: readonly T[], moves: [number, number][], k: number): T[] {
  const out = [...xs];
  for (const [from, to] of moves) out[to] = xs[from];
  return out.slice(0, k);
}

/**
 * A batch-major tensor [n, …] cut to its first k rows after `moves` (compactRows): rows copied in place
 * (the tensor is this decode's own: a session output), the result a view of the same buffer.
 */
function dropRows(t: ort.Tensor, n: number, moves: [number, number][], k: number): ort.Tensor {
  const data = t.data as Float32Array;
  const size = data.length / n;
  for (const [from, to] of moves) data.copyWithin(to * size, from * size, (from + 1) * size);
  return new ort.Tensor('float32', data.subarray(0, k * size), [k, ...t.dims.slice(1)]);
}

export class WhisperModel {
  /** The log-mel front end (an ORT session of its own; see audio/log-mel-onnx.ts). */
  readonly logMel: OnnxLogMel;
  readonly tokenizer: WhisperTokenizer;
  readonly preprocessor: PreprocessorConfig;
  readonly windowSamples: number;
  private readonly eos: number;
  private readonly sot: number;
  private readonly transcribeId: number;
  private readonly noTimestamps: number | undefined;
  private readonly langIds: Map<string, number>;
  private readonly maxLength: number;
  private readonly beginSuppress: number[];
  private readonly suppress: number[];
  private readonly layers: number;
  /** Heads of each decoder layer's self-attention and cross-attention cache (head-pruned models differ per layer). */
  private readonly headLayout: DecoderHeadLayout;
  private readonly headDim: number;
  private readonly vocab: number;
  private readonly decoderHasCacheBranch: boolean;
  /** Speaker roles of the role head (empty: the model has none). */
  readonly roles: string[];
  private readonly encoderFrames: number;
  /**
   * Outputs fetched after the first decoder step: logits and the self-attention cache. The cross-attention
   * cache (present.*.encoder.*, 4 × 2 × 512 KiB for tiny-whisper-synth) is fixed after step 0, so it is
   * not copied out again on every step. Undefined when the decoder lacks one of these outputs.
   */
  private readonly cachedStepOutputs: string[] | undefined;

  private constructor(
    readonly dir: string,
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    logMel: OnnxLogMel,
    config: ModelConfig,
    gen: GenerationConfig,
    preprocessor: PreprocessorConfig,
    tokenizer: WhisperTokenizer,
    private readonly roleHead: ort.InferenceSession | undefined,
    roles: string[],
  ) {
    this.roles = roles;
    this.encoderFrames = config.max_source_positions;
    this.preprocessor = preprocessor;
    this.logMel = logMel;
    this.tokenizer = tokenizer;
    // The encoder takes exactly 2 × max_source_positions frames (10 s for tiny-whisper-synth, 30 s for Whisper).
    const frames = 2 * config.max_source_positions;
    if (frames !== preprocessor.nb_max_frames) {
      throw new ModelLoadError(`preprocessor nb_max_frames ${preprocessor.nb_max_frames} != 2 × max_source_positions (${frames})`);
    }
    this.windowSamples = frames * preprocessor.hop_length;
    this.eos = gen.eos_token_id ?? tokenizer.specialId('<|endoftext|>');
    this.sot = gen.decoder_start_token_id ?? tokenizer.specialId('<|startoftranscript|>');
    this.transcribeId = gen.task_to_id?.transcribe ?? tokenizer.specialId('<|transcribe|>');
    this.noTimestamps = gen.no_timestamps_token_id ?? (tokenizer.hasToken('<|notimestamps|>') ? tokenizer.specialId('<|notimestamps|>') : undefined);
    this.langIds = new Map(Object.entries(gen.lang_to_id ?? {}).map(([k, v]) => [k.replace(/^<\|(.*)\|>$/, '$1'), v]));
    if (this.langIds.size === 0 && tokenizer.hasToken('<|en|>')) this.langIds.set('en', tokenizer.specialId('<|en|>'));
    this.maxLength = Math.min(gen.max_length ?? config.max_target_positions, config.max_target_positions);
    this.beginSuppress = gen.begin_suppress_tokens ?? [];
    this.suppress = gen.suppress_tokens ?? [];
    this.layers = config.decoder_layers;
    this.headDim = config.d_model / config.decoder_attention_heads;
    this.headLayout = decoderHeadLayout(config);
    this.vocab = config.vocab_size;
    this.decoderHasCacheBranch = decoder.inputNames.includes('use_cache_branch');
    const stepOutputs = ['logits', ...Array.from({ length: this.layers }, (_, l) => [`present.${l}.decoder.key`, `present.${l}.decoder.value`]).flat()];
    this.cachedStepOutputs = stepOutputs.every((n) => decoder.outputNames.includes(n)) ? stepOutputs : undefined;
    for (const name of ['input_ids', 'encoder_hidden_states', 'past_key_values.0.decoder.key', 'past_key_values.0.encoder.key']) {
      if (!decoder.inputNames.includes(name)) throw new ModelLoadError(`decoder_model_merged has no input ${name} (not an optimum merged decoder with past)`);
    }
    const mismatch = layoutMismatch(decoder.inputMetadata, this.headLayout, this.headDim);
    if (mismatch) throw new ModelLoadError(`${mismatch} — the config.json and ONNX graphs in ${dir} are not the same model`);
  }

  static async load(dir: string, opts: SessionOptions): Promise<WhisperModel> {
    const config = readJson(dir, 'config.json') as ModelConfig;
    const gen = readJson(dir, 'generation_config.json') as GenerationConfig;
    const pre = parsePreprocessorConfig(readJson(dir, 'preprocessor_config.json'));
    const tokenizer = new WhisperTokenizer(readJson(dir, 'tokenizer.json'));
    const files = onnxFileNames(opts.dtype);
    const roles = parseRoles(config.whisperops_speaker_roles);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: opts.executionProviders,
      intraOpNumThreads: opts.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    };
    let encoder: ort.InferenceSession | undefined;
    let logMel: OnnxLogMel | undefined;
    let decoder: ort.InferenceSession | undefined;
    let roleHead: ort.InferenceSession | undefined;
    try {
      encoder = await ort.InferenceSession.create(join(dir, files.encoder), sessionOptions);
      decoder = await ort.InferenceSession.create(join(dir, files.decoder), sessionOptions);
      // The front end is a few matrix products: the CPU provider, whatever the model runs on.
      logMel = await OnnxLogMel.create(pre, { ...sessionOptions, executionProviders: ['cpu'] });
      // The role head is a few thousand weights: the CPU provider, one thread.
      if (roles) roleHead = await WhisperModel.loadRoleHead(dir, roles, config, { ...sessionOptions, executionProviders: ['cpu'], intraOpNumThreads: 1 });
      return new WhisperModel(dir, encoder, decoder, logMel, config, gen, pre, tokenizer, roleHead, roles ?? []);
    } catch (err) {
      await encoder?.release();
      await decoder?.release();
      await roleHead?.release();
      await logMel?.release(); // also when the constructor refuses the model (e.g. a head layout the graph does not have)
      if (err instanceof ModelLoadError) throw err;
      throw new ModelLoadError(`cannot load ONNX sessions from ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The role head of a model whose config.json names roles, checked before it can serve: its inputs and
   * output by name, and a run on a zero encoder output that must give [1, roles.length] finite logits.
   */
  private static async loadRoleHead(dir: string, roles: string[], config: ModelConfig, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
    const what = `role head ${ROLE_HEAD_FILE} (config.json names ${roles.length} roles: ${roles.join(', ')})`;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(join(dir, ROLE_HEAD_FILE), options);
    } catch (err) {
      throw new ModelLoadError(`cannot load ${what} from ${dir}: ${(err as Error).message}`, { cause: err });
    }
    try {
      for (const name of ['last_hidden_state', 'valid_frames']) {
        if (!session.inputNames.includes(name)) throw new Error(`it has no input ${name} (inputs: ${session.inputNames.join(', ')})`);
      }
      if (!session.outputNames.includes('role_logits')) throw new Error(`it has no output role_logits (outputs: ${session.outputNames.join(', ')})`);
      const t = config.max_source_positions;
      const out = await session.run({
        last_hidden_state: new ort.Tensor('float32', new Float32Array(t * config.d_model), [1, t, config.d_model]),
        valid_frames: new ort.Tensor('int64', BigInt64Array.from([BigInt(t)]), [1]),
      });
      const logits = out.role_logits;
      if (!logits || logits.dims.length !== 2 || logits.dims[0] !== 1 || logits.dims[1] !== roles.length) {
        throw new Error(`it gives role_logits of shape [${logits?.dims.join(', ') ?? ''}] for one window, not [1, ${roles.length}]`);
      }
      if (!Array.from(logits.data as Float32Array).every(Number.isFinite)) throw new Error('it gives non-finite logits');
      return session;
    } catch (err) {
      await session.release();
      throw new ModelLoadError(`${what} in ${dir} does not fit the model: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Encoder frames that hold `samples` of audio: the front end's samples/hop + 1 frames, halved (rounded up) by the encoder's stride-2 convolution. */
  validFrames(samples: number): number {
    const mel = Math.floor(samples / this.preprocessor.hop_length) + 1;
    return Math.max(1, Math.min(this.encoderFrames, Math.ceil(mel / 2)));
  }

  get languages(): string[] {
    return [...this.langIds.keys()];
  }

  /** The decoder prompt: [previous…] <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>. */
  promptIds(language: string, previous: number[] = []): number[] {
    const lang = this.langIds.get(language);
    if (lang === undefined) throw new Error(`language "${language}" is not supported by this model (${this.languages.join(', ')})`);
    const ids = [...previous, this.sot, lang, this.transcribeId];
    if (this.noTimestamps !== undefined) ids.push(this.noTimestamps);
    return ids;
  }

  /** <|startofprev|> + the last tokens of `prompt` (Whisper keeps at most max_length/2 − 1). */
  previousIds(prompt: string): number[] {
    if (!prompt.trim() || !this.tokenizer.hasToken('<|startofprev|>')) return [];
    const ids = this.tokenizer.encode(' ' + prompt.trim());
    return [this.tokenizer.specialId('<|startofprev|>'), ...ids.slice(-(Math.floor(this.maxLength / 2) - 1))];
  }

  /** Token ids of text a transcript is forced to start with (transcripts carry a leading space). */
  forcedIds(text: string): number[] {
    return this.tokenizer.encode(' ' + text.trim()).slice(0, Math.floor(this.maxLength / 2));
  }

  async release(): Promise<void> {
    await this.encoder.release();
    await this.decoder.release();
    await this.logMel.release();
    await this.roleHead?.release();
  }

  /** Decodes windows; requests with different prompt lengths are run as separate batches. */
  async decode(requests: DecodeRequest[]): Promise<DecodeResult[]> {
    const results = new Array<DecodeResult>(requests.length);
    const groups = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const key = `${r.previous.length}:${r.forced?.length ?? 0}:${r.language}`;
      const g = groups.get(key) ?? [];
      g.push(i);
      groups.set(key, g);
    });
    for (const idx of groups.values()) {
      const out = await this.decodeSameLength(idx.map((i) => requests[i]));
      idx.forEach((i, j) => (results[i] = out[j]));
    }
    return results;
  }

  private async decodeSameLength(reqs: DecodeRequest[]): Promise<DecodeResult[]> {
    const B = reqs.length;
    const frames = this.preprocessor.nb_max_frames;
    const nMels = this.preprocessor.feature_size;
    const t0 = performance.now();
    let feats: Float32Array;
    if (B === 1 && reqs[0]) feats = reqs[0].features; // no copy for a single window
    else {
      feats = new Float32Array(B * nMels * frames);
      reqs.forEach((r, b) => feats.set(r.features, b * nMels * frames));
    }
    const enc = await this.encoder.run({ input_features: new ort.Tensor('float32', feats, [B, nMels, frames]) });
    const hidden = enc.last_hidden_state;
    if (!hidden) throw new Error('encoder returned no last_hidden_state');
    const roleProbs = this.roleHead ? await this.runRoleHead(this.roleHead, hidden, reqs) : undefined;
    const t1 = performance.now();

    const prompts = reqs.map((r) => [...this.promptIds(r.language, r.previous), ...(r.forced ?? [])]);
    const promptLen = prompts[0]?.length ?? 0;
    const tokens: number[][] = reqs.map((r) => [...(r.forced ?? [])]);
    const logprobs = new Array<number>(B).fill(0);
    const done = new Array<boolean>(B).fill(false);
    let inputIds = new BigInt64Array(B * promptLen);
    prompts.forEach((p, b) => p.forEach((id, j) => (inputIds[b * promptLen + j] = BigInt(id))));
    let stepLen = promptLen;
    const past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < this.layers; l++) {
      for (const [kind, heads] of [['decoder', this.headLayout.decoder[l]], ['encoder', this.headLayout.cross[l]]] as const) {
        const empty = new ort.Tensor('float32', new Float32Array(0), [B, heads ?? 0, 0, this.headDim]);
        past[`past_key_values.${l}.${kind}.key`] = empty;
        past[`past_key_values.${l}.${kind}.value`] = empty;
      }
    }
    const maxNew = this.maxLength - promptLen;
    // rows[p]: the request at batch position p. A window that has ended leaves the batch (compactRows).
    let rows = reqs.map((_, b) => b);
    let hiddenRows: ort.Tensor = hidden;
    for (let step = 0; step < maxNew; step++) {
      const n = rows.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', inputIds, [n, stepLen]),
        encoder_hidden_states: hiddenRows,
        ...past,
      };
      if (this.decoderHasCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([step > 0 ? 1 : 0]), [1]);
      const out = step > 0 && this.cachedStepOutputs ? await this.decoder.run(feeds, this.cachedStepOutputs) : await this.decoder.run(feeds);
      for (let l = 0; l < this.layers; l++) {
        for (const kv of ['key', 'value']) {
          const dec = out[`present.${l}.decoder.${kv}`];
          if (dec) past[`past_key_values.${l}.decoder.${kv}`] = dec;
          // The encoder's cross-attention cache is computed on the first step only.
          const encKv = out[`present.${l}.encoder.${kv}`];
          if (step === 0 && encKv) past[`past_key_values.${l}.encoder.${kv}`] = encKv;
        }
      }
      const logitsT = out.logits;
      if (!logitsT) throw new Error('decoder returned no logits');
      const logits = logitsT.data as Float32Array;
      const next: bigint[] = [];
      for (let p = 0; p < n; p++) {
        const b = rows[p] ?? 0;
        const base = (p * stepLen + stepLen - 1) * this.vocab;
        const row = logits.subarray(base, base + this.vocab);
        const { id, logprob } = this.pick(row, step === 0 && !reqs[b]?.forced?.length, reqs[b]?.temperature ?? 0);
        next.push(BigInt(id));
        if (id === this.eos) {
          done[b] = true;
        } else {
          tokens[b]?.push(id);
          logprobs[b] = (logprobs[b] ?? 0) + logprob;
        }
      }
      if (done.every(Boolean)) break;
      const live = rows.flatMap((b, p) => (done[b] ? [] : [p]));
      if (live.length < n) {
        const moves = compactRows(live);
        hiddenRows = dropRows(hiddenRows, n, moves, live.length);
        for (const name of Object.keys(past)) {
          const t = past[name];
          if (t) past[name] = dropRows(t, n, moves, live.length);
        }
        rows = moveRows(rows, moves, live.length);
        inputIds = BigInt64Array.from(moveRows(next, moves, live.length));
      } else {
        inputIds = BigInt64Array.from(next);
      }
      stepLen = 1;
    }
    const t2 = performance.now();
    return tokens.map((toks, b) => {
      // avg_logprob of the tokens the model chose (forced ones are not its choice)
      const generated = toks.length - (reqs[b]?.forced?.length ?? 0);
      return {
        tokens: toks,
        text: this.tokenizer.decode(toks),
        avgLogprob: generated > 0 ? (logprobs[b] ?? 0) / generated : 0,
        encoderMs: (t1 - t0) / B,
        decoderMs: (t2 - t1) / B,
        ...(roleProbs ? { roleProbs: roleProbs[b] } : {}),
      };
    });
  }

  /** Role probabilities of each window of a batch from the encoder's output (one small run). */
  private async runRoleHead(head: ort.InferenceSession, hidden: ort.Tensor, reqs: DecodeRequest[]): Promise<number[][]> {
    const valid = BigInt64Array.from(reqs.map((r) => BigInt(Math.max(1, Math.min(this.encoderFrames, r.validFrames ?? this.encoderFrames)))));
    const out = await head.run({ last_hidden_state: hidden, valid_frames: new ort.Tensor('int64', valid, [reqs.length]) });
    const logits = out.role_logits;
    if (!logits) throw new Error('role head returned no role_logits');
    const data = logits.data as Float32Array;
    const R = this.roles.length;
    return reqs.map((_, b) => softmax(data.subarray(b * R, (b + 1) * R)));
  }

  private pick(row: Float32Array, first: boolean, temperature: number): { id: number; logprob: number } {
    const banned = first ? [...this.beginSuppress, ...this.suppress] : this.suppress;
    for (const t of banned) row[t] = -Infinity;
    let max = -Infinity;
    let arg = 0;
    for (let i = 0; i < row.length; i++) {
      if (row[i] > max) {
        max = row[i];
        arg = i;
      }
    }
    let sum = 0;
    for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
    const logZ = max + Math.log(sum);
    if (temperature > 0) {
      let z = 0;
      for (let i = 0; i < row.length; i++) z += Math.exp((row[i] - max) / temperature);
      let u = Math.random() * z;
      for (let i = 0; i < row.length; i++) {
        u -= Math.exp((row[i] - max) / temperature);
        if (u <= 0) {
          arg = i;
          break;
        }
      }
    }
    return { id: arg, logprob: row[arg] - logZ };
  }
}

export { splitWindows } from '../audio/speech-windows.js';
