// Messages between the inference pool (main thread) and its worker threads.
import type { ModelDtype } from './whisper-model.js';

export interface LoadSpec {
  /** Key of the loaded model in every worker, e.g. "<deployment>/<version>". */
  key: string;
  dir: string;
  dtype: ModelDtype;
  /** Windows this model's runs decode together (default: the pool's maxBatch). */
  maxBatch?: number;
}

export interface WorkerInit {
  intraOpThreads: number;
  executionProviders: string[];
  maxBatch: number;
  /** Int32Array[1] over shared memory: set to 1 by the pool's watchdog, the worker stops its run between two batches of windows. */
  cancel?: SharedArrayBuffer;
}

export interface TranscribeJob {
  id: number;
  /** Mono samples at `sampleRate` (any rate; resampled to the model's rate in the worker). */
  audio: Float32Array;
  sampleRate: number;
  language: string;
  prompt: string;
  temperature: number;
  /**
   * Text the first window's transcript is forced to start with (teacher-forced after the task tokens,
   * then decoding continues greedily): a live session's words already committed in this audio, so a
   * re-decode extends them instead of re-deciding them. The window's text and tokens include it.
   */
  prefix?: string;
}

export interface WindowResult {
  start: number;
  end: number;
  text: string;
  tokens: number[];
  avgLogprob: number;
  /** Probability of each of JobResult.roles for this window (models with a speaker-role head only). */
  roleProbs?: number[];
}

export interface JobResult {
  id: number;
  windows: WindowResult[];
  text: string;
  audioSeconds: number;
  /** Work time of this job inside the worker (front end + its share of the batched encoder/decoder runs). */
  featuresMs: number;
  encoderMs: number;
  decoderMs: number;
  /** Windows decoded together with this job's (batch size seen). */
  batchWindows: number;
  /** Speaker roles of the model's role head, in the order of WindowResult.roleProbs (absent: no head). */
  roles?: string[];
}

export interface ModelInfo {
  key: string;
  languages: string[];
  windowSeconds: number;
  sampleRate: number;
  loadMs: number;
  warmupMs: number;
  /** Speaker roles of the model's role head (absent: no head). */
  roles?: string[];
}

export type ToWorker =
  | { type: 'load'; reqId: number; spec: LoadSpec }
  | { type: 'unload'; reqId: number; key: string }
  | { type: 'run'; reqId: number; key: string; jobs: TranscribeJob[] }
  /** Release every session, then let the thread end (terminating a thread that holds ORT sessions can abort the process). */
  | { type: 'close'; reqId: number }
  /** Fault injection (tests): the handler throws; the worker answers `failed` and keeps handling messages. */
  | { type: 'fault'; reqId: number };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'loaded'; reqId: number; info: ModelInfo }
  | { type: 'unloaded'; reqId: number }
  | { type: 'results'; reqId: number; results: JobResult[] }
  | { type: 'failed'; reqId: number; message: string; jobErrors?: { id: number; message: string }[] };
