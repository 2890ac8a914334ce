// POST /v1/audio/transcriptions: admit (upload budget) before the body is read, read it under a size cap
// and a deadline, parse (pure), decode, take a stream slot, run, measure, format (json/text/verbose_json/
// srt/vtt or server-sent events with stream=true).
import type { Request, Response } from 'express';
import multer from 'multer';
import { Rejected } from '../admission.js';
import type { Admission } from '../admission.js';
import { resample } from '../audio/resample.js';
import { splitWindows } from '../audio/speech-windows.js';
import { datasetWav } from '../dataset/layout.js';
import { RecentRequests } from '../feedback-store.js';
import { InferenceTimeoutError } from '../inference/pool.js';
import type { InferencePool } from '../inference/pool.js';
import type { JobResult, TranscribeJob } from '../inference/protocol.js';
import type { Metrics } from '../metrics.js';
import type { ModelManager } from '../models/model-manager.js';
import type { UploadBudget } from '../upload-budget.js';
import type { Logger } from 'pino';
import { ApiError, sendError } from './api-error.js';
import { formatTranscription, sseEvent, textDelta, textDone } from './response-formats.js';
import { declaredBodyBytes, decodeUpload, isRefusal, parseTranscriptionFields } from './transcription-request.js';

/** Room for the multipart framing and the text fields next to the file (20 fields × 64 KiB at most). */
export const MULTIPART_OVERHEAD_BYTES = 20 * 64 * 1024 + 64 * 1024;

export interface TranscriptionRouteDeps {
  maxUploadBytes: number;
  maxAudioSeconds: number;
  /** Seconds a client has to send its whole body once admitted (slow bodies get 408). */
  bodyTimeoutSeconds: number;
  manager: ModelManager;
  inference: InferencePool;
  admission: Admission;
  uploads: UploadBudget;
  metrics: Metrics;
  recent: RecentRequests;
  log: Logger;
  isAccepting: () => boolean;
}

/** Takes a stream slot (shared by file and live transcriptions): the release, or an ApiError (429), or undefined when the client left while queued. */
export async function takeStream(admission: Admission, signal: AbortSignal): Promise<(() => void) | ApiError | undefined> {
  const ticket = admission.acquire(signal);
  if (ticket instanceof Rejected) {
    const e = new ApiError(429, `the agent is at capacity (${admission.maxActive} streams, ${admission.maxQueue} queued); retry after ${ticket.retryAfterSeconds} s`, 'overloaded');
    (e as ApiError & { retryAfterSeconds?: number }).retryAfterSeconds = ticket.retryAfterSeconds;
    return e;
  }
  try {
    return await ticket;
  } catch {
    return undefined;
  }
}

/**
 * stream=true: the audio is cut into the speech windows the worker would cut (on this thread: resampling
 * and the energy windowing only), each window runs as its own job, one after another (the request uses
 * one worker at a time, like a file request), and each window's text goes out as a
 * `transcript.text.delta` as soon as it is decoded. The deltas add up to the text of the result.
 */
async function streamWindows(inference: InferencePool, key: string, job: Omit<TranscribeJob, 'id'>, info: { sampleRate: number; windowSeconds: number }, res: Response, signal: AbortSignal): Promise<JobResult> {
  const sr = info.sampleRate;
  const audio = resample(job.audio, job.sampleRate, sr);
  const result: JobResult = { id: 0, windows: [], text: '', audioSeconds: job.audio.length / job.sampleRate, featuresMs: 0, encoderMs: 0, decoderMs: 0, batchWindows: 1 };
  res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  let sent = '';
  for (const [start, end] of splitWindows(audio, Math.round(info.windowSeconds * sr), sr)) {
    if (signal.aborted) break;
    const r = await inference.run(key, { ...job, audio: audio.slice(start, end), sampleRate: sr }, { transfer: true });
    result.featuresMs += r.featuresMs;
    result.encoderMs += r.encoderMs;
    result.decoderMs += r.decoderMs;
    for (const w of r.windows) result.windows.push({ ...w, start: w.start + start / sr, end: w.end + start / sr });
    const text = result.windows.map((w) => w.text).join('').trim();
    if (text.length > sent.length && text.startsWith(sent)) {
      res.write(sseEvent(textDelta(text.slice(sent.length))));
      sent = text;
    }
  }
  result.text = result.windows.map((w) => w.text).join('').trim();
  return result;
}

export function transcriptionRoute(deps: TranscriptionRouteDeps): (req: Request, res: Response) => Promise<void> {
  const { manager, inference, admission, uploads, metrics, recent, log } = deps;
  const maxBodyBytes = deps.maxUploadBytes + MULTIPART_OVERHEAD_BYTES;
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: deps.maxUploadBytes, files: 1, fields: 20, fieldSize: 64 * 1024, parts: 21, fieldNameSize: 100, headerPairs: 50 },
  });
  const runUpload = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      upload.single('file')(req, res, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error('multipart parsing failed')) : resolve()));
    });

  return async (req, res) => {
    const t0 = performance.now();
    const requestId = RecentRequests.newId();
    res.set('x-request-id', requestId);
    let deployment = '';
    let version = '';
    const fail = (e: ApiError, reason: string, close = false): void => {
      if (res.headersSent) return;
      metrics.requests.inc({ route: 'transcriptions', code: String(e.status), deployment, model_version: version });
      metrics.rejected.inc({ reason });
      // Refused before the body was read: close the connection rather than read what is left of it.
      if (close) res.set('Connection', 'close');
      sendError(res, e);
    };
    if (!deps.isAccepting()) {
      fail(new ApiError(503, 'the agent is shutting down', 'shutting_down'), 'shutting_down', true);
      return;
    }
    if (!req.is('multipart/form-data')) {
      fail(new ApiError(400, 'the request must be multipart/form-data with a "file" field', 'invalid_request'), 'bad_request', true);
      return;
    }
    const declared = declaredBodyBytes(req.get('content-length'), maxBodyBytes);
    if (isRefusal(declared)) {
      fail(declared.error, declared.reason, true);
      return;
    }
    // The client leaving (or the response ending any way) aborts waits and releases what is held.
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    // 1. The upload budget, before a byte of the body is read.
    const reservation = uploads.reserve(declared, abort.signal);
    if (reservation instanceof Rejected) {
      res.set('Retry-After', String(admission.retryAfter()));
      fail(new ApiError(429, `the agent is at capacity (upload budget of ${uploads.capacityBytes} bytes in use, ${uploads.maxWaiters} waiting); retry later`, 'overloaded'), 'overloaded', true);
      return;
    }
    let releaseBudget: () => void;
    try {
      releaseBudget = await reservation;
    } catch {
      metrics.rejected.inc({ reason: 'client_gone' });
      return;
    }
    res.once('close', releaseBudget);
    if (abort.signal.aborted) return;
    // 2. The body, under its size caps and a deadline: the whole body is counted as it streams (a
    // chunked body past the largest allowed one gets 413 at once; multer/busboy also cap the file and
    // every field), and the client has bodyTimeoutSeconds to send it.
    let received = 0;
    const countBody = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBodyBytes) {
        req.off('data', countBody);
        fail(new ApiError(413, `the request body is larger than the limit of ${maxBodyBytes} bytes`, 'file_too_large', 'file'), 'too_large', true);
        res.once('finish', () => req.socket.destroy());
      }
    };
    req.on('data', countBody);
    const bodyTimer = setTimeout(() => {
      fail(new ApiError(408, `the request body did not arrive within ${deps.bodyTimeoutSeconds} s`, 'request_timeout'), 'body_timeout', true);
      res.once('finish', () => req.socket.destroy());
    }, deps.bodyTimeoutSeconds * 1000);
    try {
      await runUpload(req, res);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'LIMIT_FILE_SIZE') fail(new ApiError(413, `the file is larger than the limit of ${deps.maxUploadBytes} bytes`, 'file_too_large', 'file'), 'too_large', true);
      else if (e.code?.startsWith('LIMIT_')) fail(new ApiError(413, `multipart limit exceeded: ${e.message ?? e.code}`, 'body_too_large'), 'too_large', true);
      else fail(new ApiError(400, `malformed multipart request: ${e.message ?? 'unknown error'}`, 'invalid_request'), 'bad_request', true);
      return;
    } finally {
      clearTimeout(bodyTimer);
      req.off('data', countBody);
    }
    if (res.headersSent || abort.signal.aborted) return;
    const tParsed = performance.now();
    // 3. Parse (pure) and decode.
    const parsed = parseTranscriptionFields((req.body ?? {}) as Record<string, unknown>, req.file !== undefined, manager);
    if (isRefusal(parsed)) {
      fail(parsed.error, parsed.reason);
      return;
    }
    deployment = parsed.deployment;
    version = parsed.modelVersion;
    const file = req.file?.buffer ?? new Uint8Array();
    const audio = decodeUpload(file, deps.maxAudioSeconds);
    if (isRefusal(audio)) {
      fail(audio.error, audio.reason);
      return;
    }
    const tDecoded = performance.now();
    // 4. A stream slot (shared with live sessions).
    const tAdmit = performance.now();
    const release = await takeStream(admission, abort.signal);
    if (release === undefined) {
      metrics.rejected.inc({ reason: 'client_gone' });
      return;
    }
    if (release instanceof ApiError) {
      res.set('Retry-After', String((release as ApiError & { retryAfterSeconds?: number }).retryAfterSeconds ?? 1));
      fail(release, 'overloaded');
      return;
    }
    const done = manager.acquire(parsed.picked.model);
    const tQueued = performance.now();
    // The sample's WAV for the dataset store, made before the samples move into the worker: the
    // upload itself when it is a plain 16-bit PCM WAV (no copy), else the decoded audio as one.
    const kept = recent.keepsAudio ? datasetWav(file, audio) : undefined;
    let result: JobResult;
    try {
      const job = { audio: audio.samples, sampleRate: audio.sampleRate, language: parsed.language, prompt: parsed.prompt, temperature: parsed.temperature };
      result = parsed.stream ? await streamWindows(inference, parsed.picked.model.key, job, parsed.picked.model.info, res, abort.signal) : await inference.run(parsed.picked.model.key, job, { transfer: true });
    } catch (err) {
      log.error({ requestId, deployment, version, err: (err as Error).message }, 'Transcription failed');
      if (res.headersSent) {
        // Streaming already: the failure is an SSE error event.
        const code = err instanceof InferenceTimeoutError ? 'inference_timeout' : 'inference_failed';
        metrics.requests.inc({ route: 'transcriptions', code: code === 'inference_timeout' ? '504' : '500', deployment, model_version: version });
        metrics.rejected.inc({ reason: code === 'inference_timeout' ? 'inference_timeout' : 'inference_error' });
        res.end(sseEvent({ type: 'error', error: { message: `transcription failed: ${(err as Error).message}`, type: 'server_error', param: null, code } }));
        return;
      }
      // The pool's watchdog stopped the run (deadline passed, worker recycled): 504, not 500.
      if (err instanceof InferenceTimeoutError) fail(new ApiError(504, `transcription took too long: ${err.message}`, 'inference_timeout'), 'inference_timeout');
      else fail(new ApiError(500, `transcription failed: ${(err as Error).message}`, 'inference_failed'), 'inference_error');
      return;
    } finally {
      done();
      release();
    }
    const inferSeconds = (result.featuresMs + result.encoderMs + result.decoderMs) / 1000;
    admission.observeServiceTime((performance.now() - tQueued) / 1000);
    const labels = { deployment, model_version: version };
    metrics.inferenceDuration.observe(labels, inferSeconds);
    metrics.queueWait.observe(labels, Math.max(0, (performance.now() - tAdmit) / 1000 - inferSeconds));
    metrics.rtf.observe(labels, inferSeconds / Math.max(result.audioSeconds, 1e-3));
    metrics.audioSeconds.inc(labels, result.audioSeconds);
    recent.remember(
      { id: requestId, deployment, modelVersion: version, role: parsed.picked.role, text: result.text, at: Date.now(), audioSeconds: result.audioSeconds, durationSeconds: (performance.now() - t0) / 1000 },
      kept,
    );
    if (parsed.stream) {
      metrics.requests.inc({ route: 'transcriptions', code: '200', ...labels });
      metrics.requestDuration.observe(labels, (performance.now() - t0) / 1000);
      if (!abort.signal.aborted) res.end(sseEvent(textDone(result.text, { seconds: result.audioSeconds })));
      return;
    }
    if (res.headersSent || abort.signal.aborted) return;
    res.set('x-whisperops-deployment', deployment);
    res.set('x-whisperops-model-version', version);
    res.set('x-whisperops-model-role', parsed.picked.role);
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
    metrics.requestDuration.observe(labels, (tDone - t0) / 1000);
    const out = formatTranscription(parsed.format, result, { language: parsed.language, temperature: parsed.temperature, requestId, deployment, modelVersion: version });
    res.status(200).type(out.contentType).send(out.body);
  };
}
