// A pool of inference worker threads. Every worker holds every loaded model (sessions with explicit
// intra-op thread counts); jobs wait in one FIFO and an idle worker takes the oldest job plus any
// following jobs for the same model, up to that model's maxBatch windows (LoadSpec.maxBatch, else the
// pool's), so concurrent streams share encoder and decoder runs. A crashed worker fails only its in-flight jobs and is replaced, with its models reloaded.
import { Worker } from 'node:worker_threads';
import type { FromWorker, JobResult, LoadSpec, ModelInfo, ToWorker, TranscribeJob, WorkerInit } from './protocol.js';

export class InferenceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InferenceError';
  }
}

/** A run the watchdog stopped: it took longer than the pool's jobTimeoutMs (HTTP 504). */
export class InferenceTimeoutError extends InferenceError {
  constructor(message: string) {
    super(message);
    this.name = 'InferenceTimeoutError';
  }
}

/** How long the watchdog lets a recycled worker finish its current window and end by itself before terminate(). */
const RECYCLE_GRACE_MS = 30_000;

export interface PoolOptions extends Omit<WorkerInit, 'cancel'> {
  workers: number;
  /**
   * Watchdog: a batch running in a worker for longer than this fails with InferenceTimeoutError and
   * the worker is recycled (a fresh one takes its place; the old one stops between two windows and
   * ends). Undefined: no watchdog.
   */
  jobTimeoutMs?: number;
  /** Called when the watchdog stops a run (worker index, jobs failed). */
  onTimeout?: (index: number, jobs: number) => void;
  /** Window length in seconds, used to count a job's windows when batching (default 10). */
  windowSecondsHint?: number;
  onWorkerExit?: (index: number, code: number, error: Error | undefined) => void;
}

type JobInput = Omit<TranscribeJob, 'id'>;

interface Pending {
  key: string;
  job: TranscribeJob;
  windows: number;
  transfer: boolean;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: Promise<void>;
  busy: Pending[] | undefined;
  alive: boolean;
  /** Taken out of service by the watchdog: its exit spawns no replacement (one was spawned already). */
  retired: boolean;
  cancel: Int32Array;
  calls: Map<number, { resolve: (m: FromWorker) => void; reject: (e: Error) => void }>;
}

function workerUrl(): URL {
  const here = import.meta.url;
  // Under tsx or jest the sources are TypeScript: a small .mjs entry registers tsx in the worker.
  return new URL(here.endsWith('.ts') ? './worker-ts-entry.mjs' : './worker.js', here);
}

export class InferencePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly specs = new Map<string, LoadSpec>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: PoolOptions) {
    if (opts.workers < 1) throw new Error('the pool needs at least one worker');
    for (let i = 0; i < opts.workers; i++) this.slots.push(this.spawn(i));
  }

  /** Jobs waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Jobs inside workers right now. */
  get running(): number {
    return this.slots.reduce((n, s) => n + (s.busy?.length ?? 0), 0);
  }

  get size(): number {
    return this.slots.length;
  }

  private spawn(index: number): Slot {
    const url = workerUrl();
    const cancel = new SharedArrayBuffer(4);
    const init: WorkerInit = { intraOpThreads: this.opts.intraOpThreads, executionProviders: this.opts.executionProviders, maxBatch: this.opts.maxBatch, cancel };
    const worker = new Worker(url, { workerData: init });
    let markReady: () => void = () => undefined;
    let failReady: (e: Error) => void = () => undefined;
    const ready = new Promise<void>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    ready.catch(() => undefined);
    const slot: Slot = { index, worker, ready, busy: undefined, alive: true, retired: false, cancel: new Int32Array(cancel), calls: new Map() };
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') {
        markReady();
        return;
      }
      const call = slot.calls.get(msg.reqId);
      if (!call) return;
      slot.calls.delete(msg.reqId);
      call.resolve(msg);
    });
    let lastError: Error | undefined;
    worker.on('error', (err: Error) => {
      lastError = err;
    });
    worker.on('exit', (code) => {
      slot.alive = false;
      const err = new InferenceError(`inference worker ${index} exited (code ${code})${lastError ? `: ${lastError.message}` : ''}`, { cause: lastError });
      failReady(err);
      for (const call of slot.calls.values()) call.reject(err);
      slot.calls.clear();
      for (const p of slot.busy ?? []) p.reject(err);
      slot.busy = undefined;
      if (this.closed || slot.retired) return;
      this.opts.onWorkerExit?.(index, code, lastError);
      void this.replace(index);
    });
    return slot;
  }

  private async replace(index: number): Promise<void> {
    const slot = this.spawn(index);
    this.slots[index] = slot;
    slot.busy = []; // not schedulable until its models are back
    try {
      await slot.ready;
      for (const spec of this.specs.values()) await this.call(slot, { type: 'load', reqId: 0, spec });
    } catch {
      // The replacement died too; its own exit handler spawns the next one.
      return;
    }
    slot.busy = undefined;
    this.dispatch();
  }

  private call(slot: Slot, msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    const reqId = this.nextId++;
    return new Promise<FromWorker>((resolve, reject) => {
      if (!slot.alive) {
        reject(new InferenceError(`inference worker ${slot.index} is not running`));
        return;
      }
      slot.calls.set(reqId, { resolve, reject });
      slot.worker.postMessage({ ...msg, reqId }, transfer);
    });
  }

  /** Loads (and warms up) a model in every worker. On any failure the model is unloaded everywhere. */
  async load(spec: LoadSpec): Promise<ModelInfo> {
    const infos = await Promise.allSettled(
      this.slots.map(async (slot) => {
        await slot.ready;
        const reply = await this.call(slot, { type: 'load', reqId: 0, spec });
        if (reply.type !== 'loaded') throw new InferenceError(reply.type === 'failed' ? reply.message : `unexpected reply ${reply.type}`);
        return reply.info;
      }),
    );
    const failed = infos.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.unloadFromWorkers(spec.key);
      throw failed.reason instanceof Error ? failed.reason : new InferenceError(String(failed.reason));
    }
    this.specs.set(spec.key, spec);
    const first = infos[0];
    if (!first || first.status !== 'fulfilled') throw new InferenceError('no worker loaded the model');
    return first.value;
  }

  async unload(key: string): Promise<void> {
    this.specs.delete(key);
    await this.unloadFromWorkers(key);
  }

  private async unloadFromWorkers(key: string): Promise<void> {
    await Promise.allSettled(this.slots.filter((s) => s.alive).map((slot) => this.call(slot, { type: 'unload', reqId: 0, key })));
  }

  /**
   * Queues a job for the model `key`; resolves when a worker has transcribed it. With `transfer`, the
   * audio's buffer is moved into the worker instead of copied (it is detached here; only when the array
   * spans its whole buffer).
   */
  run(key: string, input: JobInput, opts: { transfer?: boolean } = {}): Promise<JobResult> {
    if (this.closed) return Promise.reject(new InferenceError('the inference pool is closed'));
    if (!this.specs.has(key)) return Promise.reject(new InferenceError(`model ${key} is not loaded`));
    const job: TranscribeJob = { ...input, id: this.nextId++ };
    const windowSeconds = this.opts.windowSecondsHint ?? 10;
    const windows = Math.max(1, Math.ceil(input.audio.length / input.sampleRate / windowSeconds));
    return new Promise<JobResult>((resolve, reject) => {
      const a = input.audio;
      const transfer = opts.transfer === true && a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
      this.queue.push({ key, job, windows, transfer, resolve, reject });
      this.dispatch();
    });
  }

  /** Windows the model `key` decodes together: its LoadSpec.maxBatch, else the pool's. */
  maxBatchOf(key: string): number {
    return this.specs.get(key)?.maxBatch ?? this.opts.maxBatch;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.alive || slot.busy) continue;
      const first = this.queue.shift();
      if (!first) return;
      const batch = [first];
      let windows = first.windows;
      const maxBatch = this.maxBatchOf(first.key);
      for (let i = 0; i < this.queue.length && windows < maxBatch; ) {
        const p = this.queue[i];
        if (p && p.key === first.key && windows + p.windows <= maxBatch) {
          batch.push(p);
          windows += p.windows;
          this.queue.splice(i, 1);
        } else i++;
      }
      slot.busy = batch;
      void this.execute(slot, batch);
    }
  }

  /**
   * The watchdog's move: the batch's jobs fail with InferenceTimeoutError at once, a fresh worker
   * replaces this one (models reloaded), and the old one is told to stop between two windows and to
   * end; terminate() only if it has not ended after RECYCLE_GRACE_MS.
   */
  private recycle(slot: Slot, batch: Pending[], ms: number): void {
    if (slot.retired || !slot.alive || this.closed) return;
    slot.retired = true;
    Atomics.store(slot.cancel, 0, 1);
    for (const p of batch) p.reject(new InferenceTimeoutError(`inference took longer than ${ms} ms; the worker was recycled`));
    this.opts.onTimeout?.(slot.index, batch.length);
    const old = slot.worker;
    const kill = setTimeout(() => void old.terminate(), RECYCLE_GRACE_MS);
    kill.unref();
    old.once('exit', () => clearTimeout(kill));
    old.postMessage({ type: 'close', reqId: 0 } satisfies ToWorker);
    if (this.slots[slot.index] === slot) void this.replace(slot.index);
  }

  private async execute(slot: Slot, batch: Pending[]): Promise<void> {
    const key = batch[0]?.key ?? '';
    const jobs = batch.map((p) => p.job);
    const limit = this.opts.jobTimeoutMs;
    const watchdog = limit === undefined ? undefined : setTimeout(() => this.recycle(slot, batch, limit), limit);
    try {
      const transfer = batch.filter((p) => p.transfer).map((p) => p.job.audio.buffer as ArrayBuffer);
      const reply = await this.call(slot, { type: 'run', reqId: 0, key, jobs }, transfer);
      if (reply.type === 'results') {
        const byId = new Map(reply.results.map((r) => [r.id, r]));
        for (const p of batch) {
          const r = byId.get(p.job.id);
          if (r) p.resolve(r);
          else p.reject(new InferenceError('worker returned no result for the job'));
        }
      } else {
        const message = reply.type === 'failed' ? reply.message : `unexpected reply ${reply.type}`;
        for (const p of batch) p.reject(new InferenceError(message));
      }
    } catch (err) {
      for (const p of batch) p.reject(err instanceof Error ? err : new InferenceError(String(err)));
    } finally {
      clearTimeout(watchdog);
    }
    if (slot.busy === batch) slot.busy = undefined;
    this.dispatch();
  }

  /** Fault injection (tests): makes worker `index`'s message handler throw; resolves with its answer. */
  injectFault(index: number): Promise<FromWorker> {
    const slot = this.slots[index];
    if (!slot) return Promise.reject(new InferenceError(`no worker ${index}`));
    return this.call(slot, { type: 'fault', reqId: 0 });
  }

  /**
   * Stops the workers after their current batch; queued jobs are rejected. Each worker releases its
   * sessions and ends by itself (terminating a thread holding ORT sessions can abort the process);
   * terminate() is only the fallback after `timeoutMs`.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new InferenceError('the inference pool is closed'));
    await Promise.all(
      this.slots.map(async (s) => {
        if (!s.alive) return;
        const exited = new Promise<void>((r) => s.worker.once('exit', () => r()));
        s.worker.postMessage({ type: 'close', reqId: 0 } satisfies ToWorker);
        const timer = setTimeout(() => void s.worker.terminate(), timeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Asks one worker to end as if it had failed (tests); the pool replaces it. */
  retireWorker(index: number): void {
    this.slots[index]?.worker.postMessage({ type: 'close', reqId: 0 } satisfies ToWorker);
  }
}
