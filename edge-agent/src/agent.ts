// Wires the agent: metrics, inference pool, artifact fetcher, model manager, admission, feedback memory,
// dataset store, model-set watcher, golden probes, the HTTP app and server, and graceful shutdown.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { isIP } from 'node:net';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import type { Logger } from 'pino';
import { parseModelSet, ModelSetError } from '../../api/model-set.js';
import type { ModelSet } from '../../api/model-set.js';
import { Admission } from './admission.js';
import { autoMaxBatch } from './inference/model-files.js';
import { createApp } from './app.js';
import { startTlsListener } from './http/tls-listener.js';
import { RealtimeServer } from './live/realtime.js';
import { bearerToken, requireBearer, TokenFile } from './auth.js';
import type { AuthConfig } from './auth.js';
import { ConfigWatcher } from './config-watcher.js';
import { openSampleStore } from './dataset/store.js';
import { DatasetWriter, DEFAULT_WRITER_TUNING } from './dataset/writer.js';
import { RecentRequests } from './feedback-store.js';
import { InferencePool } from './inference/pool.js';
import { createMetrics, ScenarioLabels, seedFeedbackSeries } from './metrics.js';
import type { Metrics } from './metrics.js';
import { ArtifactFetcher, FileArtifactStore, HttpArtifactStore, MANIFEST, parseManifest, sha256 } from './models/artifact.js';
import { ModelManager } from './models/model-manager.js';
import { S3ArtifactStore } from './models/s3-store.js';
import type { AgentOptions } from './options.js';
import { loadProbeSet, ProbeRunner } from './probes.js';
import { agentLogger } from './redact.js';

/** The model set that serves one artifact folder (the embedded model) as deployment `<folder name>`. */
export async function embeddedModelSet(modelDir: string, pool: string): Promise<ModelSet> {
  const dir = resolve(modelDir);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(dir, MANIFEST));
  } catch (err) {
    throw new Error(`${join(dir, MANIFEST)} is missing: the embedded model has not been exported to ONNX yet`, { cause: err });
  }
  const manifest = parseManifest(bytes);
  const name = (dir.split('/').pop() ?? 'model').toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return { pool, models: [{ name, stable: { version: manifest.version, uri: pathToFileURL(dir).href, sha256: sha256(bytes) } }] };
}

export interface Agent {
  server: Server;
  url: string;
  /** https:// URL of the TLS listener (HTTPS + WSS), when a certificate is configured. */
  tlsUrl: string | undefined;
  /** Live transcription sessions (WebSocket). */
  live: RealtimeServer;
  /** Re-reads the TLS certificate and key now (tests; a watcher does it on change). */
  reloadTls(): boolean;
  metrics: Metrics;
  manager: ModelManager;
  pool: InferencePool;
  admission: Admission;
  log: Logger;
  /** Runs one golden-probe round now (false when no probe set is configured or a round is running). */
  runProbes(): Promise<boolean>;
  /** Re-reads the model-set file now (tests; the watcher does it on change). */
  reloadConfig(): Promise<void>;
  /** Graceful stop: fail readiness, wait, stop accepting, drain, stop workers. */
  shutdown(): Promise<void>;
}

export async function startAgent(opts: AgentOptions, log: Logger = agentLogger(opts.logLevel)): Promise<Agent> {
  const initialSet = opts.config ? undefined : await embeddedModelSet(opts.modelDir, opts.pool);
  let poolName = initialSet?.pool ?? opts.pool;
  if (opts.config) {
    try {
      poolName = parseModelSet(await readFile(opts.config, 'utf8')).pool;
    } catch (err) {
      log.warn({ file: opts.config, err: (err as Error).message }, 'Model-set file not readable at start; waiting for a valid one');
    }
  }
  const metrics = createMetrics(poolName);
  metrics.capacityStreams.set(opts.maxConcurrentStreams);
  metrics.queueCapacity.set(opts.maxQueue);
  metrics.workers.set(opts.workers);
  const pool = new InferencePool({
    workers: opts.workers,
    intraOpThreads: opts.threads,
    executionProviders: opts.executionProviders,
    // the default for a model loaded without its own (every model here gets one: see the manager's maxBatch)
    maxBatch: opts.maxBatch === 'auto' ? autoMaxBatch(opts.dtype, undefined) : opts.maxBatch,
    jobTimeoutMs: opts.inferenceTimeoutSeconds * 1000,
    onTimeout: (index, jobs) => {
      metrics.inferenceTimeouts.inc();
      metrics.workerRestarts.inc();
      log.error({ worker: index, jobs, timeoutSeconds: opts.inferenceTimeoutSeconds }, 'Inference run over its deadline: failed with 504, worker recycled');
    },
    onWorkerExit: (index, code, err) => {
      metrics.workerRestarts.inc();
      log.error({ worker: index, code, err: err?.message }, 'Inference worker exited; replacing it');
    },
  });
  // s3:// reads use the standard AWS environment (an EdgePool's spec.artifactCredentials Secret);
  // the SDK is loaded on the first s3:// artifact only.
  const s3 = new S3ArtifactStore(process.env, opts.artifactIdleTimeoutSeconds * 1000);
  const fetcher = new ArtifactFetcher([new FileArtifactStore(), new HttpArtifactStore(opts.artifactIdleTimeoutSeconds * 1000), s3], opts.cacheDir);
  // Every apply, retries of a partial one included, is counted; a partial set is retried with a
  // capped back-off inside the manager.
  const manager = new ModelManager({
    pool,
    fetcher,
    metrics,
    log,
    dtype: opts.dtype,
    maxBatch: opts.maxBatch,
    onApplied: (set, report, attempt) => {
      metrics.configReloads.inc({ result: report.ok ? 'success' : 'partial' });
      if (report.ok) metrics.configGeneration.set(Date.now() / 1000);
      log.info({ source: opts.config ?? 'embedded model', deployments: set.models.length, failures: report.failures.length, attempt }, 'Applied model set');
    },
  });
  const admission = new Admission(opts.maxConcurrentStreams, opts.maxQueue, (active, queued) => {
    metrics.activeStreams.set(active);
    metrics.queueDepth.set(queued);
  });
  // The dataset store: feedback samples are uploaded in the background by the writer. One byte bound
  // covers the request audio held for it: retained waiting for feedback + queued waiting for upload.
  const dataset = opts.datasetStoreUri
    ? new DatasetWriter(
        openSampleStore(opts.datasetStoreUri, process.env),
        {
          agent: opts.agentId,
          pool: poolName,
          retentionSeconds: opts.datasetRetentionSeconds,
          maxQueueBytes: opts.datasetMaxBytes,
          flushSamples: opts.datasetFlushSamples,
          flushSeconds: opts.datasetFlushSeconds,
          concurrency: opts.datasetUploadConcurrency,
          ...DEFAULT_WRITER_TUNING,
          log: log.child({ datasetStore: opts.datasetStoreUri }),
        },
        {
          samples: (result, scenario, n) => metrics.datasetSamples.inc({ scenario, result }, n),
          bytesWritten: (n) => metrics.datasetWrittenBytes.inc(n),
          queue: (samples, bytes) => {
            metrics.datasetQueueSamples.set(samples);
            metrics.datasetQueueBytes.set(bytes);
          },
          batch: (n) => metrics.datasetBatchSamples.set(n),
          retry: (object) => metrics.datasetRetries.inc({ object }),
        },
      )
    : undefined;
  if (dataset) {
    metrics.datasetMaxBytes.set(opts.datasetMaxBytes);
    log.info({ datasetStore: dataset.uri, agent: opts.agentId, retentionSeconds: opts.datasetRetentionSeconds, maxBytes: opts.datasetMaxBytes }, 'Writing feedback samples to the dataset store');
  }
  const recent = new RecentRequests(
    {
      maxEntries: 10_000,
      maxAgeSeconds: opts.feedbackMaxAgeSeconds,
      ...(dataset ? { dataset: { retentionSeconds: opts.datasetRetentionSeconds, maxBytes: opts.datasetMaxBytes, heldElsewhere: () => dataset.bytesQueued } } : {}),
    },
    (b) => metrics.retainedAudioBytes.set(b),
  );
  const scenarios = new ScenarioLabels(undefined);
  let accepting = true;

  const applySet = async (set: ModelSet, source: string): Promise<void> => {
    if (set.pool !== poolName) log.warn({ pool: set.pool, serving: poolName }, 'Model set names another pool; the pool label stays as at start');
    scenarios.setAllowList(set.scenarios);
    seedFeedbackSeries(metrics, set);
    log.info({ source, deployments: set.models.length }, 'Applying model set');
    await manager.apply(set);
  };

  let watcher: ConfigWatcher | undefined;
  if (opts.config) {
    const file = opts.config;
    watcher = new ConfigWatcher(
      file,
      async (text) => {
        let set: ModelSet;
        try {
          set = parseModelSet(text);
        } catch (err) {
          metrics.configReloads.inc({ result: 'invalid' });
          log.error({ file, problems: err instanceof ModelSetError ? err.problems : [(err as Error).message] }, 'Invalid model set; keeping the current models');
          return;
        }
        await applySet(set, file);
      },
      (err) => log.warn({ file, err: err.message }, 'Model-set file watch problem'),
      opts.configPollSeconds * 1000,
    );
    await watcher.start();
  } else if (initialSet) {
    await applySet(initialSet, opts.modelDir);
  }

  let probes: ProbeRunner | undefined;
  if (opts.probeSet) {
    probes = new ProbeRunner(loadProbeSet(opts.probeSet), { pool, manager, metrics, log });
    probes.start(opts.probeIntervalSeconds);
  }

  const app = createApp({
    options: {
      maxUploadBytes: opts.maxUploadBytes,
      maxAudioSeconds: opts.maxAudioSeconds,
      pool: poolName,
      maxUploadBufferBytes: opts.maxUploadBufferBytes,
      bodyTimeoutSeconds: opts.bodyTimeoutSeconds,
    },
    manager,
    inference: pool,
    admission,
    metrics,
    recent,
    dataset,
    scenarios,
    log,
    isAccepting: () => accepting,
  });
  // Bearer tokens (--transcription-token-file, --feedback-token-file; an EdgePool's auth Secret),
  // checked before a guarded route reads its body; /healthz, /readyz and /metrics stay open.
  const tokenProblem = (path: string, problem: string): void => log.error({ path, problem }, 'Token file unusable: its routes refuse every request');
  const auth: AuthConfig = {
    ...(opts.transcriptionTokenFile ? { transcription: new TokenFile(opts.transcriptionTokenFile, { onProblem: tokenProblem }) } : {}),
    ...(opts.feedbackTokenFile ? { feedback: new TokenFile(opts.feedbackTokenFile, { onProblem: tokenProblem }) } : {}),
    onFailure: (route) => metrics.authFailures.inc({ route }),
  };
  const handler = auth.transcription || auth.feedback ? express().disable('x-powered-by').use(requireBearer(auth)).use(app) : app;
  if (!auth.transcription || !auth.feedback) log.info({ transcription: Boolean(auth.transcription), feedback: Boolean(auth.feedback) }, 'No token file for some routes: they accept requests without authentication');
  // Slow clients: the request head must arrive within headersTimeout (checked every second); a
  // transcription's body within --body-timeout-seconds once admitted (the route's own deadline); any
  // other body within Node's requestTimeout (5 min).
  const server = createServer({ headersTimeout: opts.headersTimeoutSeconds * 1000, requestTimeout: 300_000, connectionsCheckingInterval: 1000 }, handler);
  // Live sessions (GET /v1/realtime?intent=transcription upgrades) on both listeners: a stream slot
  // each, the transcription route's bearer tokens.
  const transcriptionTokens = auth.transcription;
  const live = new RealtimeServer({
    manager,
    inference: pool,
    admission,
    metrics,
    log,
    isAccepting: () => accepting,
    // Realtime turns take feedback like file requests (their item_id is the request id).
    recent,
    limits: {
      maxSessionSeconds: opts.liveMaxSessionSeconds,
      idleTimeoutSeconds: opts.liveIdleTimeoutSeconds,
      maxChunkBytes: opts.liveMaxChunkBytes,
      maxBufferBytes: opts.liveMaxBufferBytes,
      stepSeconds: opts.liveStepSeconds,
    },
    ...(transcriptionTokens
      ? {
          authorize: async (req) => {
            const token = bearerToken(req.headers.authorization);
            const ok = token !== undefined && (await transcriptionTokens.accepts(token));
            if (!ok) metrics.authFailures.inc({ route: 'transcriptions' });
            return ok;
          },
        }
      : {}),
  });
  server.on('upgrade', (req, socket, head) => live.handleUpgrade(req, socket, head));
  // With TLS, the network listener is the TLS one; plain HTTP stays for loopback-only use.
  const tls = opts.tlsCertFile && opts.tlsKeyFile ? await startTlsListener(handler, { certFile: opts.tlsCertFile, keyFile: opts.tlsKeyFile, host: opts.host, port: opts.tlsPort, headersTimeoutSeconds: opts.headersTimeoutSeconds }, log) : undefined;
  tls?.server.on('upgrade', (req, socket, head) => live.handleUpgrade(req, socket, head));
  if (tls) tls.server.keepAliveTimeout = 5_000;
  const plainHost = tls && !(opts.host === 'localhost' || opts.host === '::1' || (isIP(opts.host) === 4 && opts.host.startsWith('127.'))) ? '127.0.0.1' : opts.host;
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port, plainHost, () => {
      server.off('error', rej);
      res();
    });
  });
  server.keepAliveTimeout = 5_000;
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const url = `http://${plainHost.includes(':') ? `[${plainHost}]` : plainHost}:${port}`;
  log.info({ url, workers: opts.workers, threads: opts.threads, dtype: opts.dtype, maxConcurrentStreams: opts.maxConcurrentStreams, maxQueue: opts.maxQueue }, 'Edge agent listening');

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      accepting = false;
      metrics.ready.set(0);
      log.info({ delaySeconds: opts.shutdownDelaySeconds }, 'Shutting down: readiness failing');
      await new Promise((r) => setTimeout(r, opts.shutdownDelaySeconds * 1000));
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      tls?.server.close();
      tls?.server.closeIdleConnections();
      tls?.stopWatching();
      live.closeAll();
      const deadline = Date.now() + opts.drainTimeoutSeconds * 1000;
      while ((admission.activeCount > 0 || admission.queuedCount > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      log.info({ unfinished: admission.activeCount + admission.queuedCount }, 'Drained in-flight transcriptions');
      server.closeAllConnections();
      tls?.server.closeAllConnections();
      await closed;
      // No feedback can arrive now: upload what is queued (within the drain deadline, at least 1 s)
      // and write the last manifests (5 s more at most).
      await dataset?.close(Math.max(1000, deadline - Date.now()), 5000);
      watcher?.stop();
      manager.stop();
      probes?.stop();
      await pool.close();
      await s3.close();
    })();
    return stopping;
  };

  return {
    server,
    url,
    tlsUrl: tls?.url,
    live,
    reloadTls: () => tls?.reload() ?? false,
    metrics,
    manager,
    pool,
    admission,
    log,
    runProbes: () => probes?.runOnce() ?? Promise.resolve(false),
    reloadConfig: () => watcher?.check() ?? Promise.resolve(),
    shutdown,
  };
}
