// The edge agent serves a speaker-role model from the trainer: the real trainer (`python -m
// whisperops_trainer run`) fine-tunes the embedded model with spec.compression.speakerRole (a few steps on
// espeak-ng speech, clinician and patient voices), the whole agent serves the published folder, and the
// official `openai` client's verbose_json carries the role — top level and per segment — with the same
// probabilities the trainer's PyTorch head gives for the same audio. The embedded model (no head) answers
// exactly as before; a role head that does not fit its model is refused with a precise error and never
// replaces the model a worker serves.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { pino } from 'pino';
import { startAgent } from '../../edge-agent/src/agent.js';
import type { Agent } from '../../edge-agent/src/agent.js';
import { resample } from '../../edge-agent/src/audio/resample.js';
import { splitWindows } from '../../edge-agent/src/audio/speech-windows.js';
import { decodeWav, encodeWav16 } from '../../edge-agent/src/audio/wav.js';
import { InferencePool } from '../../edge-agent/src/inference/pool.js';
import { parseOptions } from '../../edge-agent/src/options.js';
import { EMBEDDED_MODEL, REPO_ROOT, speak, tempDir } from '../../edge-agent/src/testing/speech.js';

jest.setTimeout(900_000);

interface SpeakerRole { role: string; probabilities: Record<string, number> }
interface Verbose { text: string; duration: number; segments: ({ start: number; end: number; speaker_role?: SpeakerRole } & Record<string, unknown>)[]; speaker_role?: SpeakerRole }

const ROLES = ['clinician', 'patient'];
const venv = (): string => spawnSync('bash', [join(REPO_ROOT, 'scripts', 'setup', 'python.sh'), '--print'], { encoding: 'utf8' }).stdout.trim().split('\n').pop() ?? '';
const trainerEnv = (work: string): NodeJS.ProcessEnv => ({
  ...process.env, PYTHONPATH: join(REPO_ROOT, 'trainer-image'), WHISPEROPS_JOB_FILE: join(work, 'job.json'),
  WHISPEROPS_RESULT_FILE: join(work, 'result.json'), WHISPEROPS_WORK_DIR: join(work, 'work'), WHISPEROPS_EVAL_MAX: '4',
  OMP_NUM_THREADS: '2', TOKENIZERS_PARALLELISM: 'false',
});

/** Role probabilities of the trainer's PyTorch encoder + head for 16-kHz WAV files (the reference). */
function torchRoleProbs(modelDir: string, wavs: string[]): number[][] {
  const code = [
    'import json, sys, torch',
    'from whisperops_trainer import audio, roles',
    'from whisperops_trainer.compress import load_whisper',
    'd = sys.argv[1]; m = load_whisper(d).eval(); head = roles.load_head(d); out = []',
    'for w in sys.argv[2:]:',
    '    x = audio.read_audio(w)[:160000]',
    '    v = torch.tensor([roles.encoder_valid_frames(len(x), 160, m.config.max_source_positions)])',
    '    with torch.no_grad(): out.append(torch.softmax(head(m.model.encoder(torch.from_numpy(audio.log_mel(d, [x]))).last_hidden_state, v), -1)[0].tolist())',
    'print(json.dumps(out))',
  ].join('\n');
  const p = spawnSync(join(venv(), 'bin', 'python'), ['-c', code, modelDir, ...wavs], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(REPO_ROOT, 'trainer-image'), OMP_NUM_THREADS: '1' } });
  if (p.status !== 0) throw new Error(`python exited ${String(p.status)}: ${p.stderr.slice(-2000)}`);
  return JSON.parse(p.stdout.trim().split('\n').pop() ?? '[]') as number[][];
}

describe('a speaker-role model from the trainer, served by the agent', () => {
  const work = tempDir('roles');
  const out = join(work, 'out', 'clinic-roles');
  let result: { compression?: { techniques: string[]; roleAccuracy?: number } };
  let roleAgent: Agent;
  let plainAgent: Agent;
  /** wav: the clip the agent gets; file: its speech window, for the PyTorch reference. */
  const clips: { voice: string; wav: Uint8Array; file: string }[] = [];

  beforeAll(async () => {
    const data = join(REPO_ROOT, 'data');
    const voices = [['en-us+m1', 'clinician'], ['en+m3', 'clinician'], ['en-us+f1', 'patient'], ['en+f3', 'patient'], ['en-029+m2', 'clinician'], ['en-029+f2', 'patient']];
    const job = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
      metadata: { name: 'clinic-roles', namespace: 'speech', uid: '70e5a1e2-0000-0000-0000-000000000000' },
      spec: {
        baseModel: { uri: `file://${EMBEDDED_MODEL}` },
        dataset: { scenario: 'general', synthesize: { corpusUri: `file://${data}/general/general_corpus.txt`, scenario: 'general', maxUtterances: 12, voices: voices.slice(0, 4).map(([v]) => v) } },
        method: { type: 'lora' },
        training: { batchSize: 8, maxSteps: 3 },
        compression: { speakerRole: { roles: ROLES, voices: voices.map(([voice, role]) => ({ voice, role })), lossWeight: 0.5 } },
        export: { onnx: true, quantization: 'int8', maxWerIncrease: 1 },
        output: { uri: `file://${out}` },
      },
    };
    writeFileSync(join(work, 'job.json'), JSON.stringify(job));
    const t0 = performance.now();
    const p = spawnSync(join(venv(), 'bin', 'python'), ['-m', 'whisperops_trainer', 'run'], { cwd: join(REPO_ROOT, 'trainer-image'), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: trainerEnv(work) });
    if (p.status !== 0) throw new Error(`trainer exited ${String(p.status)}: ${p.stderr.slice(-2000)} ${p.stdout.slice(-2000)}`);
    process.stdout.write(`trainer job: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    result = JSON.parse(readFileSync(join(work, 'result.json'), 'utf8')) as typeof result;
    // 16-kHz WAVs, so that the agent and the PyTorch reference read the same samples
    for (const [text, voice] of [['please describe the pain in your chest', 'en-029+m2'], ['the tablets help a little at night', 'en-029+f2']] as const) {
      const a = decodeWav(speak(text, voice, 160));
      const s16 = resample(a.samples, a.sampleRate, 16000);
      const wav = encodeWav16(s16, 16000);
      // The reference hears what the agent's head pools over: the speech window the agent cuts from the
      // clip (its leading and trailing silence dropped, 100 ms kept), not the whole file.
      const [window] = splitWindows(s16, 160_000, 16000);
      expect(window).toBeDefined();
      const file = join(work, `${voice}.wav`);
      writeFileSync(file, encodeWav16(s16.subarray(window?.[0] ?? 0, window?.[1] ?? s16.length), 16000));
      clips.push({ voice, wav, file });
    }
    const start = async (modelDir: string): Promise<Agent> => {
      const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1', '--dtype', 'fp32', '--model-dir', modelDir], {}, REPO_ROOT);
      if (o === 'help') throw new Error('unexpected');
      return startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0 }, pino({ level: 'silent' }));
    };
    roleAgent = await start(out);
    plainAgent = await start(EMBEDDED_MODEL);
  });
  afterAll(async () => {
    await roleAgent?.shutdown();
    await plainAgent?.shutdown();
  });

  it('is published with its head, by the trainer\'s own account', () => {
    expect(result.compression?.techniques).toEqual(['speakerRole']);
    expect(result.compression?.roleAccuracy).toBeGreaterThanOrEqual(0);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { whisperops_speaker_roles: string[] };
    expect(config.whisperops_speaker_roles).toEqual(ROLES);
    const manifest = JSON.parse(readFileSync(join(out, 'model-manifest.json'), 'utf8')) as { onnx: Record<string, string> };
    expect(manifest.onnx.roleHead).toBe('onnx/role_head.onnx');
  });

  it('returns the role in verbose_json (openai client), as the trainer\'s PyTorch head computes it', async () => {
    const client = new OpenAI({ baseURL: `${roleAgent.url}/v1`, apiKey: 'unused' });
    const want = torchRoleProbs(out, clips.map((c) => c.file));
    for (const [i, c] of clips.entries()) {
      const v = await client.audio.transcriptions.create({ file: await toFile(c.wav, 'a.wav'), model: 'clinic-roles', response_format: 'verbose_json' });
      // the openai package's own type: the usual fields are there and typed as it expects
      expect(typeof v.text).toBe('string');
      expect(typeof v.duration).toBe('number');
      expect(Array.isArray(v.segments)).toBe(true);
      const body = v as unknown as Verbose;
      const role = body.speaker_role;
      expect(role).toBeDefined();
      expect(Object.keys(role?.probabilities ?? {})).toEqual(ROLES);
      const probs = ROLES.map((r) => role?.probabilities[r] ?? NaN);
      expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
      expect(role?.role).toBe(ROLES[probs.indexOf(Math.max(...probs))]);
      // one window: the segment's role is the answer's, and both are the PyTorch head's probabilities
      expect(body.segments).toHaveLength(1);
      expect(body.segments[0]?.speaker_role).toEqual(role);
      probs.forEach((p, k) => expect(Math.abs(p - (want[i]?.[k] ?? NaN))).toBeLessThan(0.01));
    }
  });

  it('a model without a head answers verbose_json exactly as before', async () => {
    const client = new OpenAI({ baseURL: `${plainAgent.url}/v1`, apiKey: 'unused' });
    const c = clips[0];
    if (!c) throw new Error('no clip');
    const v = (await client.audio.transcriptions.create({ file: await toFile(c.wav, 'a.wav'), model: 'tiny-whisper-synth', response_format: 'verbose_json' })) as unknown as Verbose;
    expect(Object.keys(v)).toEqual(['task', 'language', 'duration', 'text', 'segments', 'request_id', 'model', 'model_version']);
    expect(Object.keys(v.segments[0] ?? {})).toEqual(['id', 'seek', 'start', 'end', 'text', 'tokens', 'temperature', 'avg_logprob', 'compression_ratio', 'no_speech_prob']);
  });

  it('gives each window of a batch its own role probabilities (pooled over its own audio frames)', async () => {
    const single = new InferencePool({ workers: 1, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 1 });
    const batched = new InferencePool({ workers: 1, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 2 });
    try {
      await single.load({ key: 'm', dir: out, dtype: 'fp32' });
      await batched.load({ key: 'm', dir: out, dtype: 'fp32' });
      const jobs = clips.map((c) => {
        const a = decodeWav(c.wav);
        return { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 };
      });
      const alone = await Promise.all(jobs.map((j) => single.run('m', { ...j, audio: j.audio.slice() })));
      // a first job holds the worker, so the two behind it are taken together
      const first = jobs[0];
      if (!first) throw new Error('no job');
      const holder = batched.run('m', { ...first, audio: first.audio.slice() });
      const together = await Promise.all(jobs.map((j) => batched.run('m', { ...j, audio: j.audio.slice() })));
      await holder;
      expect(together.map((r) => r.batchWindows)).toEqual([2, 2]);
      // the clips differ in length: each row of the batch pools over its own frames
      expect(clips[0]?.wav.length).not.toBe(clips[1]?.wav.length);
      together.forEach((r, i) => {
        const want = alone[i]?.windows[0]?.roleProbs ?? [];
        const got = r.windows[0]?.roleProbs ?? [];
        expect(got).toHaveLength(2);
        got.forEach((p, k) => expect(Math.abs(p - (want[k] ?? NaN))).toBeLessThan(1e-4));
      });
    } finally {
      await single.close();
      await batched.close();
    }
  });

  // The agent loads a new artifact under a new key (manifest sha256 + version) and drops the old one only
  // once the new one has loaded, so a refused load leaves the working model serving.
  it('refuses a role head that does not fit its model, and keeps serving the model it had', async () => {
    const pool = new InferencePool({ workers: 1, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 1 });
    try {
      await pool.load({ key: 'm', dir: out, dtype: 'int8' });
      const job = () => {
        const a = decodeWav(clips[0]?.wav ?? new Uint8Array());
        return { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 };
      };
      const before = await pool.run('m', job());
      expect(before.roles).toEqual(ROLES);
      // three roles named, a head with two outputs
      const three = join(work, 'three-roles');
      cpSync(out, three, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(three, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(three, 'config.json'), JSON.stringify({ ...cfg, whisperops_speaker_roles: ['clinician', 'patient', 'visitor'] }));
      await expect(pool.load({ key: 'three', dir: three, dtype: 'int8' })).rejects.toThrow('role head onnx/role_head.onnx (config.json names 3 roles: clinician, patient, visitor) in ' + three + ' does not fit the model: it gives role_logits of shape [1, 2] for one window, not [1, 3]');
      // a damaged graph
      const broken = join(work, 'broken-head');
      cpSync(out, broken, { recursive: true });
      writeFileSync(join(broken, 'onnx', 'role_head.onnx'), readFileSync(join(out, 'onnx', 'role_head.onnx')).subarray(0, 200));
      await expect(pool.load({ key: 'broken', dir: broken, dtype: 'int8' })).rejects.toThrow(/cannot load role head onnx\/role_head\.onnx .* from /);
      // names that are not a role list
      writeFileSync(join(broken, 'config.json'), JSON.stringify({ ...cfg, whisperops_speaker_roles: ['clinician'] }));
      await expect(pool.load({ key: 'names', dir: broken, dtype: 'int8' })).rejects.toThrow('config.json whisperops_speaker_roles must list at least 2 distinct role names');
      // the worker still serves the model it had, head and all
      const after = await pool.run('m', job());
      expect(after.roles).toEqual(ROLES);
      expect(after.text).toBe(before.text);
      expect(after.windows[0]?.roleProbs).toEqual(before.windows[0]?.roleProbs);
    } finally {
      await pool.close();
    }
  });
});
