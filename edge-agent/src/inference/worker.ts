// Worker thread: owns ONNX sessions (one WhisperModel per loaded model key) and runs jobs batched
// across windows. Everything here may block; the main thread's event loop never waits on it.
import { parentPort, workerData } from 'node:worker_threads';
import { resample } from '../audio/resample.js';
import type { FromWorker, JobResult, ToWorker, WorkerInit } from './protocol.js';
import { splitWindows, WhisperModel } from './whisper-model.js';
import type { DecodeRequest } from './whisper-model.js';

const init = workerData as WorkerInit;
const cancel = init.cancel ? new Int32Array(init.cancel) : undefined;

/** The pool's watchdog gave up on this worker's run: stop between two batches of windows. */
function checkCancelled(): void {
  if (cancel && Atomics.load(cancel, 0) !== 0) throw new Error('cancelled by the inference watchdog');
}
const models = new Map<string, WhisperModel>();
/** Windows decoded together, per model (LoadSpec.maxBatch, else the pool's). */
const maxBatches = new WeakMap<WhisperModel, number>();
const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');

function send(msg: FromWorker): void {
  port?.postMessage(msg);
}

/** Feature buffers reused across windows (one per batch slot), so each window allocates no 320 KB array. */
const featureBuffers: Float32Array[] = [];
function featureBuffer(slot: number, size: number): Float32Array {
  let b = featureBuffers[slot];
  if (!b || b.length !== size) {
    b = new Float32Array(size);
    featureBuffers[slot] = b;
  }
  return b;
}

async function runJobs(model: WhisperModel, jobs: Extract<ToWorker, { type: 'run' }>['jobs']): Promise<JobResult[]> {
  const sr = model.preprocessor.sampling_rate;
  const frameCount = model.preprocessor.feature_size * model.preprocessor.nb_max_frames;
  interface Win {
    job: number;
    start: number;
    end: number;
    audio: Float32Array;
    previous: number[];
    forced: number[];
  }
  const wins: Win[] = [];
  const featuresMs = new Array<number>(jobs.length).fill(0);
  jobs.forEach((job, j) => {
    const t0 = performance.now();
    const audio = resample(job.audio, job.sampleRate, sr);
    const previous = model.previousIds(job.prompt);
    model.promptIds(job.language); // throws on unsupported languages before any work
    const forced = job.prefix?.trim() ? model.forcedIds(job.prefix) : [];
    for (const [start, end] of splitWindows(audio, model.windowSamples, sr)) wins.push({ job: j, start, end, audio, previous, forced: wins.every((w) => w.job !== j) ? forced : [] });
    featuresMs[j] = performance.now() - t0;
  });
  const results: JobResult[] = jobs.map((job, j) => ({
    id: job.id,
    windows: [],
    text: '',
    audioSeconds: job.audio.length / job.sampleRate,
    featuresMs: featuresMs[j] ?? 0,
    encoderMs: 0,
    decoderMs: 0,
    batchWindows: 0,
    ...(model.roles.length ? { roles: model.roles } : {}),
  }));
  const maxBatch = maxBatches.get(model) ?? init.maxBatch;
  for (let i = 0; i < wins.length; i += maxBatch) {
    checkCancelled();
    const chunk = wins.slice(i, i + maxBatch);
    // Features are computed per batch, into the reused buffers.
    const reqs: DecodeRequest[] = [];
    for (const [slot, w] of chunk.entries()) {
      const t0 = performance.now();
      const features = await model.logMel.compute(w.audio.subarray(w.start, w.end), featureBuffer(slot, frameCount));
      const r = results[w.job];
      if (r) r.featuresMs += performance.now() - t0;
      const job = jobs[w.job];
      reqs.push({ features, previous: w.previous, forced: w.forced, language: job?.language ?? 'en', temperature: job?.temperature ?? 0, validFrames: model.validFrames(w.end - w.start) });
    }
    const decoded = await model.decode(reqs);
    chunk.forEach((w, k) => {
      const d = decoded[k];
      const r = results[w.job];
      if (!d || !r) return;
      r.windows.push({ start: w.start / sr, end: w.end / sr, text: d.text, tokens: d.tokens, avgLogprob: d.avgLogprob, ...(d.roleProbs ? { roleProbs: d.roleProbs } : {}) });
      r.encoderMs += d.encoderMs;
      r.decoderMs += d.decoderMs;
      r.batchWindows = Math.max(r.batchWindows, chunk.length);
    });
  }
  for (const r of results) r.text = r.windows.map((w) => w.text).join('').trim();
  return results;
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'load': {
      try {
        const t0 = performance.now();
        const model = await WhisperModel.load(msg.spec.dir, { dtype: msg.spec.dtype, intraOpThreads: init.intraOpThreads, executionProviders: init.executionProviders });
        maxBatches.set(model, msg.spec.maxBatch ?? init.maxBatch);
        const sr = model.preprocessor.sampling_rate;
        // Warm-up: one window of a quiet tone, so the first real request pays no lazy initialisation.
        const tone = Float32Array.from({ length: sr }, (_, i) => 0.1 * Math.sin((2 * Math.PI * 440 * i) / sr));
        const t1 = performance.now();
        await runJobs(model, [{ id: 0, audio: tone, sampleRate: sr, language: model.languages[0] ?? 'en', prompt: '', temperature: 0 }]);
        const old = models.get(msg.spec.key);
        models.set(msg.spec.key, model);
        await old?.release();
        send({
          type: 'loaded',
          reqId: msg.reqId,
          info: { key: msg.spec.key, languages: model.languages, windowSeconds: model.windowSamples / sr, sampleRate: sr, loadMs: t1 - t0, warmupMs: performance.now() - t1, ...(model.roles.length ? { roles: model.roles } : {}) },
        });
      } catch (err) {
        send({ type: 'failed', reqId: msg.reqId, message: (err as Error).message });
      }
      return;
    }
    case 'unload': {
      const m = models.get(msg.key);
      models.delete(msg.key);
      await m?.release();
      send({ type: 'unloaded', reqId: msg.reqId });
      return;
    }
    case 'close': {
      for (const [key, m] of models) {
        models.delete(key);
        await m.release();
      }
      port?.close();
      return;
    }
    case 'fault':
      throw new Error('injected fault');
    case 'run': {
      const model = models.get(msg.key);
      if (!model) {
        send({ type: 'failed', reqId: msg.reqId, message: `model ${msg.key} is not loaded in this worker` });
        return;
      }
      try {
        send({ type: 'results', reqId: msg.reqId, results: await runJobs(model, msg.jobs) });
      } catch (err) {
        send({ type: 'failed', reqId: msg.reqId, message: (err as Error).message });
      }
      return;
    }
  }
}

// Messages are handled one at a time, in order. A handler that throws answers `failed` (the caller
// never waits forever) and the chain goes on: one rejection never stops the later messages.
let chain: Promise<void> = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  const step = (): Promise<void> =>
    handle(msg).catch((err: unknown) => {
      send({ type: 'failed', reqId: msg.reqId, message: err instanceof Error ? err.message : String(err) });
    });
  chain = chain.then(step, step);
});
send({ type: 'ready' });
