// The edge agent serves a compressed model unchanged: the real trainer (`python -m whisperops_trainer
// run`) distils the embedded model into a student (encoder 2 of 4 layers, decoder 2 of 4, FFN 512 of
// 1024) and prunes 40 % of the student's attention heads (encoder self, decoder self and cross-attention:
// 10 of 24), a few steps on synthesized speech; the agent's own inference pool (the code path of every
// transcription request) loads the published artifact, fp32 and INT8, whose decoder layers have their own
// key/value cache shapes, and transcribes real speech with it; a copy whose config.json layout disagrees
// with its graphs is refused at load and leaves the loaded model serving.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeWav } from '../../edge-agent/src/audio/wav.js';
import { InferencePool } from '../../edge-agent/src/inference/pool.js';
import { EMBEDDED_MODEL, REPO_ROOT, speak, tempDir } from '../../edge-agent/src/testing/speech.js';

jest.setTimeout(900_000);

interface Layout { encoder_layers: number; decoder_layers: number; whisperops_attention_heads: { encoder: number[]; decoder: number[]; cross: number[] } }
interface Result { compression?: { techniques: string[]; paramsBefore: number; paramsAfter: number; headsBefore: number; headsAfter: number } }

describe('a distilled, head-pruned model from the trainer', () => {
  const work = tempDir('compressed');
  const out = join(work, 'out', 'student');
  let result: Result;
  let pool: InferencePool;

  beforeAll(() => {
    const venv = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'setup', 'python.sh'), '--print'], { encoding: 'utf8' }).stdout.trim().split('\n').pop() ?? '';
    const data = join(REPO_ROOT, 'data');
    const job = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
      metadata: { name: 'student', namespace: 'speech', uid: '5a1e2d3c-0000-0000-0000-000000000000' },
      spec: {
        baseModel: { uri: `file://${EMBEDDED_MODEL}` },
        dataset: { scenario: 'general', synthesize: { corpusUri: `file://${data}/general/general_corpus.txt`, scenario: 'general', maxUtterances: 16 } },
        method: { type: 'full' },
        training: { learningRate: 0.0003, batchSize: 8, maxSteps: 2 },
        compression: { distillation: { encoderLayers: 2, decoderLayers: 2, ffnDim: 512 }, headPruning: { fraction: 0.4, importanceSamples: 8 } },
        export: { onnx: true, quantization: 'int8', maxWerIncrease: 1 },
        output: { uri: `file://${out}` },
      },
    };
    writeFileSync(join(work, 'job.json'), JSON.stringify(job));
    const p = spawnSync(join(venv, 'bin', 'python'), ['-m', 'whisperops_trainer', 'run'], {
      cwd: join(REPO_ROOT, 'trainer-image'),
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      env: {
        ...process.env, PYTHONPATH: join(REPO_ROOT, 'trainer-image'), WHISPEROPS_JOB_FILE: join(work, 'job.json'),
        WHISPEROPS_RESULT_FILE: join(work, 'result.json'), WHISPEROPS_WORK_DIR: join(work, 'work'), WHISPEROPS_EVAL_MAX: '4',
        OMP_NUM_THREADS: '2', TOKENIZERS_PARALLELISM: 'false',
      },
    });
    if (p.status !== 0) throw new Error(`trainer exited ${String(p.status)}: ${p.stderr.slice(-2000)} ${p.stdout.slice(-2000)}`);
    result = JSON.parse(readFileSync(join(work, 'result.json'), 'utf8')) as Result;
    pool = new InferencePool({ workers: 1, intraOpThreads: 1, executionProviders: ['cpu'], maxBatch: 2 });
  });
  afterAll(() => pool.close());

  it('is smaller than its teacher by the trainer\'s own account', () => {
    const c = result.compression;
    expect(c?.techniques).toEqual(['distillation', 'headPruning']);
    expect(c?.paramsAfter).toBeLessThanOrEqual(0.5 * (c?.paramsBefore ?? 0));
    expect([c?.headsBefore, c?.headsAfter]).toEqual([24, 14]);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Layout;
    expect([config.encoder_layers, config.decoder_layers]).toEqual([2, 2]);
    const lay = config.whisperops_attention_heads;
    expect([lay.encoder.length, lay.decoder.length, lay.cross.length]).toEqual([2, 2, 2]);
    expect([...lay.encoder, ...lay.decoder, ...lay.cross].reduce((a, b) => a + b, 0)).toBe(14);
    // at most 6 of the 10 can come from the encoder (every block keeps a head): the decoder is not uniform
    expect(Math.min(...lay.decoder, ...lay.cross)).toBeLessThan(4);
  });

  it('publishes a merged decoder whose past key/value inputs have each layer\'s own head count', async () => {
    const lay = (JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Layout).whisperops_attention_heads;
    for (const file of ['decoder_model_merged.onnx', 'decoder_model_merged_quantized.onnx']) {
      const s = await ort.InferenceSession.create(join(out, 'onnx', file));
      const shapes = new Map(s.inputMetadata.map((m) => [m.name, m.isTensor ? m.shape : []]));
      for (let l = 0; l < 2; l++) {
        for (const kv of ['key', 'value']) {
          expect(shapes.get(`past_key_values.${l}.decoder.${kv}`)?.slice(1)).toEqual([lay.decoder[l], 'past_decoder_sequence_length', 64]);
          expect(shapes.get(`past_key_values.${l}.encoder.${kv}`)?.slice(1)).toEqual([lay.cross[l], 'encoder_sequence_length', 64]);
        }
      }
      await s.release();
    }
  });

  it.each(['fp32', 'int8'] as const)('is loaded and transcribes speech in the agent\'s inference pool (%s)', async (dtype) => {
    const info = await pool.load({ key: dtype, dir: out, dtype });
    expect(info).toMatchObject({ languages: ['en'], windowSeconds: 10, sampleRate: 16000 });
    const a = decodeWav(speak('your program is sick'));
    const jobs = [0, 1].map(() => pool.run(dtype, { audio: a.samples.slice(), sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 }));
    const results = await Promise.all(jobs);
    for (const r of results) expect(typeof r.text).toBe('string');
    expect(results[0]?.text).toBe(results[1]?.text);
  });

  it('refuses a copy whose config.json layout disagrees with its graphs, and the loaded model keeps serving', async () => {
    await pool.load({ key: 'good', dir: out, dtype: 'int8' });
    const bad = join(work, 'mismatch');
    cpSync(out, bad, { recursive: true });
    const config = JSON.parse(readFileSync(join(bad, 'config.json'), 'utf8')) as Layout;
    const lay = config.whisperops_attention_heads;
    const l = lay.cross.findIndex((h) => h < 4) >= 0 ? lay.cross.findIndex((h) => h < 4) : 0;
    const graphHeads = lay.cross[l] ?? 0;
    lay.cross[l] = graphHeads < 4 ? graphHeads + 1 : graphHeads - 1;
    writeFileSync(join(bad, 'config.json'), JSON.stringify(config));
    await expect(pool.load({ key: 'bad', dir: bad, dtype: 'int8' })).rejects.toThrow(
      `decoder_model_merged input past_key_values.${l}.encoder.key has ${graphHeads} heads but the layout gives layer ${l} ${lay.cross[l]}`,
    );
    const a = decodeWav(speak('your program is sick'));
    const r = await pool.run('good', { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 });
    expect(typeof r.text).toBe('string');
    await expect(pool.run('bad', { audio: a.samples, sampleRate: a.sampleRate, language: 'en', prompt: '', temperature: 0 })).rejects.toThrow('model bad is not loaded');
  });
});
