// Speaker-role models through the real agent (trainer-image/bench/bench_roles.py makes them): each model
// folder served by its own agent (startAgent: HTTP, model manager, one inference worker, 2 ORT threads),
// every held-out clip sent as POST /v1/audio/transcriptions response_format=verbose_json with the
// official openai client. Reports per model: role accuracy (models with a head), WER on the held-out
// clips, and latency per 5-s clip (the clips padded with silence to 5 s, the models interleaved clip by
// clip so that machine load hits them alike). A "<name>-nohead" copy of the first model (config.json
// without whisperops_speaker_roles, manifest rewritten) gives the head's own latency cost: same weights,
// same graphs, no role head. Prints JSON.
//   bash scripts/node.sh --import tsx scripts/bench-role-agent.ts --heldout FILE.jsonl [--dtype int8] [--latency-clips 20] NAME=DIR [NAME=DIR ...]
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { pino } from 'pino';
import { startAgent } from '../edge-agent/src/agent.js';
import type { Agent } from '../edge-agent/src/agent.js';
import { resample } from '../edge-agent/src/audio/resample.js';
import { decodeWav, encodeWav16 } from '../edge-agent/src/audio/wav.js';
import { parseOptions } from '../edge-agent/src/options.js';
import { REPO_ROOT, tempDir } from '../edge-agent/src/testing/speech.js';
import { wordErrors } from '../edge-agent/src/text/wer.js';

const SR = 16000;
const CLIP_SECONDS = 5;

interface Clip { audio: string; text: string; role: string }
interface Verbose { text: string; speaker_role?: { role: string; probabilities: Record<string, number> } }

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

/** A copy of a model folder without its role head (config.json key removed, manifest rewritten). */
function withoutHead(dir: string): string {
  const out = join(tempDir('nohead'), 'model');
  cpSync(dir, out, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  delete cfg.whisperops_speaker_roles;
  const bytes = Buffer.from(JSON.stringify(cfg, null, 2));
  writeFileSync(join(out, 'config.json'), bytes);
  const man = JSON.parse(readFileSync(join(out, 'model-manifest.json'), 'utf8')) as { files: Record<string, { sha256: string; bytes: number }>; onnx: Record<string, string>; version: string };
  man.files['config.json'] = { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
  for (const f of ['onnx/role_head.onnx', 'role_head.safetensors']) {
    delete man.files[f];
    rmSync(join(out, f), { force: true });
  }
  delete man.onnx.roleHead;
  man.version += '-nohead';
  writeFileSync(join(out, 'model-manifest.json'), JSON.stringify(man, null, 2));
  return out;
}

async function main(): Promise<void> {
  const heldout = resolve(arg('--heldout', ''));
  const dtype = arg('--dtype', 'int8');
  const nLatency = Number(arg('--latency-clips', '20'));
  const named = process.argv.slice(2).filter((a) => /^[a-z0-9-]+=/.test(a)).map((a) => a.split('=', 2) as [string, string]);
  const first = named[0];
  if (!first) throw new Error('give NAME=DIR models');
  const models: [string, string][] = [first, [`${first[0]}-nohead`, withoutHead(first[1])], ...named.slice(1)];
  const clips = readFileSync(heldout, 'utf8').split('\n').filter((l) => l.trim()).map((l) => {
    const c = JSON.parse(l) as Clip;
    return { ...c, audio: resolve(dirname(heldout), c.audio) };
  });
  const wavs = clips.map((c) => {
    const a = decodeWav(readFileSync(c.audio));
    return resample(a.samples, a.sampleRate, SR);
  });
  const agents: Agent[] = [];
  const clients: OpenAI[] = [];
  const names: string[] = []; // the deployment name the agent gives a --model-dir folder
  for (const [, dir] of models) {
    names.push((resolve(dir).split('/').pop() ?? 'model').toLowerCase().replace(/[^a-z0-9.-]/g, '-'));
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '2', '--dtype', dtype, '--model-dir', dir], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    const agent = await startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0 }, pino({ level: 'silent' }));
    agents.push(agent);
    clients.push(new OpenAI({ baseURL: `${agent.url}/v1`, apiKey: 'unused', maxRetries: 0 }));
  }
  const ask = async (k: number, samples: Float32Array): Promise<{ v: Verbose; ms: number }> => {
    const client = clients[k];
    if (!client) throw new Error('no client');
    const t = performance.now();
    const v = (await client.audio.transcriptions.create({ file: await toFile(encodeWav16(samples, SR), 'a.wav'), model: names[k] ?? '', response_format: 'verbose_json' })) as unknown as Verbose;
    return { v, ms: performance.now() - t };
  };
  // 1. every held-out clip as it is: roles and WER
  const stats = models.map(() => ({ correct: 0, withRole: 0, errors: 0, words: 0, perRole: new Map<string, { correct: number; n: number }>() }));
  for (const [i, c] of clips.entries()) {
    for (let k = 0; k < models.length; k++) {
      const { v } = await ask(k, wavs[i] ?? new Float32Array(0));
      const s = stats[k];
      if (!s) continue;
      const e = wordErrors(c.text, v.text);
      s.errors += e.errors;
      s.words += e.referenceWords;
      if (v.speaker_role) {
        s.withRole++;
        const ok = v.speaker_role.role === c.role;
        if (ok) s.correct++;
        const pr = s.perRole.get(c.role) ?? { correct: 0, n: 0 };
        s.perRole.set(c.role, pr);
        pr.n++;
        if (ok) pr.correct++;
      }
    }
  }
  // 2. latency per 5-s clip, interleaved (one warm-up each)
  const padded = wavs.slice(0, nLatency).filter((w) => w.length <= CLIP_SECONDS * SR).map((w) => {
    const p = new Float32Array(CLIP_SECONDS * SR);
    p.set(w);
    return p;
  });
  for (let k = 0; k < models.length; k++) await ask(k, padded[0] ?? new Float32Array(SR));
  const ms: number[][] = models.map(() => []);
  for (const p of padded) for (let k = 0; k < models.length; k++) ms[k]?.push((await ask(k, p)).ms);
  for (const a of agents) await a.shutdown();
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const out: Record<string, unknown> = { dtype, clips: clips.length, latencyClips: padded.length, clipSeconds: CLIP_SECONDS };
  models.forEach(([name], k) => {
    const s = stats[k];
    const xs = ms[k] ?? [];
    if (!s) return;
    out[name] = {
      wer: Number((s.errors / Math.max(1, s.words)).toFixed(4)),
      ...(s.withRole ? { roleAccuracy: Number((s.correct / s.withRole).toFixed(4)), roleAnswers: s.withRole, perRole: Object.fromEntries([...s.perRole].map(([r, p]) => [r, Number((p.correct / p.n).toFixed(4))])) } : {}),
      msPerClip: Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)),
      p50: Math.round(median(xs)),
    };
  });
  process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
}

await main();
