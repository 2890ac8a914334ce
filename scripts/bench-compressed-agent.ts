// Agent latency of compressed models (trainer-image/bench/bench_compress.py makes them): each model
// folder, fp32 and INT8, loaded in the edge agent's own inference pool (one worker, 2 ORT threads,
// batch 1 — the agent's code path of a transcription request minus HTTP), 5-s clips of espeak-ng speech
// (the agent's test sentences, padded with silence), the models interleaved clip by clip so that machine
// load hits them alike. Prints JSON: model → dtype → {msPerClip, p50, p90}.
//   bash scripts/node.sh --import tsx scripts/bench-compressed-agent.ts NAME=DIR [NAME=DIR ...] [--clips 20]
import { decodeWav } from '../edge-agent/src/audio/wav.js';
import { resample } from '../edge-agent/src/audio/resample.js';
import { InferencePool } from '../edge-agent/src/inference/pool.js';
import { speak, testSentences } from '../edge-agent/src/testing/speech.js';

const SR = 16000;
const CLIP_SECONDS = 5;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const ci = args.indexOf('--clips');
  const nClips = ci >= 0 ? Number(args[ci + 1]) : 20;
  const models = args.filter((a, i) => a.includes('=') && (ci < 0 || i !== ci + 1)).map((a) => a.split('=', 2) as [string, string]);
  const clips: Float32Array[] = [];
  for (const text of testSentences()) {
    if (clips.length >= nClips) break;
    const a = decodeWav(speak(text, 'en-us', 170));
    const s = resample(a.samples, a.sampleRate, SR);
    if (s.length > CLIP_SECONDS * SR) continue;
    const clip = new Float32Array(CLIP_SECONDS * SR);
    clip.set(s);
    clips.push(clip);
  }
  const pool = new InferencePool({ workers: 1, intraOpThreads: 2, executionProviders: ['cpu'], maxBatch: 1 });
  const keys: string[] = [];
  for (const [name, dir] of models) {
    for (const dtype of ['fp32', 'int8'] as const) {
      await pool.load({ key: `${name}/${dtype}`, dir, dtype });
      keys.push(`${name}/${dtype}`);
    }
  }
  const ms: Record<string, number[]> = Object.fromEntries(keys.map((k) => [k, []]));
  const job = (clip: Float32Array) => ({ audio: clip.slice(), sampleRate: SR, language: 'en', prompt: '', temperature: 0 });
  for (const k of keys) await pool.run(k, job(clips[0] ?? new Float32Array(SR))); // warm-up
  for (const clip of clips) {
    for (const k of keys) {
      const t = performance.now();
      await pool.run(k, job(clip));
      ms[k]?.push(performance.now() - t);
    }
  }
  await pool.close();
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;
  const out: Record<string, unknown> = { clips: clips.length, clipSeconds: CLIP_SECONDS };
  for (const k of keys) {
    const xs = ms[k] ?? [];
    out[k] = { msPerClip: Math.round(xs.reduce((a, b) => a + b, 0) / xs.length), p50: Math.round(pct(xs, 50)), p90: Math.round(pct(xs, 90)) };
  }
  process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
}

await main();
