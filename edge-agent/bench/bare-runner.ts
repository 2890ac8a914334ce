// Child process of bench-agent.ts: the bare onnxruntime-node loop of ratio (a), the encoder and the
// greedy merged-decoder loop on one intra-op thread, nothing else. It runs in a process of its own so that
// its garbage is collected in its own time (see startBare in bench-agent.ts).
// IPC (advanced serialization): {dtype, feats} → {ready}; {run: i} → {ms, cpuMs, encoderMs, tokens}; {stop}.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnxFileNames } from '../src/inference/model-files.js';
import type { ModelDtype } from '../src/inference/model-files.js';
import { EMBEDDED_MODEL } from '../src/testing/speech.js';

/** Bare onnxruntime-node: the encoder and the greedy merged-decoder loop, nothing else, on one thread. */
export async function bareSessions(dtype: ModelDtype): Promise<{ once: (f: Float32Array) => Promise<number[]>; encoderMs: () => number; release: () => Promise<void> }> {
  const files = onnxFileNames(dtype);
  const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
  const enc = await ort.InferenceSession.create(join(EMBEDDED_MODEL, files.encoder), so);
  const dec = await ort.InferenceSession.create(join(EMBEDDED_MODEL, files.decoder), so);
  const config = JSON.parse(readFileSync(join(EMBEDDED_MODEL, 'config.json'), 'utf8')) as { decoder_layers: number; decoder_attention_heads: number; d_model: number; vocab_size: number };
  const heads = config.decoder_attention_heads;
  const hd = config.d_model / heads;
  const stepOutputs = ['logits', ...Array.from({ length: config.decoder_layers }, (_, l) => [`present.${l}.decoder.key`, `present.${l}.decoder.value`]).flat()];
  let lastEncoderMs = 0;
  const once = async (f: Float32Array): Promise<number[]> => {
    const t0 = performance.now();
    const { last_hidden_state: h } = await enc.run({ input_features: new ort.Tensor('float32', f, [1, 80, f.length / 80]) });
    lastEncoderMs = performance.now() - t0;
    if (!h) throw new Error('no encoder output');
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, hd]);
    const past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < config.decoder_layers; l++) for (const k of ['decoder', 'encoder']) for (const kv of ['key', 'value']) past[`past_key_values.${l}.${k}.${kv}`] = empty;
    let ids = BigInt64Array.from([1000n, 1001n, 1003n, 1007n]);
    const out: number[] = [];
    for (let step = 0; step < 124; step++) {
      const feeds = { input_ids: new ort.Tensor('int64', ids, [1, ids.length]), encoder_hidden_states: h, use_cache_branch: new ort.Tensor('bool', new Uint8Array([step > 0 ? 1 : 0]), [1]), ...past };
      // As the agent does: after step 0 only the logits and the self-attention cache are fetched.
      const r = step > 0 ? await dec.run(feeds, stepOutputs) : await dec.run(feeds);
      for (let l = 0; l < config.decoder_layers; l++) {
        for (const kv of ['key', 'value']) {
          const d = r[`present.${l}.decoder.${kv}`];
          if (d) past[`past_key_values.${l}.decoder.${kv}`] = d;
          const e = r[`present.${l}.encoder.${kv}`];
          if (step === 0 && e) past[`past_key_values.${l}.encoder.${kv}`] = e;
        }
      }
      const logits = r.logits?.data as Float32Array;
      const base = (ids.length - 1) * config.vocab_size;
      let best = step === 0 ? 1 : 0; // begin_suppress_tokens = [0]
      for (let v = 0; v < config.vocab_size; v++) if ((step > 0 || v !== 0) && logits[base + v] > logits[base + best]) best = v;
      if (best === 0) break;
      out.push(best);
      ids = BigInt64Array.from([BigInt(best)]);
    }
    return out;
  };
  const release = async (): Promise<void> => {
    await enc.release();
    await dec.release();
  };
  return { once, encoderMs: () => lastEncoderMs, release };
}

type Msg = { dtype: ModelDtype; feats: Float32Array[] } | { run: number } | { stop: true };
let runner: Awaited<ReturnType<typeof bareSessions>> | undefined;
let feats: Float32Array[] = [];
const send = (m: unknown): void => {
  process.send?.(m);
};
let chain: Promise<void> = Promise.resolve();
process.on('message', (m: Msg) => {
  chain = chain.then(async () => {
    if ('dtype' in m) {
      feats = m.feats;
      runner = await bareSessions(m.dtype);
      for (const f of feats.slice(0, 2)) await runner.once(f); // warm-up
      send({ ready: true });
    } else if ('run' in m) {
      if (!runner) throw new Error('bare runner: run before load');
      const u0 = process.cpuUsage();
      const t = performance.now();
      const tokens = await runner.once(feats[m.run] ?? new Float32Array());
      const ms = performance.now() - t;
      const u = process.cpuUsage(u0);
      send({ ms, cpuMs: (u.user + u.system) / 1000, encoderMs: runner.encoderMs(), tokens });
    } else {
      await runner?.release();
      process.disconnect();
    }
  });
});
