// A pool of inference worker threads. Every worker holds every loaded model (sessions with explicit
// intra-op thread counts); jobs wait in one FIFO and an idle worker takes the oldest job plus any
// following jobs for the same model, up to `maxBatch` windows, so concurrent streams share encoder and
// decoder runs. A crashed worker fails only its in-flight jobs and is replaced, with its models reloaded.
import { Worker } from 'node:worker_threads';
import type { FromWorker, JobResult, LoadSpec, ModelInfo, ToWorker, TranscribeJob, WorkerInit } from './protocol.js';

export class InferenceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InferenceError';
  }
}

export interface PoolOptions extends WorkerInit {
  workers: number;
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
    const init: WorkerInit = { intraOpThreads: this.opts.intraOpThreads, executionProviders: this.opts.executionProviders, maxBatch: this.opts.maxBatch };
    const worker = new Worker(url, { workerData: init });
    let markReady: () => void = () => undefined;
    let failReady: (e: Error) => void = () => undefined;
    const ready = new Promise<void>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    ready.catch(() => undefined);
    const slot: Slot = { index, worker, ready, busy: undefined, alive: true, calls: new Map() };
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
    worker.on('error', (err) => {
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
      if (this.closed) return;
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

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.alive || slot.busy) continue;
      const first = this.queue.shift();
      if (!first) return;
      const batch = [first];
      let windows = first.windows;
      for (let i = 0; i < this.queue.length && windows < this.opts.maxBatch; ) {
        const p = this.queue[i];
        if (p && p.key === first.key && windows + p.windows <= this.opts.maxBatch) {
          batch.push(p);
          windows += p.windows;
          this.queue.splice(i, 1);
        } else i++;
      }
      slot.busy = batch;
      void this.execute(slot, batch);
    }
  }

  private async execute(slot: Slot, batch: Pending[]): Promise<void> {
    const key = batch[0]?.key ?? '';
    const jobs = batch.map((p) => p.job);
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
    }
    if (slot.busy === batch) slot.busy = undefined;
    this.dispatch();
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
