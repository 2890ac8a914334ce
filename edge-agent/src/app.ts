// The agent's HTTP API, built without listening (tests drive it in-process; main listens):
// OpenAI-compatible POST /v1/audio/transcriptions and GET /v1/models, POST /v1/feedback, /healthz,
// /readyz, /metrics. Inference runs in worker threads, so this event loop only parses and routes.
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import multer from 'multer';
import type { Logger } from 'pino';
import { Rejected } from './admission.js';
import type { Admission } from './admission.js';
import { AudioFormatError, decodeWav } from './audio/wav.js';
import { datasetWav } from './dataset/layout.js';
import type { DatasetWriter } from './dataset/writer.js';
import { RecentRequests } from './feedback-store.js';
import type { InferencePool } from './inference/pool.js';
import type { JobResult } from './inference/protocol.js';
import type { Metrics, ScenarioLabels } from './metrics.js';
import type { ModelManager } from './models/model-manager.js';
import { wordErrors } from './text/wer.js';

export interface AppOptions {
  maxUploadBytes: number;
  maxAudioSeconds: number;
  pool: string;
}

export interface AppDeps {
  options: AppOptions;
  manager: ModelManager;
  inference: InferencePool;
  admission: Admission;
  metrics: Metrics;
  recent: RecentRequests;
  /** The dataset writer, when a dataset store is configured. */
  dataset: DatasetWriter | undefined;
  scenarios: ScenarioLabels;
  log: Logger;
  /** False while draining (SIGTERM): /readyz fails, new transcriptions get 503. */
  isAccepting: () => boolean;
}

const FORMATS = ['json', 'text', 'verbose_json', 'srt', 'vtt'] as const;
type ResponseFormat = (typeof FORMATS)[number];

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }
}

function sendError(res: Response, e: ApiError): void {
  res.status(e.status).json({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });
}

function timestamp(seconds: number, sep: ',' | '.'): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

function segmentsOf(result: JobResult, temperature: number) {
  return result.windows.map((w, i) => ({
    id: i,
    seek: Math.round(w.start * 100),
    start: Number(w.start.toFixed(3)),
    end: Number(w.end.toFixed(3)),
    text: w.text,
    tokens: w.tokens,
    temperature,
    avg_logprob: Number(w.avgLogprob.toFixed(5)),
    compression_ratio: 1,
    no_speech_prob: 0,
  }));
}

export function createApp(deps: AppDeps): express.Express {
  const { options, manager, inference, admission, metrics, recent, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: options.maxUploadBytes, files: 1, fields: 20, fieldSize: 64 * 1024 } });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', (_req, res) => {
    const ready = manager.ready && deps.isAccepting();
    metrics.ready.set(ready ? 1 : 0);
    res.status(ready ? 200 : 503).json({ ready, models: manager.ready, draining: !deps.isAccepting() });
  });

  app.get('/metrics', async (_req, res) => {
    metrics.ready.set(manager.ready && deps.isAccepting() ? 1 : 0);
    res.set('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });

  const modelEntry = (name: string) => {
    const r = manager.table.get(name);
    return {
      id: name,
      object: 'model',
      created: 0,
      owned_by: `whisperops/${options.pool}`,
      stable: r ? { version: r.stable.version, sha256: r.stable.sha256 } : undefined,
      candidate: r?.candidate ? { version: r.candidate.model.version, sha256: r.candidate.model.sha256, weight: r.candidate.weight } : undefined,
    };
  };

  app.get('/v1/models', (_req, res) => {
    metrics.requests.inc({ route: 'models', code: '200', deployment: '', model_version: '' });
    res.json({ object: 'list', data: [...manager.table.keys()].map(modelEntry) });
  });

  app.get('/v1/models/:id', (req, res) => {
    const id = String(req.params.id);
    if (!manager.table.has(id)) {
      metrics.requests.inc({ route: 'models', code: '404', deployment: '', model_version: '' });
      sendError(res, new ApiError(404, `The model '${id}' does not exist`, 'model_not_found', 'model'));
      return;
    }
    metrics.requests.inc({ route: 'models', code: '200', deployment: '', model_version: '' });
    res.json(modelEntry(id));
  });

  const runUpload = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      upload.single('file')(req, res, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error('multipart parsing failed')) : resolve()));
    });

  app.post('/v1/audio/transcriptions', async (req, res) => {
    const t0 = performance.now();
    const requestId = RecentRequests.newId();
    res.set('x-request-id', requestId);
    let deployment = '';
    let version = '';
    const fail = (e: ApiError, reason: string): void => {
      metrics.requests.inc({ route: 'transcriptions', code: String(e.status), deployment, model_version: version });
      metrics.rejected.inc({ reason });
      sendError(res, e);
    };
    if (!deps.isAccepting()) {
      res.set('Connection', 'close');
      fail(new ApiError(503, 'the agent is shutting down', 'shutting_down'), 'shutting_down');
      return;
    }
    if (!req.is('multipart/form-data')) {
      fail(new ApiError(400, 'the request must be multipart/form-data with a "file" field', 'invalid_request'), 'bad_request');
      return;
    }
    try {
      await runUpload(req, res);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'LIMIT_FILE_SIZE') fail(new ApiError(413, `the file is larger than the limit of ${options.maxUploadBytes} bytes`, 'file_too_large', 'file'), 'too_large');
      else fail(new ApiError(400, `malformed multipart request: ${e.message ?? 'unknown error'}`, 'invalid_request'), 'bad_request');
      return;
    }
    const tParsed = performance.now();
    const body = (req.body ?? {}) as Record<string, unknown>;
    const field = (name: string): string | undefined => (typeof body[name] === 'string' ? body[name] : undefined);
    const file = req.file;
    if (!file) {
      fail(new ApiError(400, 'no audio: the multipart field "file" is missing', 'missing_file', 'file'), 'bad_request');
      return;
    }
    const format = (field('response_format') ?? 'json') as ResponseFormat;
    if (!FORMATS.includes(format)) {
      fail(new ApiError(400, `response_format must be one of ${FORMATS.join(', ')}`, 'invalid_value', 'response_format'), 'bad_request');
      return;
    }
    const temperature = field('temperature') === undefined ? 0 : Number(field('temperature'));
    if (!Number.isFinite(temperature) || temperature < 0 || temperature > 1) {
      fail(new ApiError(400, 'temperature must be a number between 0 and 1', 'invalid_value', 'temperature'), 'bad_request');
      return;
    }
    const modelName = field('model');
    const picked = manager.pick(modelName === undefined || modelName === '' ? undefined : modelName);
    if (!picked) {
      if (!manager.ready) fail(new ApiError(503, 'no model is loaded yet', 'not_ready'), 'not_ready');
      else fail(new ApiError(404, `The model '${modelName ?? ''}' does not exist`, 'model_not_found', 'model'), 'unknown_model');
      return;
    }
    deployment = picked.deployment;
    version = picked.model.version;
    const language = (field('language') ?? picked.model.info.languages[0] ?? 'en').toLowerCase();
    if (!picked.model.info.languages.includes(language)) {
      fail(new ApiError(400, `language '${language}' is not supported by ${deployment} (supported: ${picked.model.info.languages.join(', ')})`, 'unsupported_language', 'language'), 'bad_request');
      return;
    }
    let audio;
    try {
      audio = decodeWav(file.buffer, { maxDurationSeconds: options.maxAudioSeconds });
    } catch (err) {
      if (err instanceof AudioFormatError) {
        const status = err.kind === 'unsupported_format' || err.kind === 'unsupported_codec' ? 415 : err.kind === 'too_long' ? 413 : 400;
        fail(new ApiError(status, err.message, err.kind === 'empty' ? 'empty_file' : err.kind === 'too_long' ? 'audio_too_long' : err.kind, 'file'), err.kind);
        return;
      }
      throw err;
    }
    const tDecoded = performance.now();
    const abort = new AbortController();
    const onClose = (): void => {
      if (!res.writableEnded) abort.abort();
    };
    res.on('close', onClose);
    const tAdmit = performance.now();
    const ticket = admission.acquire(abort.signal);
    if (ticket instanceof Rejected) {
      res.set('Retry-After', String(ticket.retryAfterSeconds));
      fail(new ApiError(429, `the agent is at capacity (${admission.maxActive} streams, ${admission.maxQueue} queued); retry after ${ticket.retryAfterSeconds} s`, 'overloaded'), 'overloaded');
      return;
    }
    let release: () => void;
    try {
      release = await ticket;
    } catch {
      metrics.rejected.inc({ reason: 'client_gone' });
      return;
    }
    const done = manager.acquire(picked.model);
    const tQueued = performance.now();
    let result: JobResult;
    // The sample's WAV for the dataset store, made before the samples move into the worker: the
    // upload itself when it is a plain 16-bit PCM WAV (no copy), else the decoded audio as one.
    const kept = recent.keepsAudio ? datasetWav(file.buffer, audio) : undefined;
    try {
      result = await inference.run(picked.model.key, { audio: audio.samples, sampleRate: audio.sampleRate, language, prompt: field('prompt') ?? '', temperature }, { transfer: true });
    } catch (err) {
      log.error({ requestId, deployment, version, err: (err as Error).message }, 'Transcription failed');
      fail(new ApiError(500, `transcription failed: ${(err as Error).message}`, 'inference_failed'), 'inference_error');
      return;
    } finally {
      done();
      release();
    }
    const inferSeconds = (result.featuresMs + result.encoderMs + result.decoderMs) / 1000;
    const totalSeconds = (performance.now() - t0) / 1000;
    admission.observeServiceTime((performance.now() - tQueued) / 1000);
    const labels = { deployment, model_version: version };
    metrics.inferenceDuration.observe(labels, inferSeconds);
    metrics.queueWait.observe(labels, Math.max(0, (performance.now() - tAdmit) / 1000 - inferSeconds));
    metrics.rtf.observe(labels, inferSeconds / Math.max(result.audioSeconds, 1e-3));
    metrics.audioSeconds.inc(labels, result.audioSeconds);
    recent.remember(
      { id: requestId, deployment, modelVersion: version, role: picked.role, text: result.text, at: Date.now(), audioSeconds: result.audioSeconds },
      kept,
    );
    res.set('x-whisperops-deployment', deployment);
    res.set('x-whisperops-model-version', version);
    res.set('x-whisperops-model-role', picked.role);
    // Where the time went (W3C Server-Timing, milliseconds): upload parsing, WAV decoding, waiting for a
    // stream and a worker, the worker's front end, encoder and decoder, and the whole request so far.
    const tDone = performance.now();
    const inWorker = result.featuresMs + result.encoderMs + result.decoderMs;
    res.set(
      'Server-Timing',
      [
        ['parse', tParsed - t0],
        ['wav', tDecoded - tParsed],
        ['queue', Math.max(0, tQueued - tAdmit)],
        ['hop', Math.max(0, tDone - tQueued - inWorker)],
        ['features', result.featuresMs],
        ['encoder', result.encoderMs],
        ['decoder', result.decoderMs],
        ['total', tDone - t0],
      ]
        .map(([k, v]) => `${String(k)};dur=${Number(v).toFixed(2)}`)
        .join(', '),
    );
    metrics.requests.inc({ route: 'transcriptions', code: '200', ...labels });
    metrics.requestDuration.observe(labels, totalSeconds);
    switch (format) {
      case 'json':
        res.json({ text: result.text });
        return;
      case 'text':
        res.type('text/plain').send(result.text + '\n');
        return;
      case 'verbose_json':
        res.json({
          task: 'transcribe',
          language: language === 'en' ? 'english' : language,
          duration: Number(result.audioSeconds.toFixed(3)),
          text: result.text,
          segments: segmentsOf(result, temperature),
          request_id: requestId,
          model: deployment,
          model_version: version,
        });
        return;
      case 'srt':
        res.type('text/plain').send(
          result.windows.map((w, i) => `${i + 1}\n${timestamp(w.start, ',')} --> ${timestamp(w.end, ',')}\n${w.text.trim()}\n`).join('\n'),
        );
        return;
      case 'vtt':
        res.type('text/vtt').send('WEBVTT\n\n' + result.windows.map((w) => `${timestamp(w.start, '.')} --> ${timestamp(w.end, '.')}\n${w.text.trim()}\n`).join('\n'));
        return;
    }
  });

  app.post('/v1/feedback', express.json({ limit: '64kb' }), (req, res) => {
    const fail = (e: ApiError): void => {
      metrics.requests.inc({ route: 'feedback', code: String(e.status), deployment: '', model_version: '' });
      metrics.feedback.inc({ result: e.code });
      sendError(res, e);
    };
    const body = (req.body ?? {}) as Record<string, unknown>;
    const id = body.request_id;
    const reference = body.reference ?? body.text;
    if (typeof id !== 'string' || id === '') {
      fail(new ApiError(400, '"request_id" (string) is required', 'invalid_value', 'request_id'));
      return;
    }
    if (typeof reference !== 'string') {
      fail(new ApiError(400, '"reference" (the correct transcript, string) is required', 'invalid_value', 'reference'));
      return;
    }
    if (body.scenario !== undefined && typeof body.scenario !== 'string') {
      fail(new ApiError(400, '"scenario" must be a string', 'invalid_value', 'scenario'));
      return;
    }
    const r = recent.get(id);
    if (!r) {
      fail(new ApiError(404, `no recent request with id ${id} (unknown or expired)`, 'request_not_found', 'request_id'));
      return;
    }
    if (r.feedbackGiven) {
      fail(new ApiError(409, `feedback for ${id} was already counted`, 'duplicate_feedback', 'request_id'));
      return;
    }
    r.feedbackGiven = true;
    const scenario = deps.scenarios.label(body.scenario);
    const e = wordErrors(reference, r.text);
    const labels = { deployment: r.deployment, model_version: r.modelVersion, scenario };
    metrics.wordErrors.inc(labels, e.errors);
    metrics.referenceWords.inc(labels, e.referenceWords);
    // The sample goes to the dataset writer's queue (or is dropped and counted) at once: the upload
    // happens in the background and never delays this answer.
    let sample: string = 'disabled';
    if (deps.dataset) {
      sample = deps.dataset.offer(
        { requestId: id, reference, scenario, deployment: r.deployment, modelVersion: r.modelVersion, role: r.role, hypothesis: r.text, time: r.at, audioSeconds: r.audioSeconds },
        recent.takeAudio(r),
      );
    }
    metrics.feedback.inc({ result: 'counted' });
    metrics.requests.inc({ route: 'feedback', code: '200', deployment: r.deployment, model_version: r.modelVersion });
    res.json({
      request_id: id,
      deployment: r.deployment,
      model_version: r.modelVersion,
      scenario,
      transcript: r.text,
      word_errors: e.errors,
      reference_words: e.referenceWords,
      substitutions: e.substitutions,
      deletions: e.deletions,
      insertions: e.insertions,
      wer: e.referenceWords ? e.errors / e.referenceWords : null,
      dataset_sample: sample,
    });
  });

  app.use((_req, res) => {
    sendError(res, new ApiError(404, 'not found', 'not_found'));
  });

  // Express error handler (4 arguments): bad JSON bodies and anything unexpected.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.parse.failed') {
      sendError(res, new ApiError(400, 'the body is not valid JSON', 'invalid_json'));
      return;
    }
    if (e.type === 'entity.too.large') {
      sendError(res, new ApiError(413, 'the body is too large', 'body_too_large'));
      return;
    }
    log.error({ err: e.message }, 'Unhandled error');
    sendError(res, new ApiError(500, 'internal error', 'internal_error'));
  });

  return app;
}
