// Static INT8 batching through the real agent (`bash scripts/node.sh --import tsx edge-agent/bench/bench-static-int8.ts`):
// 5-s clips at 16 concurrent streams, the agent as its own process on 127.0.0.1 with its defaults
// (--max-batch auto), one model at a time, the variants interleaved round by round so that machine
// load hits them alike:
//   - dynamic: today's INT8 (post-training dynamic, *_quantized.onnx) — auto max-batch 1 (unbatched)
//   - static: the static INT8 QDQ model (manifest quantization int8-static) — auto max-batch 4 (batched)
//   - dynamic-batched (BENCH_FORCED=1): today's INT8 with --max-batch 4 forced, to show what batching does
//     to its transcripts
// Each variant's transcripts at 16 streams are compared with the same clips sent one at a time.
//   - qat-static (BENCH_QAT_DIR): a model trained with spec.compression.quantizationAware (its own weights)
// Env: BENCH_DYNAMIC_DIR (default the embedded model), BENCH_STATIC_DIR (default the static fixture of the
// embedded model: edge-agent/src/testing/static-int8.ts), BENCH_ROUNDS=3, BENCH_REQUESTS=96,
// BENCH_WORKERS=2, BENCH_STATIC_BATCHES (comma-separated --max-batch values the static model also runs at), BENCH_OUT (JSON file).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { resample } from '../src/audio/resample.js';
import { decodeWav, encodeWav16 } from '../src/audio/wav.js';
import { ensureStaticInt8Model } from '../src/testing/static-int8.js';
import { EMBEDDED_MODEL, speak, testSentences } from '../src/testing/speech.js';
import { wordErrors } from '../src/text/wer.js';
import { spawnAgent } from './agent-process.js';

const SR = 16000;
const CLIP_SECONDS = 5;
const STREAMS = 16;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const requests = Number(process.env.BENCH_REQUESTS ?? 96);
const workers = process.env.BENCH_WORKERS ?? '2';

interface Variant { name: string; dir: string; args: string[] }

function clips(): { wav: Uint8Array; text: string }[] {
  const out: { wav: Uint8Array; text: string }[] = [];
  testSentences().forEach((text, i) => {
    const a = decodeWav(speak(text, i % 2 ? 'en-gb' : 'en-us', 170));
    const s16 = resample(a.samples, a.sampleRate, SR);
    if (s16.length > CLIP_SECONDS * SR) return;
    const clip = new Float32Array(CLIP_SECONDS * SR);
    clip.set(s16);
    out.push({ wav: encodeWav16(clip, SR), text });
  });
  return out;
}

async function transcribe(url: string, wav: Uint8Array): Promise<{ ms: number; text: string }> {
  const form = new FormData();
  form.append('file', new Blob([wav], { type: 'audio/wav' }), 'clip.wav');
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  const body = (await r.json()) as { text?: string };
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(body)}`);
  return { ms: performance.now() - t0, text: body.text ?? '' };
}

/**
 * The CPU model and the vector extensions int8 kernels use: the static / dynamic ratio depends on them
 * (ORT's int8 GEMMs use VNNI where the CPU has it), so a figure is only comparable on a like machine.
 */
function cpuDescription(): string {
  let flags: string[] = [];
  try {
    flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/);
  } catch {
    // not Linux: the model name alone
  }
  const isa = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'].filter((f) => flags.includes(f));
  return `${cpus()[0]?.model ?? 'cpu'}${isa.length ? ` (${isa.join(' ')})` : ''}`;
}

/** CPU seconds (user + system) of a process so far, all its threads (the agent's workers included). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ = 100 ticks
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

async function main(): Promise<void> {
  const cs = clips();
  const staticDir = process.env.BENCH_STATIC_DIR ?? ensureStaticInt8Model().dir;
  const dynamicDir = process.env.BENCH_DYNAMIC_DIR ?? EMBEDDED_MODEL;
  const common = ['--dtype', 'int8', '--workers', workers, '--threads', '1', '--max-queue', '1000'];
  const variants: Variant[] = [
    { name: 'dynamic', dir: dynamicDir, args: [] },
    { name: 'static', dir: staticDir, args: [] },
    ...(process.env.BENCH_FORCED === '1' ? [{ name: 'dynamic-batched', dir: dynamicDir, args: ['--max-batch', '4'] }] : []),
    ...(process.env.BENCH_QAT_DIR ? [{ name: 'qat-static', dir: process.env.BENCH_QAT_DIR, args: [] }] : []),
    // the static model at other batch limits, e.g. BENCH_STATIC_BATCHES=8,16
    ...(process.env.BENCH_STATIC_BATCHES ?? '').split(',').filter(Boolean).map((b) => ({ name: `static-batch-${b}`, dir: staticDir, args: ['--max-batch', b] })),
  ];
  const res: Record<string, { throughput: number[]; p50: number[]; p99: number[]; changed: number; compared: number; alone: string[]; aloneMs: number[]; cpuMsPerClip: number[] }> = {};
  for (const v of variants) res[v.name] = { throughput: [], p50: [], p99: [], changed: 0, compared: 0, alone: [], aloneMs: [], cpuMsPerClip: [] };
  for (let round = 0; round < rounds; round++) {
    for (const v of round % 2 ? [...variants].reverse() : variants) {
      const agent = await spawnAgent(['--model-dir', v.dir, ...common, ...v.args]);
      const r = res[v.name];
      if (!r) throw new Error('no result slot');
      try {
        await transcribe(agent.url, cs[0]?.wav ?? new Uint8Array(0)); // warm
        // one stream: each clip alone (the reference transcripts: first round; latency: every round)
        for (const [i, c] of cs.entries()) {
          const got = await transcribe(agent.url, c.wav);
          r.aloneMs.push(got.ms);
          if (round === 0) r.alone.push(got.text);
          else if (got.text !== r.alone[i]) throw new Error(`${v.name}: clip ${i} alone gave another transcript than in round 0`);
        }
        const lat: number[] = [];
        let next = 0;
        const cpu0 = cpuSeconds(agent.pid);
        const t0 = performance.now();
        await Promise.all(Array.from({ length: STREAMS }, async () => {
          while (next < requests) {
            const i = next++;
            const c = cs[i % cs.length];
            if (!c) return;
            const got = await transcribe(agent.url, c.wav);
            lat.push(got.ms);
            r.compared++;
            if (got.text !== r.alone[i % cs.length]) r.changed++;
          }
        }));
        const wall = (performance.now() - t0) / 1000;
        const cpuMs = (1000 * (cpuSeconds(agent.pid) - cpu0)) / requests;
        r.cpuMsPerClip.push(cpuMs);
        r.throughput.push(requests / wall);
        r.p50.push(pct(lat, 50));
        r.p99.push(pct(lat, 99));
        console.log(JSON.stringify({ round, variant: v.name, clipsPerSecond: +(requests / wall).toFixed(2), p50Ms: Math.round(pct(lat, 50)), p99Ms: Math.round(pct(lat, 99)), agentCpuMsPerClip: Math.round(cpuMs), load1: loadavg()[0] }));
      } finally {
        await agent.stop();
      }
    }
  }
  const median = (xs: number[]): number => pct(xs, 50);
  const summary = Object.fromEntries(Object.entries(res).map(([k, r]) => [k, {
    clipsPerSecondMedian: +median(r.throughput).toFixed(2), clipsPerSecond: r.throughput.map((x) => +x.toFixed(2)),
    p50MsMedian: Math.round(median(r.p50)), p99MsMedian: Math.round(median(r.p99)), singleStreamMsMedian: Math.round(median(r.aloneMs)),
    transcriptsChangedVsAlone: `${r.changed}/${r.compared}`,
    agentCpuMsPerClipMedian: Math.round(median(r.cpuMsPerClip)), agentCpuMsPerClip: r.cpuMsPerClip.map((x) => Math.round(x)),
    werAlone: +(() => {
      let e = 0;
      let n = 0;
      cs.forEach((c, i) => {
        const w = wordErrors(c.text, r.alone[i] ?? '');
        e += w.errors;
        n += w.referenceWords;
      });
      return e / n;
    })().toFixed(4),
  }]));
  const dyn = summary.dynamic?.clipsPerSecondMedian ?? NaN;
  const out = {
    when: new Date().toISOString(), cpu: cpuDescription(), cores: availableParallelism(), workers: Number(workers), threads: 1, streams: STREAMS, clipSeconds: CLIP_SECONDS,
    requestsPerRound: requests, rounds, clips: cs.length, staticDir, dynamicDir,
    // the static graphs' digests: a fixture built on another machine calibrates slightly other ranges
    staticOnnxSha256: Object.fromEntries(['encoder_model_quantized.onnx', 'decoder_model_merged_quantized.onnx'].map((f) => [f, createHash('sha256').update(readFileSync(join(staticDir, 'onnx', f))).digest('hex').slice(0, 16)])),
    summary,
    staticOverDynamic: +((summary.static?.clipsPerSecondMedian ?? NaN) / dyn).toFixed(3),
    // each round's ratio (the variants of a round ran back to back, so they saw the same load)
    staticOverDynamicByRound: (summary.static?.clipsPerSecond ?? []).map((s, i) => +(s / (summary.dynamic?.clipsPerSecond[i] ?? NaN)).toFixed(3)),
    // CPU time per clip is what bounds throughput on a machine of its own; on a shared one it is steadier than wall time
    staticOverDynamicByCpu: +((summary.dynamic?.agentCpuMsPerClipMedian ?? NaN) / (summary.static?.agentCpuMsPerClipMedian ?? NaN)).toFixed(3),
    ...(summary['qat-static'] ? { qatStaticOverDynamicByCpu: +((summary.dynamic?.agentCpuMsPerClipMedian ?? NaN) / summary['qat-static'].agentCpuMsPerClipMedian).toFixed(3) } : {}),
  };
  console.log(JSON.stringify(out, null, 1));
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify(out, null, 1) + '\n');
}

await main();
