// Edge-agent benchmark (`npm run bench:agent`): for the INT8 and fp32 embedded model, the agent started as
// its own process on 127.0.0.1 (nothing else is contacted),
// bounded in request count:
//   - single-stream real-time factor (end-to-end HTTP time / audio time, 5 s clips, one at a time)
//   - throughput and p50/p99 latency of 5 s clips at 1, 4 and 16 concurrent streams
//   - /metrics p99 latency while 16 streams keep both workers busy
//   - ratio (a): our end-to-end time per clip / bare onnxruntime-node session time for the same
//     encoder + greedy-decoder work (same features, same tokens, same thread count), target ≤ 1.10,
//     measured clip by clip in adjacent pairs (each side twice: cold, then warm), with the agent's
//     Server-Timing breakdown
// Requests go out through node:http with keep-alive and bodies built once (as wrk does).
//   - ratio (b): our throughput / the transformers.js ASR pipeline's on the same model files, target ≥ 1.0
//     (when @huggingface/transformers is installed: bash edge-agent/bench/setup-transformers-baseline.sh)
// Options (env): BENCH_DTYPES=int8,fp32  BENCH_WORKERS=2  BENCH_REQUESTS_PER_STREAM=3  BENCH_PAIR_ROUNDS=4
//                WHISPEROPS_TFJS_DIR=/tmp/tfjs (where the baseline package is installed)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http, { createServer } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { resample } from '../src/audio/resample.js';
import { decodeWav, encodeWav16 } from '../src/audio/wav.js';
import { onnxFileNames } from '../src/inference/model-files.js';
import type { ModelDtype } from '../src/inference/model-files.js';
import { splitWindows, WhisperModel } from '../src/inference/whisper-model.js';
import { EMBEDDED_MODEL, REPO_ROOT, speak, tempDir, testSentences } from '../src/testing/speech.js';
import { wordErrors } from '../src/text/wer.js';

const CLIP_SECONDS = 5;
const SR = 16000;
const dtypes = (process.env.BENCH_DTYPES ?? 'int8,fp32').split(',') as ModelDtype[];
const workers = Number(process.env.BENCH_WORKERS ?? Math.min(4, availableParallelism()));
const perStream = Number(process.env.BENCH_REQUESTS_PER_STREAM ?? 3);
const pairRounds = Number(process.env.BENCH_PAIR_ROUNDS ?? 4);
const tfjsDir = process.env.WHISPEROPS_TFJS_DIR ?? '/tmp/tfjs';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** 5 s clips at 16 kHz: one espeak-ng sentence each, padded with silence to exactly 5 s. */
function makeClips(): { wav: Uint8Array; body: Buffer; samples: Float32Array; text: string }[] {
  const out: { wav: Uint8Array; body: Buffer; samples: Float32Array; text: string }[] = [];
  for (const text of testSentences()) {
    const a = decodeWav(speak(text, 'en-us', 170));
    const s16 = resample(a.samples, a.sampleRate, SR);
    if (s16.length > CLIP_SECONDS * SR) continue;
    const clip = new Float32Array(CLIP_SECONDS * SR);
    clip.set(s16);
    const wav = encodeWav16(clip, SR);
    out.push({ wav, body: multipartBody(wav), samples: clip, text });
  }
  return out;
}

/**
 * The load generator's request: node:http with keep-alive and the multipart body built once per clip, as
 * wrk-style load generators do, so the client's own form encoding is not counted as the agent's time.
 */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });
const BOUNDARY = '----whisperops-bench';
function multipartBody(wav: Uint8Array): Buffer {
  const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\nContent-Type: audio/wav\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), wav, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
}

interface Posted {
  ms: number;
  text: string;
  status: number;
  /** The agent's Server-Timing header, name → milliseconds. */
  timing: Record<string, number>;
}

function post(url: string, body: Buffer): Promise<Posted> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const req = http.request(
      `${url}/v1/audio/transcriptions`,
      { method: 'POST', agent: keepAlive, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - t;
          let text = '';
          try {
            text = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { text?: string }).text ?? '';
          } catch {
            // an error body; the status says so
          }
          const timing: Record<string, number> = {};
          for (const part of String(res.headers['server-timing'] ?? '').split(',')) {
            const m = /^\s*([\w-]+);dur=([\d.]+)/.exec(part);
            if (m?.[1] && m[2]) timing[m[1]] = Number(m[2]);
          }
          resolve({ ms, text, status: res.statusCode ?? 0, timing });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface LevelResult {
  streams: number;
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  failed: number;
}

async function level(url: string, clips: { body: Buffer }[], streams: number, requests: number): Promise<LevelResult & { latencies: number[] }> {
  const lat: number[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      while (next < requests) {
        const i = next++;
        const r = await post(url, clips[i % clips.length]?.body ?? Buffer.alloc(0));
        if (r.status !== 200) failed++;
        lat.push(r.ms);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  return { streams, requests, throughput: requests / wall, p50: pct(lat, 50), p99: pct(lat, 99), failed, latencies: lat };
}

/** Bare onnxruntime-node: the encoder and the greedy merged-decoder loop, nothing else, on one thread. */
async function bareSessions(dtype: ModelDtype): Promise<{ once: (f: Float32Array) => Promise<number[]>; encoderMs: () => number; release: () => Promise<void> }> {
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

interface Tfjs {
  note: string;
  run: (audio: Float32Array) => Promise<string>;
}

/** The transformers.js ASR pipeline on the same model files, offline; undefined when not installed. */
async function loadTfjs(dtype: ModelDtype, threads: number | undefined): Promise<Tfjs | undefined> {
  const entry = join(tfjsDir, 'node_modules', '@huggingface', 'transformers', 'package.json');
  if (!existsSync(entry)) return undefined;
  type Pipe = (audio: Float32Array, opts: Record<string, unknown>) => Promise<{ text: string }>;
  const tf = (await import(pathToFileURL(join(tfjsDir, 'node_modules', '@huggingface', 'transformers', 'dist', 'transformers.node.mjs')).href)) as {
    env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string; cacheDir: string };
    pipeline: (task: string, model: string, opts: Record<string, unknown>) => Promise<Pipe>;
  };
  tf.env.allowRemoteModels = false;
  tf.env.allowLocalModels = true;
  tf.env.localModelPath = join(REPO_ROOT, 'models') + '/';
  tf.env.cacheDir = tempDir('tfjs-cache');
  const asr = await tf.pipeline('automatic-speech-recognition', 'tiny-whisper-synth', {
    dtype: dtype === 'int8' ? 'q8' : 'fp32',
    device: 'cpu',
    ...(threads === undefined ? {} : { session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 } }),
  });
  const opts = { language: 'en', task: 'transcribe', return_timestamps: false };
  const how = threads === undefined ? "ORT's default intra-op threads (one per core)" : `${threads} intra-op thread`;
  return { note: `transformers.js 4.3.1 pipeline, ${how}`, run: async (a) => (await asr(a, opts)).text.trim() };
}

/** Clips per second of `t` over `clips`, one after another. */
async function tfjsBlock(t: Tfjs, clips: Float32Array[]): Promise<number> {
  const t0 = performance.now();
  for (const c of clips) await t.run(c);
  return clips.length / ((performance.now() - t0) / 1000);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** CPU seconds (user + system, all threads) used so far by process `pid`, from /proc (Linux). */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ = 100 ticks
  } catch {
    return NaN;
  }
}

/** CPU ids to pin ratio (a)'s rounds to, one per round in turn; empty when taskset is missing (unpinned). */
const allCpus = `0-${availableParallelism() - 1}`;
const pinCpus: (string | undefined)[] = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return Array.from({ length: availableParallelism() }, (_, i) => String(i));
  } catch {
    return [undefined];
  }
})();

/** Sets the CPU affinity of every thread of `pids` (taskset -a); a no-op for undefined. */
function pinTo(cpus: string | undefined, pids: number[]): void {
  if (cpus === undefined || pinCpus[0] === undefined) return;
  for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

async function spawnAgent(args: string[]): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'edge-agent/src/main.ts', '--port', String(port), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent exited with code ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 120_000) throw new Error('agent not ready after 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  const stop = async (): Promise<void> => {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await exited;
  };
  return { url, pid: child.pid ?? 0, stop };
}

async function main(): Promise<void> {
  const started = Date.now();
  const clips = makeClips();
  const lines: string[] = [];
  const say = (s: string): void => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  say(`# edge-agent benchmark — ${new Date().toISOString()}`);
  say(`machine: ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at start; agent: ${workers} workers × 1 intra-op thread, --max-batch auto (int8 1, fp32 4)`);
  say(`clips: ${clips.length} distinct 5 s clips (16 kHz 16-bit WAV, espeak-ng en-us 170 wpm, general sentences)`);
  const json: Record<string, unknown> = {};
  for (const dtype of dtypes) {
    // The agent runs as its own process (as in production), so the load generator does not share its event loop.
    const agent = await spawnAgent(['--workers', String(workers), '--threads', '1', '--dtype', dtype, '--max-queue', '256', '--shutdown-delay-seconds', '0', '--log-level', 'warn']);
    const url = agent.url;
    for (const c of clips.slice(0, 4)) await post(url, c.body); // warm-up
    // Single stream: RTF and transcripts.
    const single: number[] = [];
    const ourTexts: string[] = [];
    for (const c of clips) {
      const r = await post(url, c.body);
      single.push(r.ms);
      ourTexts.push(r.text);
    }
    const e2eMs = mean(single);
    let errs = 0;
    let words = 0;
    clips.forEach((c, i) => {
      const e = wordErrors(c.text, ourTexts[i] ?? '');
      errs += e.errors;
      words += e.referenceWords;
    });
    const levels: LevelResult[] = [];
    let metricsP99 = NaN;
    let metricsSamples = 0;
    for (const streams of [1, 4, 16]) {
      let stop = false;
      const mlat: number[] = [];
      const poller =
        streams === 16
          ? (async () => {
              while (!stop) {
                const t = performance.now();
                await (await fetch(`${url}/metrics`)).text();
                mlat.push(performance.now() - t);
                await new Promise((r) => setTimeout(r, 25));
              }
            })()
          : Promise.resolve();
      const { latencies: _l, ...res } = await level(url, clips, streams, Math.max(8, streams * perStream));
      stop = true;
      await poller;
      if (streams === 16) {
        metricsP99 = pct(mlat, 99);
        metricsSamples = mlat.length;
      }
      levels.push(res);
    }
    // Ratio (a): our end-to-end time and the bare sessions' time for the same windows (same features, same tokens).
    const fe = await WhisperModel.load(EMBEDDED_MODEL, { dtype, intraOpThreads: 1, executionProviders: ['cpu'] });
    const windows = clips.map((c) => {
      const s = decodeWav(c.wav).samples; // exactly what the agent receives
      const [start, end] = splitWindows(s, fe.windowSamples, SR)[0] ?? [0, s.length];
      return s.slice(start, end);
    });
    const feats: Float32Array[] = [];
    for (const w of windows) feats.push((await fe.logMel.compute(w)).slice());
    await fe.release();
    const bareRunner = await bareSessions(dtype);
    for (const f of feats.slice(0, 2)) await bareRunner.once(f);
    const tf1 = await loadTfjs(dtype, 1);
    for (const w of windows.slice(0, 2)) await tf1?.run(w);
    // Clip by clip, each side twice in a row (A A B B, then B B A A for the next clip, and so on): the first
    // run of a pair finds the caches the other side left (cold), the second runs with its own working set
    // in cache, as an agent serving one request after another does (warm). Adjacent runs see the same
    // machine, so drifts in the speed of a shared VM's cores cancel. The warm ratio is the target figure;
    // the cold one is printed beside it. CPU time is taken around the warm runs too: the agent process's
    // (all its threads) and this process's; unlike wall time it does not grow when other processes compete
    // for the cores.
    const ours = { cold: [] as number[], warm: [] as number[] };
    const bareT = { cold: [] as number[], warm: [] as number[] };
    const pairRatios: number[] = [];
    const timingSum: Record<string, number> = {};
    const coldTimingSum: Record<string, number> = {};
    const bareTokens: number[][] = [];
    let oursCpu = 0;
    let bareCpu = 0;
    let bareEncoderMs = 0;
    const oursOnce = async (i: number, warm: boolean): Promise<number> => {
      const c0 = processCpuSeconds(agent.pid);
      const r = await post(url, clips[i]?.body ?? Buffer.alloc(0));
      if (warm) oursCpu += processCpuSeconds(agent.pid) - c0;
      const sums = warm ? timingSum : coldTimingSum;
      sums.client = (sums.client ?? 0) + r.ms;
      for (const [k, v] of Object.entries(r.timing)) sums[k] = (sums[k] ?? 0) + v;
      return r.ms;
    };
    const bareOnce = async (i: number, warm: boolean, round: number): Promise<number> => {
      const u0 = process.cpuUsage();
      const t = performance.now();
      const toks = await bareRunner.once(feats[i] ?? new Float32Array());
      const ms = performance.now() - t;
      const u = process.cpuUsage(u0);
      if (warm) {
        bareCpu += (u.user + u.system) / 1e6;
        bareEncoderMs += bareRunner.encoderMs();
      }
      if (round === 0 && warm) bareTokens[i] = toks;
      return ms;
    };
    // Both sides share one core at a time (the agent's threads and this process, pinned with taskset), and
    // the rounds alternate between the cores: on a VM the cores are not equally fast at any moment (other
    // tenants), and a side that happened to stay on the slower one would carry it into the ratio.
    for (let round = 0; round < pairRounds; round++) {
      pinTo(pinCpus[round % pinCpus.length], [agent.pid, process.pid]);
      for (let i = 0; i < clips.length; i++) {
        const oursFirst = (round * clips.length + i) % 2 === 0;
        for (const side of oursFirst ? ['ours', 'bare'] : ['bare', 'ours']) {
          if (side === 'ours') {
            ours.cold.push(await oursOnce(i, false));
            ours.warm.push(await oursOnce(i, true));
          } else {
            bareT.cold.push(await bareOnce(i, false, round));
            bareT.warm.push(await bareOnce(i, true, round));
          }
        }
        pairRatios.push((ours.warm.at(-1) ?? NaN) / (bareT.warm.at(-1) ?? NaN));
      }
    }
    pinTo(allCpus, [agent.pid, process.pid]);
    const pairs = ours.warm.length;
    const breakdownOf = (sums: Record<string, number>): string =>
      Object.entries(sums)
        .map(([k, v]) => `${k} ${fmt(v / pairs, 2)}`)
        .join(', ');
    // transformers.js on the same windows, interleaved with ours clip by clip (single-stream ratio (b)).
    const tfjsAB: number[] = [];
    const tfjsTexts: string[] = [];
    const oursAB: number[] = [];
    if (tf1) {
      for (let round = 0; round < 2; round++) {
        for (const [i, c] of clips.entries()) {
          oursAB.push((await post(url, c.body)).ms);
          const t2 = performance.now();
          const text = await tf1.run(windows[i] ?? new Float32Array());
          tfjsAB.push(performance.now() - t2);
          if (round === 0) tfjsTexts.push(text);
        }
      }
    }
    // Ratio (b) at full load: transformers.js blocks bracket our 16-stream block (A, B, A).
    let tfjsThroughput = NaN;
    let ours16 = NaN;
    let tfjsDefaultThroughput = NaN;
    let tfDefNote = '';
    if (tf1) {
      const a1 = await tfjsBlock(tf1, windows);
      ours16 = (await level(url, clips, 16, 48)).throughput;
      const a2 = await tfjsBlock(tf1, windows);
      tfjsThroughput = (a1 + a2) / 2;
      const tfDef = await loadTfjs(dtype, undefined);
      if (tfDef) {
        await tfDef.run(windows[0] ?? new Float32Array());
        tfjsDefaultThroughput = await tfjsBlock(tfDef, windows);
        tfDefNote = tfDef.note;
      }
    }
    await bareRunner.release();
    await agent.stop();
    const oursABms = mean(oursAB);
    const oursWarm = mean(ours.warm);
    const bareWarm = mean(bareT.warm);
    const bareTexts = bareTokens.map((t) => fe.tokenizer.decode(t).trim());
    const sameAsBare = bareTexts.filter((t, i) => t === ourTexts[i]).length;
    const sameAsTfjs = tfjsTexts.filter((t, i) => t === ourTexts[i]).length;
    say('');
    say(`## ${dtype.toUpperCase()}`);
    say(`single stream: ${fmt(e2eMs, 1)} ms per 5 s clip end-to-end → RTF ${fmt(e2eMs / 1000 / CLIP_SECONDS, 4)}; WER of these clips ${fmt(errs / words, 3)}`);
    say('| streams | requests | throughput (clips/s) | audio s per s | p50 (ms) | p99 (ms) | failed |');
    say('| --- | --- | --- | --- | --- | --- | --- |');
    for (const l of levels) say(`| ${l.streams} | ${l.requests} | ${fmt(l.throughput, 2)} | ${fmt(l.throughput * CLIP_SECONDS, 1)} | ${fmt(l.p50, 0)} | ${fmt(l.p99, 0)} | ${l.failed} |`);
    say(`/metrics under 16 streams: p99 ${fmt(metricsP99, 1)} ms over ${metricsSamples} scrapes`);
    say(`bare onnxruntime-node sessions (encoder + greedy merged decoder, 1 thread): ${fmt(bareWarm, 1)} ms per clip; same transcript as ours for ${sameAsBare}/${clips.length} clips`);
    say(`ratio (a) our end-to-end per clip (1 stream; HTTP, multipart, WAV, front end, worker hops included; ${fmt(oursWarm, 1)} ms) / bare sessions (${fmt(bareWarm, 1)} ms), warm, ${pairs} adjacent pairs${pinCpus[0] === undefined ? ' (taskset missing: unpinned)' : `, both sides on one core, rounds alternating over cores ${pinCpus.join(',')}`}, wall time = ${fmt(oursWarm / bareWarm, 3)}  (target ≤ 1.10); median of pair ratios ${fmt(pct(pairRatios, 50), 3)}`);
    say(`  where our time went (ms per clip; Server-Timing; client = as the load generator saw it): ${breakdownOf(timingSum)}`);
    say(`  bare sessions' split: encoder ${fmt(bareEncoderMs / pairs, 2)}, decoder loop ${fmt(bareWarm - bareEncoderMs / pairs, 2)} (ms per clip, warm)`);
    say(`  in CPU time: agent process ${fmt((oursCpu / pairs) * 1000, 1)} ms per clip / bare ${fmt((bareCpu / pairs) * 1000, 1)} ms per clip = ${fmt(oursCpu / bareCpu, 3)}`);
    say(`  cold (each side's first run after the other's): ${fmt(mean(ours.cold), 1)} / ${fmt(mean(bareT.cold), 1)} ms = ${fmt(mean(ours.cold) / mean(bareT.cold), 3)}; ours: ${breakdownOf(coldTimingSum)}`);
    if (tf1) {
      say(`transformers.js (${tf1.note}), interleaved with ours clip by clip: ${fmt(mean(tfjsAB), 1)} ms per clip vs ours ${fmt(oursABms, 1)} ms; same transcript as ours for ${sameAsTfjs}/${clips.length} clips`);
      say(`transformers.js clips one after another: ${fmt(tfjsThroughput, 2)} clips/s (1 thread, mean of the blocks before and after ours); ${fmt(tfjsDefaultThroughput, 2)} clips/s (${tfDefNote})`);
      const alt = Math.max(tfjsThroughput, Number.isFinite(tfjsDefaultThroughput) ? tfjsDefaultThroughput : 0);
      say(`ratio (b) our throughput / transformers.js (its faster setting): single stream ${fmt(mean(tfjsAB) / oursABms, 2)} (interleaved), 16 streams ${fmt(ours16, 2)} clips/s → ${fmt(ours16 / alt, 2)}  (target ≥ 1.0)`);
    } else say(`ratio (b): transformers.js baseline not installed (bash edge-agent/bench/setup-transformers-baseline.sh; looked in ${tfjsDir})`);
    json[dtype] = { e2eMs, rtf: e2eMs / 1000 / CLIP_SECONDS, wer: errs / words, levels, metricsP99, bareMs: bareWarm, oursMs: oursWarm, ratioA: oursWarm / bareWarm, ratioAPairMedian: pct(pairRatios, 50), timing: Object.fromEntries(Object.entries(timingSum).map(([k, v]) => [k, v / pairs])), ratioACpu: oursCpu / bareCpu, oursCpuMs: (oursCpu / pairs) * 1000, bareCpuMs: (bareCpu / pairs) * 1000, cold: { oursMs: mean(ours.cold), bareMs: mean(bareT.cold), ratio: mean(ours.cold) / mean(bareT.cold), timing: Object.fromEntries(Object.entries(coldTimingSum).map(([k, v]) => [k, v / pairs])) }, sameAsBare, tfjsMsInterleaved: mean(tfjsAB), tfjsThroughput, ours16, tfjsDefaultThroughput, sameAsTfjs, ourTexts, tfjsTexts };
  }
  say('');
  say(`total bench time ${((Date.now() - started) / 1000).toFixed(0)} s; load average at end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const out = process.env.BENCH_OUT ?? join(tempDir('bench'), 'bench-agent.json');
  writeFileSync(out, JSON.stringify(json, null, 2));
  process.stdout.write(`(raw results: ${out})\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
