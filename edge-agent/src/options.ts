// Agent options: command-line flags, then WHISPEROPS_AGENT_* environment variables, then defaults.
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ModelDtype } from './inference/whisper-model.js';

export interface AgentOptions {
  host: string;
  port: number;
  /** Model-set file (JSON or YAML); when absent, the embedded model in `modelDir` is served. */
  config: string | undefined;
  modelDir: string;
  pool: string;
  dtype: ModelDtype;
  workers: number;
  threads: number;
  executionProviders: string[];
  /** Windows decoded together by one worker: a number for every model, or 'auto' per model (inference/model-files.ts autoMaxBatch). */
  maxBatch: number | 'auto';
  maxConcurrentStreams: number;
  maxQueue: number;
  maxUploadBytes: number;
  maxAudioSeconds: number;
  /** Bytes of request bodies held in memory at once, reserved before a body is read. */
  maxUploadBufferBytes: number;
  /** Seconds a client has to send its request headers (slowloris). */
  headersTimeoutSeconds: number;
  /** Seconds an admitted transcription's client has to send its whole body. */
  bodyTimeoutSeconds: number;
  /** TLS certificate and key files (PEM; reloaded on change): HTTPS + WSS on tlsPort; plain HTTP then listens on loopback only. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  tlsPort: number;
  liveMaxSessionSeconds: number;
  liveIdleTimeoutSeconds: number;
  liveMaxChunkBytes: number;
  liveMaxBufferBytes: number;
  liveStepSeconds: number;
  cacheDir: string;
  configPollSeconds: number;
  /** Dataset store (file:// or s3://) feedback samples are written to; off when undefined. */
  datasetStoreUri: string | undefined;
  datasetRetentionSeconds: number;
  datasetMaxBytes: number;
  datasetFlushSamples: number;
  datasetFlushSeconds: number;
  datasetUploadConcurrency: number;
  /** This agent's id in object names: the pod name. */
  agentId: string;
  feedbackMaxAgeSeconds: number;
  probeSet: string | undefined;
  probeIntervalSeconds: number;
  shutdownDelaySeconds: number;
  drainTimeoutSeconds: number;
  /** Watchdog: longest run of a batch in a worker (504, worker recycled). */
  inferenceTimeoutSeconds: number;
  /** Longest wait for an artifact server's response, then for each next chunk. */
  artifactIdleTimeoutSeconds: number;
  /** Bearer tokens for transcription (and /v1/models), one a line; undefined = open. */
  transcriptionTokenFile: string | undefined;
  /** Bearer tokens for feedback, one a line; undefined = open. */
  feedbackTokenFile: string | undefined;
  logLevel: string;
}

const SPEC = {
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { type: 'string', default: '8000', help: 'TCP port (0 = any free port)' },
  config: { type: 'string', help: 'model-set file (JSON/YAML, api/model-set.schema.json); watched and hot-reloaded' },
  'model-dir': { type: 'string', help: 'embedded model folder served when no --config is given' },
  pool: { type: 'string', default: 'default', help: 'pool label when no --config is given' },
  dtype: { type: 'string', default: 'int8', help: 'int8 (onnx/*_quantized.onnx) or fp32' },
  workers: { type: 'string', help: 'inference worker threads (default: cores / threads, at most 4)' },
  threads: { type: 'string', default: '1', help: 'ONNX Runtime intra-op threads per session' },
  'execution-providers': { type: 'string', default: 'cpu', help: 'comma-separated ONNX Runtime execution providers, e.g. cuda,cpu' },
  'max-batch': { type: 'string', default: 'auto', help: 'windows decoded together by one worker; auto = per model: 4 for fp32 and static INT8 (manifest quantization int8-static), 1 for dynamic INT8 (its activation scales are computed per batch, so batch members would change each other\'s transcripts)' },
  'max-concurrent-streams': { type: 'string', default: '16', help: 'transcriptions in progress at once' },
  'max-queue': { type: 'string', default: '32', help: 'transcriptions waiting beyond that; more get 429' },
  'max-upload-bytes': { type: 'string', default: String(25 * 1024 * 1024), help: 'largest accepted upload' },
  'max-audio-seconds': { type: 'string', default: '600', help: 'longest accepted audio' },
  'max-upload-buffer-bytes': { type: 'string', default: String(64 * 1024 * 1024), help: 'upload budget: bytes of request bodies held in memory at once, reserved (Content-Length, else the largest allowed body) before a body is read; raised to one largest body when smaller' },
  'headers-timeout-seconds': { type: 'string', default: '10', help: 'a client that has not sent its whole request head by then is disconnected (408)' },
  'body-timeout-seconds': { type: 'string', default: '30', help: 'an admitted transcription whose body has not fully arrived by then gets 408 and is disconnected' },
  'tls-cert-file': { type: 'string', help: 'PEM certificate (chain) for HTTPS/WSS on --tls-port; re-read on change. With TLS, plain HTTP on --port listens on 127.0.0.1 only' },
  'tls-key-file': { type: 'string', help: 'PEM private key of --tls-cert-file' },
  'tls-port': { type: 'string', default: '8443', help: 'HTTPS/WSS port (0 = any free port) when a certificate is given' },
  'live-max-session-seconds': { type: 'string', default: '3600', help: 'longest live transcription session (wall time)' },
  'live-idle-timeout-seconds': { type: 'string', default: '30', help: 'a live session without client events for this long is closed' },
  'live-max-chunk-bytes': { type: 'string', default: String(256 * 1024), help: 'largest decoded audio of one input_audio_buffer.append' },
  'live-max-buffer-bytes': { type: 'string', default: String(8 * 1024 * 1024), help: 'largest audio a live session holds (its growing window, 32-bit samples)' },
  'live-step-seconds': { type: 'string', default: '0.2', help: 'new audio between two re-decodes of a live session\'s growing window (0.1-5)' },
  'cache-dir': { type: 'string', help: 'where downloaded artifacts are kept' },
  'config-poll-seconds': { type: 'string', default: '10', help: 'model-set polling interval (besides fs.watch)' },
  'dataset-store-uri': { type: 'string', help: 'dataset store (s3://bucket/prefix/ or file:///folder/; off when unset): feedback writes WAV samples + JSONL manifests there' },
  'dataset-retention-seconds': { type: 'string', default: '600', help: 'request audio older than this is neither kept for feedback nor written' },
  'dataset-max-bytes': { type: 'string', default: String(256 * 1024 * 1024), help: 'bound on request audio held in memory for the store: waiting for feedback + waiting for upload' },
  'dataset-flush-samples': { type: 'string', default: '100', help: 'a manifest is written every this many uploaded samples...' },
  'dataset-flush-seconds': { type: 'string', default: '10', help: '...or this many seconds after its first sample' },
  'dataset-upload-concurrency': { type: 'string', default: '4', help: 'dataset uploads in flight at once' },
  'agent-id': { type: 'string', help: 'this agent in dataset object names (default: env POD_NAME, else HOSTNAME, else the host name)' },
  'feedback-max-age-seconds': { type: 'string', default: '3600', help: 'how long a request id accepts feedback' },
  'probe-set': { type: 'string', help: 'golden-probe set (JSONL of {audio, text, scenario})' },
  'probe-interval-seconds': { type: 'string', default: '300', help: 'golden-probe interval' },
  'shutdown-delay-seconds': { type: 'string', default: '5', help: 'on SIGTERM, seconds of failing readiness before closing the listener' },
  'drain-timeout-seconds': { type: 'string', default: '30', help: 'on SIGTERM, longest wait for in-flight transcriptions' },
  'inference-timeout-seconds': { type: 'string', default: '120', help: 'watchdog: a run longer than this in a worker fails with 504 and the worker is recycled' },
  'artifact-idle-timeout-seconds': { type: 'string', default: '60', help: 'artifact downloads: longest wait for the response, then for each next chunk (per read, not per file); a read that times out is tried again' },
  'transcription-token-file': { type: 'string', help: 'file of bearer tokens (one a line) for /v1/audio/transcriptions and /v1/models; re-read when it changes; unset: no authentication' },
  'feedback-token-file': { type: 'string', help: 'file of bearer tokens (one a line) for /v1/feedback; re-read when it changes; unset: no authentication' },
  'log-level': { type: 'string', default: 'info', help: 'pino log level' },
  help: { type: 'boolean', default: false, help: 'print this help' },
} as const;

export function usage(): string {
  const lines = Object.entries(SPEC).map(([k, v]) => {
    const env = `WHISPEROPS_AGENT_${k.toUpperCase().replaceAll('-', '_')}`;
    const def = 'default' in v ? ` (default ${String(v.default)})` : '';
    return `  --${k.padEnd(28)} ${v.help}${def}  [env ${env}]`;
  });
  return `usage: npm run agent -- [options]\n${lines.join('\n')}\n`;
}

export class OptionsError extends Error {}

function datasetStoreUri(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^(file|s3):\/\/[^\s]+$/.test(raw)) throw new OptionsError(`--dataset-store-uri must be s3://bucket/prefix/ or file:///folder/, got ${raw}`);
  return raw.endsWith('/') ? raw : `${raw}/`;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv, repoRoot: string): AgentOptions | 'help' {
  const options = Object.fromEntries(Object.entries(SPEC).map(([k, v]) => [k, { type: v.type }])) as Record<string, { type: 'string' | 'boolean' }>;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    throw new OptionsError((err as Error).message);
  }
  if (values.help) return 'help';
  const get = (k: keyof typeof SPEC): string | undefined => {
    const v = values[k];
    if (typeof v === 'string') return v;
    const e = env[`WHISPEROPS_AGENT_${k.toUpperCase().replaceAll('-', '_')}`];
    if (e !== undefined && e !== '') return e;
    const spec = SPEC[k];
    return 'default' in spec ? String(spec.default) : undefined;
  };
  const int = (k: keyof typeof SPEC, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = get(k);
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new OptionsError(`--${k} must be an integer in [${min}, ${max}], got ${raw}`);
    return n;
  };
  const seconds = (k: keyof typeof SPEC, min: number, max: number): number => {
    const raw = get(k);
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new OptionsError(`--${k} must be a number in [${min}, ${max}], got ${raw}`);
    return n;
  };
  if ((get('tls-cert-file') === undefined) !== (get('tls-key-file') === undefined)) throw new OptionsError('--tls-cert-file and --tls-key-file go together');
  const dtype = get('dtype');
  if (dtype !== 'int8' && dtype !== 'fp32') throw new OptionsError(`--dtype must be int8 or fp32, got ${dtype}`);
  const threads = int('threads', 1, 256);
  const workersRaw = get('workers');
  const workers = workersRaw === undefined ? Math.max(1, Math.min(4, Math.floor(availableParallelism() / threads))) : int('workers', 1, 64);
  return {
    host: get('host') ?? '127.0.0.1',
    port: int('port', 0, 65535),
    config: get('config'),
    modelDir: get('model-dir') ?? join(repoRoot, 'models', 'tiny-whisper-synth'),
    pool: get('pool') ?? 'default',
    dtype,
    workers,
    threads,
    executionProviders: (get('execution-providers') ?? 'cpu').split(',').map((s) => s.trim()).filter(Boolean),
    maxBatch: get('max-batch') === 'auto' ? 'auto' : int('max-batch', 1, 64),
    maxConcurrentStreams: int('max-concurrent-streams', 1, 10_000),
    maxQueue: int('max-queue', 0, 100_000),
    maxUploadBytes: int('max-upload-bytes', 1024),
    maxAudioSeconds: int('max-audio-seconds', 1),
    maxUploadBufferBytes: int('max-upload-buffer-bytes', 1024),
    headersTimeoutSeconds: int('headers-timeout-seconds', 1, 3600),
    bodyTimeoutSeconds: int('body-timeout-seconds', 1, 3600),
    tlsCertFile: get('tls-cert-file'),
    tlsKeyFile: get('tls-key-file'),
    tlsPort: int('tls-port', 0, 65535),
    liveMaxSessionSeconds: int('live-max-session-seconds', 1),
    liveIdleTimeoutSeconds: int('live-idle-timeout-seconds', 1),
    liveMaxChunkBytes: int('live-max-chunk-bytes', 1024),
    liveMaxBufferBytes: int('live-max-buffer-bytes', 64 * 1024),
    liveStepSeconds: seconds('live-step-seconds', 0.1, 5),
    cacheDir: get('cache-dir') ?? join(env.XDG_CACHE_HOME ?? join(env.HOME ?? '/tmp', '.cache'), 'whisperops-agent'),
    configPollSeconds: int('config-poll-seconds', 1),
    datasetStoreUri: datasetStoreUri(get('dataset-store-uri')),
    datasetRetentionSeconds: int('dataset-retention-seconds', 1),
    datasetMaxBytes: int('dataset-max-bytes', 0),
    datasetFlushSamples: int('dataset-flush-samples', 1, 100_000),
    datasetFlushSeconds: int('dataset-flush-seconds', 1, 86_400),
    datasetUploadConcurrency: int('dataset-upload-concurrency', 1, 64),
    agentId: [get('agent-id'), env.POD_NAME, env.HOSTNAME].find((v) => v !== undefined && v !== '') ?? hostname(),
    feedbackMaxAgeSeconds: int('feedback-max-age-seconds', 1),
    probeSet: get('probe-set'),
    probeIntervalSeconds: int('probe-interval-seconds', 1),
    shutdownDelaySeconds: int('shutdown-delay-seconds', 0),
    drainTimeoutSeconds: int('drain-timeout-seconds', 0),
    inferenceTimeoutSeconds: int('inference-timeout-seconds', 1),
    artifactIdleTimeoutSeconds: int('artifact-idle-timeout-seconds', 1),
    transcriptionTokenFile: get('transcription-token-file'),
    feedbackTokenFile: get('feedback-token-file'),
    logLevel: get('log-level') ?? 'info',
  };
}
