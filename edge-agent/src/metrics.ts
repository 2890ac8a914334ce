// The agent's Prometheus metrics: a registry of the process's own, prefix whisperops_agent_, base units,
// `_total` counters, bounded labels (pool is a default label; deployment and model_version come from the
// model set; scenario from an allow-list or a capped set). Every name is documented in edge-agent/README.md.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const PREFIX = 'whisperops_agent_';

const SPEECH_SECONDS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120];
const RTF = [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5];

export function createMetrics(pool: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ pool });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const dm = ['deployment', 'model_version'] as const;
  const m = {
    registry,
    requests: new Counter({ name: `${PREFIX}requests_total`, help: 'HTTP API requests by route and status code.', labelNames: ['route', 'code', 'deployment', 'model_version'], registers: [registry] }),
    requestDuration: new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Wall time of successful transcription requests, from arrival to response (queue wait included).',
      labelNames: dm,
      buckets: SPEECH_SECONDS,
      registers: [registry],
    }),
    inferenceDuration: new Histogram({
      name: `${PREFIX}inference_duration_seconds`,
      help: 'Time a transcription spent in an inference worker (front end + encoder + decoder).',
      labelNames: dm,
      buckets: SPEECH_SECONDS,
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: `${PREFIX}queue_wait_seconds`,
      help: 'Time a transcription waited for admission and for a free worker.',
      labelNames: dm,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    rtf: new Histogram({ name: `${PREFIX}real_time_factor`, help: 'Inference time divided by audio duration, per request.', labelNames: dm, buckets: RTF, registers: [registry] }),
    scenarioRequestDuration: new Histogram({
      name: `${PREFIX}scenario_request_duration_seconds`,
      help: 'Wall time from arrival to transcript of transcriptions that got feedback, by the scenario the feedback named (a request learns its scenario only then).',
      labelNames: ['deployment', 'model_version', 'scenario'],
      buckets: SPEECH_SECONDS,
      registers: [registry],
    }),
    audioSeconds: new Counter({ name: `${PREFIX}audio_seconds_total`, help: 'Seconds of audio transcribed.', labelNames: dm, registers: [registry] }),
    activeStreams: new Gauge({ name: `${PREFIX}active_streams`, help: 'Transcriptions admitted and not finished (being decoded or waiting for a worker).', registers: [registry] }),
    queueDepth: new Gauge({ name: `${PREFIX}queue_depth`, help: 'Transcriptions waiting for admission (beyond capacity_streams).', registers: [registry] }),
    capacityStreams: new Gauge({ name: `${PREFIX}capacity_streams`, help: 'Maximum concurrent transcriptions (maxConcurrentStreams).', registers: [registry] }),
    queueCapacity: new Gauge({ name: `${PREFIX}queue_capacity`, help: 'Maximum transcriptions waiting for admission; beyond it requests get 429.', registers: [registry] }),
    rejected: new Counter({ name: `${PREFIX}rejected_requests_total`, help: 'Transcriptions refused before inference, by reason.', labelNames: ['reason'], registers: [registry] }),
    wordErrors: new Counter({
      name: `${PREFIX}word_errors_total`,
      help: 'Word errors (substitutions + deletions + insertions) of transcripts against feedback references.',
      labelNames: ['deployment', 'model_version', 'scenario'],
      registers: [registry],
    }),
    referenceWords: new Counter({
      name: `${PREFIX}reference_words_total`,
      help: 'Words in feedback references; WER = increase(word_errors_total) / increase(reference_words_total).',
      labelNames: ['deployment', 'model_version', 'scenario'],
      registers: [registry],
    }),
    feedback: new Counter({ name: `${PREFIX}feedback_total`, help: 'Feedback calls by result.', labelNames: ['result'], registers: [registry] }),
    modelInfo: new Gauge({ name: `${PREFIX}model_info`, help: 'Models being served (value 1): version, role and manifest sha256 per deployment.', labelNames: ['deployment', 'model_version', 'role', 'sha256'], registers: [registry] }),
    trafficWeight: new Gauge({ name: `${PREFIX}model_traffic_weight_ratio`, help: "Share (0..1) of a deployment's requests routed to a model version.", labelNames: ['deployment', 'model_version', 'role'], registers: [registry] }),
    modelLoads: new Counter({
      name: `${PREFIX}model_loads_total`,
      help: 'Model artifact loads by result (success, or the reason a bad artifact was refused).',
      labelNames: ['deployment', 'model_version', 'result'],
      registers: [registry],
    }),
    modelLoadDuration: new Histogram({ name: `${PREFIX}model_load_duration_seconds`, help: 'Fetch + verify + load + warm-up time of a model.', buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [registry] }),
    configReloads: new Counter({ name: `${PREFIX}config_reloads_total`, help: 'Model-set file reloads by result (success, invalid, partial).', labelNames: ['result'], registers: [registry] }),
    configGeneration: new Gauge({ name: `${PREFIX}config_last_reload_timestamp_seconds`, help: 'Unix time of the last successful model-set reload.', registers: [registry] }),
    ready: new Gauge({ name: `${PREFIX}ready`, help: '1 when /readyz answers 200.', registers: [registry] }),
    workerRestarts: new Counter({ name: `${PREFIX}worker_restarts_total`, help: 'Inference worker threads that exited and were replaced.', registers: [registry] }),
    workers: new Gauge({ name: `${PREFIX}inference_workers`, help: 'Inference worker threads.', registers: [registry] }),
    inferenceTimeouts: new Counter({ name: `${PREFIX}inference_timeouts_total`, help: 'Inference runs stopped by the watchdog (their requests answered 504, the worker recycled).', registers: [registry] }),
    unhandledRejections: new Counter({ name: `${PREFIX}unhandled_rejections_total`, help: 'Promise rejections nothing handled (logged; the process keeps running).', registers: [registry] }),
    authFailures: new Counter({ name: `${PREFIX}auth_failures_total`, help: 'Requests refused for a missing or wrong bearer token, by route.', labelNames: ['route'], registers: [registry] }),
    eventLoopLag: new Gauge({ name: `${PREFIX}event_loop_lag_seconds`, help: 'Event-loop delay of the HTTP thread over the last scrape interval, by quantile.', labelNames: ['quantile'], registers: [registry] }),
    datasetSamples: new Counter({
      name: `${PREFIX}dataset_samples_total`,
      help: 'Feedback samples for the dataset store by result: written (listed by a stored manifest), dropped_full (byte bound reached), dropped_error (the store refused it after retries), expired (request older than the retention).',
      labelNames: ['scenario', 'result'],
      registers: [registry],
    }),
    datasetWrittenBytes: new Counter({ name: `${PREFIX}dataset_written_bytes_total`, help: 'Bytes of objects (WAVs and manifests) written to the dataset store.', registers: [registry] }),
    datasetQueueSamples: new Gauge({ name: `${PREFIX}dataset_queue_samples`, help: 'Dataset samples waiting for upload or being uploaded.', registers: [registry] }),
    datasetQueueBytes: new Gauge({ name: `${PREFIX}dataset_queue_bytes`, help: 'Bytes of dataset samples waiting for upload or being uploaded.', registers: [registry] }),
    datasetMaxBytes: new Gauge({ name: `${PREFIX}dataset_max_bytes`, help: 'Bound on request audio held for the dataset store (retained for feedback + queued for upload).', registers: [registry] }),
    datasetBatchSamples: new Gauge({ name: `${PREFIX}dataset_batch_samples`, help: 'Uploaded dataset samples waiting for the next manifest.', registers: [registry] }),
    datasetRetries: new Counter({ name: `${PREFIX}dataset_upload_retries_total`, help: 'Dataset store puts tried again after a failure, by object (audio, manifest).', labelNames: ['object'], registers: [registry] }),
    retainedAudioBytes: new Gauge({ name: `${PREFIX}retained_audio_bytes`, help: 'Bytes of recent request audio kept in memory for feedback samples.', registers: [registry] }),
    probeWordErrors: new Counter({ name: `${PREFIX}probe_word_errors_total`, help: 'Word errors of golden-probe transcriptions.', labelNames: ['deployment', 'model_version', 'role', 'scenario'], registers: [registry] }),
    probeReferenceWords: new Counter({ name: `${PREFIX}probe_reference_words_total`, help: 'Reference words of golden-probe transcriptions.', labelNames: ['deployment', 'model_version', 'role', 'scenario'], registers: [registry] }),
    probeRuns: new Counter({ name: `${PREFIX}probe_runs_total`, help: 'Golden-probe rounds by result.', labelNames: ['result'], registers: [registry] }),
  };
  // Event-loop lag: a high-resolution histogram, reset at every scrape.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  new Gauge({
    name: `${PREFIX}event_loop_lag_max_seconds`,
    help: 'Largest event-loop delay of the HTTP thread since the last scrape.',
    registers: [registry],
    collect() {
      this.set(lag.max / 1e9);
      m.eventLoopLag.set({ quantile: '0.5' }, lag.percentile(50) / 1e9);
      m.eventLoopLag.set({ quantile: '0.99' }, lag.percentile(99) / 1e9);
      lag.reset();
    },
  });
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Creates the feedback counters' series at 0 for every (deployment, model version) of a model set ×
 * its allow-listed scenarios (and `other`), when the set arrives. A counter series that first appears
 * with its first feedback already counted loses that feedback to PromQL's increase()/rate(), which
 * need two samples of a series: the WER rules and the operator's scenario monitoring would miss the
 * first feedback of every new model version. Sets without an allow-list create nothing (the scenario
 * values are not known in advance).
 */
export function seedFeedbackSeries(metrics: Pick<Metrics, 'wordErrors' | 'referenceWords'>, set: { scenarios?: string[]; models: { name: string; stable: { version: string }; candidate?: { version: string } }[] }): number {
  if (!set.scenarios) return 0;
  let created = 0;
  for (const d of set.models) {
    for (const version of [d.stable.version, ...(d.candidate ? [d.candidate.version] : [])]) {
      for (const scenario of [...set.scenarios, 'other']) {
        const labels = { deployment: d.name, model_version: version, scenario };
        metrics.wordErrors.inc(labels, 0);
        metrics.referenceWords.inc(labels, 0);
        created++;
      }
    }
  }
  return created;
}

/** Bounds scenario label values: an allow-list when given, else the first `cap` well-formed values seen. */
export class ScenarioLabels {
  private readonly seen = new Set<string>();
  constructor(
    private allow: Set<string> | undefined,
    private readonly cap = 32,
  ) {}
  setAllowList(list: string[] | undefined): void {
    this.allow = list ? new Set(list) : undefined;
  }
  label(scenario: string | undefined): string {
    const s = (scenario ?? '').trim().toLowerCase();
    if (s === '') return 'unspecified';
    if (!/^[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?$/.test(s)) return 'other';
    if (this.allow) return this.allow.has(s) ? s : 'other';
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.cap) return 'other';
    this.seen.add(s);
    return s;
  }
}
