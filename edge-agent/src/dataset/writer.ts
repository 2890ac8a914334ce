// The dataset writer: feedback samples (request audio + reference) go to a dataset store in the
// background, bounded, never blocking a feedback response or a transcription.
//
// - `offer` is synchronous: the sample joins a queue capped in bytes, or is dropped and counted
//   (dropped_full; expired when its request is older than the retention).
// - Up to `concurrency` uploads run at once, each WAV put retried with capped, jittered exponential
//   back-off; a sample that still fails is dropped and counted (dropped_error). A sample whose request
//   grew older than the retention while it waited is not written (expired).
// - A WAV that was stored becomes a line of the agent's current manifest batch for its folder. S3 has
//   no append, so each flush writes new manifest objects — every `flushSamples` lines or
//   `flushSeconds` after the first waiting line, and on close — and a manifest lists only samples
//   whose WAV is in the store. A sample counts as `written` once a manifest lists it.
import type { ManifestLine, SampleInfo } from './layout.js';
import { manifestBody, manifestLine, manifestName, sampleFolder } from './layout.js';
import type { SampleStore } from './store.js';

export type SampleResult = 'written' | 'dropped_full' | 'dropped_error' | 'expired';
export type OfferResult = 'queued' | Exclude<SampleResult, 'written'>;

/** Where the writer reports what happens (the agent's metrics; a recorder in tests). */
export interface DatasetEvents {
  samples(result: SampleResult, scenario: string, n: number): void;
  /** Bytes of an object now in the store (a WAV or a manifest). */
  bytesWritten(bytes: number): void;
  /** Samples waiting for or in upload, and their bytes. */
  queue(samples: number, bytes: number): void;
  /** Uploaded samples waiting for the next manifest flush. */
  batch(samples: number): void;
  retry(object: 'audio' | 'manifest'): void;
}

interface WriterLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DatasetWriterOptions {
  /** The agent's id (its pod name): part of every object name, so agents never overwrite each other. */
  agent: string;
  pool: string;
  /** Request audio older than this is never written. */
  retentionSeconds: number;
  /** Bound on the bytes of samples waiting for (or in) upload; beyond it new samples are dropped. */
  maxQueueBytes: number;
  flushSamples: number;
  flushSeconds: number;
  concurrency: number;
  /** Tries per object (the first included). */
  maxAttempts: number;
  /** Back-off before try n+1: min(maxMs, initialMs × 2^(n-1)) × (0.5 + random/2). */
  backoff: { initialMs: number; maxMs: number };
  now?: () => number;
  random?: () => number;
  log?: WriterLog;
}

export const DEFAULT_WRITER_TUNING = { maxAttempts: 5, backoff: { initialMs: 500, maxMs: 30_000 } } as const;

interface Queued {
  info: SampleInfo;
  wav: Uint8Array;
}

interface Batch {
  folder: string;
  scenario: string;
  lines: ManifestLine[];
}

/** Back-off after try `attempt` failed: min(maxMs, initialMs × 2^(attempt-1)) × (0.5 + random/2). */
export function backoffDelayMs(attempt: number, backoff: { initialMs: number; maxMs: number }, random: number): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1)) * (0.5 + random / 2);
}

const quiet: WriterLog = { info: () => undefined, warn: () => undefined };

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export class DatasetWriter {
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private inFlight = 0;
  private readonly batches = new Map<string, Batch>();
  private batched = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private readonly startedAt: number;
  private readonly manifestWrites = new Set<Promise<void>>();
  private readonly uploadsAbort = new AbortController();
  private readonly manifestsAbort = new AbortController();
  private closing = false;
  private full = false;
  private idle: (() => void) | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: WriterLog;

  constructor(
    private readonly store: SampleStore,
    private readonly opts: DatasetWriterOptions,
    private readonly events: DatasetEvents,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? quiet;
    this.startedAt = this.now();
  }

  get uri(): string {
    return this.store.uri;
  }

  get queuedSamples(): number {
    return this.queue.length + this.inFlight;
  }

  get bytesQueued(): number {
    return this.queuedBytes;
  }

  private expired(info: SampleInfo): boolean {
    return this.now() - info.time > this.opts.retentionSeconds * 1000;
  }

  private reportQueue(): void {
    this.events.queue(this.queue.length + this.inFlight, this.queuedBytes);
  }

  /** Drops queued samples whose request is older than the retention (they would not be written). */
  private sweepExpired(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const q = this.queue[i];
      if (q && this.expired(q.info)) {
        this.queue.splice(i, 1);
        this.queuedBytes -= q.wav.byteLength;
        this.events.samples('expired', q.info.scenario, 1);
      }
    }
  }

  /**
   * Takes a sample for the store, at once: 'queued', or why it was dropped (counted). `audio` is the
   * sample's WAV, or why the agent no longer holds it.
   */
  offer(info: SampleInfo, audio: Uint8Array | 'expired' | 'dropped_full'): OfferResult {
    const drop = (result: Exclude<OfferResult, 'queued'>): OfferResult => {
      this.events.samples(result, info.scenario, 1);
      return result;
    };
    if (typeof audio === 'string') return drop(audio);
    if (this.closing) return drop('dropped_error');
    if (this.expired(info)) return drop('expired');
    if (this.queuedBytes + audio.byteLength > this.opts.maxQueueBytes) {
      this.sweepExpired();
      if (this.queuedBytes + audio.byteLength > this.opts.maxQueueBytes) {
        if (!this.full) this.log.warn({ queuedSamples: this.queuedSamples, queuedBytes: this.queuedBytes, maxBytes: this.opts.maxQueueBytes }, 'Dataset queue full; dropping new samples');
        this.full = true;
        this.reportQueue();
        return drop('dropped_full');
      }
    }
    this.queue.push({ info, wav: audio });
    this.queuedBytes += audio.byteLength;
    this.reportQueue();
    this.pump();
    return 'queued';
  }

  private pump(): void {
    while (this.inFlight < this.opts.concurrency && this.queue.length > 0) {
      const q = this.queue.shift();
      if (!q) break;
      this.inFlight++;
      // Whatever happens in an upload (or in the event callbacks), the accounting is settled and the
      // pump goes on: no rejection leaves this chain.
      const settle = (err?: unknown): void => {
        this.inFlight--;
        this.queuedBytes -= q.wav.byteLength;
        if (err !== undefined) this.log.warn({ err: err instanceof Error ? err.message : JSON.stringify(err) }, 'Dataset upload failed unexpectedly');
        try {
          if (this.full && this.queuedBytes < this.opts.maxQueueBytes / 2) {
            this.full = false;
            this.log.info({ queuedBytes: this.queuedBytes }, 'Dataset queue below half full again');
          }
          this.reportQueue();
        } catch (e) {
          this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'Dataset queue report failed');
        }
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0) this.idle?.();
      };
      this.upload(q).then(() => settle(), (err: unknown) => settle(err ?? new Error('rejected')));
    }
  }

  /** Puts with retries; true when stored. `stale` (checked before each try) ends it early. */
  private async putWithRetries(key: string, body: Uint8Array, type: string, object: 'audio' | 'manifest', signal: AbortSignal, stale?: () => boolean): Promise<'stored' | 'stale' | 'failed'> {
    for (let attempt = 1; ; attempt++) {
      if (stale?.()) return 'stale';
      if (signal.aborted) return 'failed';
      try {
        await this.store.put(key, body, type, signal);
        this.events.bytesWritten(body.byteLength);
        return 'stored';
      } catch (err) {
        if (attempt >= this.opts.maxAttempts || signal.aborted) {
          this.log.warn({ key, attempts: attempt, err: (err as Error).message }, `Dropped a dataset ${object === 'audio' ? 'sample' : 'manifest'}: the store did not take it`);
          return 'failed';
        }
        this.events.retry(object);
        await abortableSleep(backoffDelayMs(attempt, this.opts.backoff, this.random()), signal);
      }
    }
  }

  private async upload(q: Queued): Promise<void> {
    const { info } = q;
    const folder = sampleFolder(info);
    const line = manifestLine(info, this.opts.agent, this.opts.pool);
    const r = await this.putWithRetries(folder + line.audio, q.wav, 'audio/wav', 'audio', this.uploadsAbort.signal, () => this.expired(info));
    if (r === 'stale') this.events.samples('expired', info.scenario, 1);
    else if (r === 'failed') this.events.samples('dropped_error', info.scenario, 1);
    else this.addLine(folder, info.scenario, line);
  }

  private addLine(folder: string, scenario: string, line: ManifestLine): void {
    let b = this.batches.get(folder);
    if (!b) {
      b = { folder, scenario, lines: [] };
      this.batches.set(folder, b);
    }
    b.lines.push(line);
    this.batched++;
    this.events.batch(this.batched);
    if (this.batched >= this.opts.flushSamples) this.flush();
    else if (!this.flushTimer && !this.closing) {
      this.flushTimer = setTimeout(() => this.flush(), this.opts.flushSeconds * 1000);
      this.flushTimer.unref();
    }
  }

  /** Writes every waiting batch as a new manifest object now (in the background). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batches = [...this.batches.values()];
    this.batches.clear();
    this.batched = 0;
    this.events.batch(0);
    for (const b of batches) {
      const key = b.folder + manifestName(this.opts.agent, this.startedAt, ++this.seq);
      const p = this.putWithRetries(key, manifestBody(b.lines), 'application/x-ndjson', 'manifest', this.manifestsAbort.signal)
        .then((r) => {
          this.events.samples(r === 'stored' ? 'written' : 'dropped_error', b.scenario, b.lines.length);
        })
        .catch((err: unknown) => {
          this.log.warn({ key, err: err instanceof Error ? err.message : String(err) }, 'Dataset manifest write failed unexpectedly');
        });
      this.manifestWrites.add(p);
      void p.finally(() => this.manifestWrites.delete(p));
    }
  }

  /**
   * Stops taking samples, lets the queue upload for up to `drainMs`, then writes the last manifests
   * within `flushMs`. Whatever is left then is dropped and counted (dropped_error).
   */
  async close(drainMs: number, flushMs: number): Promise<void> {
    this.closing = true;
    if (this.inFlight > 0 || this.queue.length > 0) {
      const drained = new Promise<void>((r) => (this.idle = r));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((r) => (timer = setTimeout(r, drainMs)));
      await Promise.race([drained, timeout]);
      clearTimeout(timer);
      this.idle = undefined;
    }
    const left = this.queue.splice(0);
    for (const q of left) {
      this.queuedBytes -= q.wav.byteLength;
      this.events.samples('dropped_error', q.info.scenario, 1);
    }
    if (left.length > 0 || this.inFlight > 0) this.log.warn({ dropped: left.length, aborted: this.inFlight }, 'Shutting down: dataset samples not uploaded in time');
    if (this.inFlight > 0) {
      // Aborted uploads finish at once (dropped_error); wait for them so their counts are in.
      const drained = new Promise<void>((r) => (this.idle = r));
      this.uploadsAbort.abort(new Error('shutting down'));
      await drained;
    }
    this.reportQueue();
    this.flush();
    if (this.manifestWrites.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((r) => (timer = setTimeout(r, flushMs)));
      const all = Promise.all([...this.manifestWrites]).then(() => undefined);
      await Promise.race([all, timeout]);
      clearTimeout(timer);
      this.manifestsAbort.abort(new Error('shutting down'));
      await all;
    }
    await this.store.close();
  }
}
