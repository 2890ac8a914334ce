// The agent's HTTP API, built without listening (tests drive it in-process; main listens):
// OpenAI-compatible POST /v1/audio/transcriptions and GET /v1/models, POST /v1/feedback, /healthz,
// /readyz, /metrics. Inference runs in worker threads, so this event loop only parses and routes.
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { Admission } from './admission.js';
import type { DatasetWriter } from './dataset/writer.js';
import type { RecentRequests } from './feedback-store.js';
import { ApiError, sendError } from './http/api-error.js';
import { trafficMetrics } from './http/traffic-metrics.js';
import { MULTIPART_OVERHEAD_BYTES, transcriptionRoute } from './http/transcription-route.js';
import type { InferencePool } from './inference/pool.js';
import type { Metrics, ScenarioLabels } from './metrics.js';
import type { ModelManager } from './models/model-manager.js';
import { wordErrors } from './text/wer.js';
import { UploadBudget } from './upload-budget.js';

export interface AppOptions {
  maxUploadBytes: number;
  maxAudioSeconds: number;
  pool: string;
  /** Bytes of request bodies held at once (reserved before a body is read); at least one largest upload. Default 64 MiB. */
  maxUploadBufferBytes?: number;
  /** Seconds an admitted client has to send its whole body (default 30). */
  bodyTimeoutSeconds?: number;
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

export function createApp(deps: AppDeps): express.Express {
  const { options, manager, inference, admission, metrics, recent, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // The upload budget: never below one largest body, so any allowed upload can be admitted.
  const traffic = trafficMetrics(metrics.registry);
  const uploads = new UploadBudget(Math.max(options.maxUploadBufferBytes ?? 64 * 1024 * 1024, options.maxUploadBytes + MULTIPART_OVERHEAD_BYTES), admission.maxQueue, (used, waiting) => {
    traffic.uploadBufferBytes.set(used);
    traffic.uploadBufferWaiting.set(waiting);
  });
  traffic.uploadBufferCapacity.set(uploads.capacityBytes);

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

  app.post(
    '/v1/audio/transcriptions',
    transcriptionRoute({
      maxUploadBytes: options.maxUploadBytes,
      maxAudioSeconds: options.maxAudioSeconds,
      bodyTimeoutSeconds: options.bodyTimeoutSeconds ?? 30,
      manager,
      inference,
      admission,
      uploads,
      metrics,
      recent,
      log,
      isAccepting: deps.isAccepting,
    }),
  );

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
    if (r.durationSeconds !== undefined) metrics.scenarioRequestDuration.observe(labels, r.durationSeconds);
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
