// The dataset writer against an in-memory store whose puts can fail or hang on demand: the byte-capped
// queue and its drop counting, retries with back-off, manifests listing only stored WAVs, flushing by
// count, time and on close, and the retention.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { SampleInfo } from './layout.js';
import type { SampleStore } from './store.js';
import { StoreError } from './store.js';
import { backoffDelayMs, DatasetWriter } from './writer.js';
import type { DatasetEvents, DatasetWriterOptions, SampleResult } from './writer.js';

const T0 = Date.parse('2026-11-26T15:19:00.000Z');

class FakeStore implements SampleStore {
  readonly uri = 'mem://datasets/';
  readonly objects = new Map<string, Uint8Array>();
  readonly tries: string[] = [];
  /** Keys whose put fails (how many more times; Infinity: always). */
  readonly failing = new Map<string, number>();
  private gate: { promise: Promise<void>; open: () => void; keys: (key: string) => boolean } | undefined;
  closed = false;

  /** Puts of matching keys wait until release() (or their abort). */
  hold(keys: (key: string) => boolean = () => true): void {
    let open = (): void => undefined;
    const promise = new Promise<void>((r) => (open = r));
    this.gate = { promise, open, keys };
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  async put(key: string, body: Uint8Array, _type: string, signal?: AbortSignal): Promise<void> {
    this.tries.push(key);
    if (this.gate?.keys(key)) {
      const gate = this.gate.promise;
      await new Promise<void>((resolve, reject) => {
        void gate.then(resolve);
        signal?.addEventListener('abort', () => reject(new StoreError(`PUT ${key}: aborted`)), { once: true });
      });
    }
    const left = [...this.failing.entries()].find(([k]) => key.endsWith(k));
    if (left && left[1] > 0) {
      this.failing.set(left[0], left[1] - 1);
      throw new StoreError(`PUT ${key}: InternalError (HTTP 500)`);
    }
    this.objects.set(key, body);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  keys(suffix: string): string[] {
    return [...this.objects.keys()].filter((k) => k.endsWith(suffix)).sort();
  }

  manifestLines(): Record<string, unknown>[] {
    return this.keys('.jsonl').flatMap((k) => new TextDecoder().decode(this.objects.get(k)).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>));
  }
}

class Recorder implements DatasetEvents {
  readonly counts: Record<SampleResult, number> = { written: 0, dropped_full: 0, dropped_error: 0, expired: 0 };
  bytes = 0;
  maxQueueBytes = 0;
  queueNow = { samples: 0, bytes: 0 };
  retries = { audio: 0, manifest: 0 };
  samples(result: SampleResult, _scenario: string, n: number): void {
    this.counts[result] += n;
  }
  bytesWritten(n: number): void {
    this.bytes += n;
  }
  queue(samples: number, bytes: number): void {
    this.queueNow = { samples, bytes };
    this.maxQueueBytes = Math.max(this.maxQueueBytes, bytes);
  }
  batch(): void {}
  retry(object: 'audio' | 'manifest'): void {
    this.retries[object]++;
  }
}

function setup(over: Partial<DatasetWriterOptions> = {}) {
  const store = new FakeStore();
  const events = new Recorder();
  const clock = { now: T0 };
  const writer = new DatasetWriter(store, {
    agent: 'jetsons-agent-abc12', pool: 'jetsons', retentionSeconds: 600, maxQueueBytes: 10_000, flushSamples: 100, flushSeconds: 3600,
    concurrency: 2, maxAttempts: 3, backoff: { initialMs: 1, maxMs: 4 }, now: () => clock.now, random: () => 1, ...over,
  }, events);
  return { store, events, writer, clock };
}

let n = 0;
function info(over: Partial<SampleInfo> = {}): SampleInfo {
  n++;
  return {
    requestId: `req_${String(n).padStart(32, '0')}`, reference: `reference ${n}`, scenario: 'finance', deployment: 'asr', modelVersion: 'tiny-1.0.0',
    role: 'stable', hypothesis: `hypothesis ${n}`, time: T0 - 1000, audioSeconds: 1.5, ...over,
  };
}

const wav = (bytes: number, fill = 1) => new Uint8Array(bytes).fill(fill);
const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('DatasetWriter', () => {
  it('uploads each WAV under <scenario>/<day>/<agent>-<requestId>.wav and lists it in a manifest every flushSamples samples', async () => {
    const { store, events, writer } = setup({ flushSamples: 3, concurrency: 1 });
    const samples = [info(), info(), info(), info({ scenario: 'medical' })];
    for (const s of samples) expect(writer.offer(s, wav(100 + s.requestId.length))).toBe('queued');
    await until(() => events.counts.written === 3);
    // Three samples of finance made one manifest; medical's one waits for the next flush.
    expect(store.keys('.jsonl')).toEqual(['finance/2026-11-26/manifest-jetsons-agent-abc12-20261126T151900Z-000001.jsonl']);
    expect(store.keys('.wav')).toEqual(samples.map((s) => `${s.scenario}/2026-11-26/jetsons-agent-abc12-${s.requestId}.wav`).sort());
    const first = samples[0] ?? info();
    expect(store.manifestLines()[0]).toEqual({
      audio: `jetsons-agent-abc12-${first.requestId}.wav`, text: first.reference, scenario: 'finance', deployment: 'asr', modelVersion: 'tiny-1.0.0',
      role: 'stable', pool: 'jetsons', agent: 'jetsons-agent-abc12', requestId: first.requestId, time: '2026-11-26T15:18:59.000Z', hypothesis: first.hypothesis, audioSeconds: 1.5,
    });
    expect(store.manifestLines().map((l) => l.requestId).sort()).toEqual(samples.slice(0, 3).map((s) => s.requestId).sort());
    await writer.close(1000, 1000);
    expect(store.keys('.jsonl')).toEqual([
      'finance/2026-11-26/manifest-jetsons-agent-abc12-20261126T151900Z-000001.jsonl',
      'medical/2026-11-26/manifest-jetsons-agent-abc12-20261126T151900Z-000002.jsonl',
    ]);
    expect(events.counts).toEqual({ written: 4, dropped_full: 0, dropped_error: 0, expired: 0 });
    expect(events.bytes).toBe([...store.objects.values()].reduce((a, b) => a + b.byteLength, 0));
    expect(store.closed).toBe(true);
  });

  it('bounds the queue in bytes: a full queue drops new samples at once and counts them; offer never waits for the store', async () => {
    const { store, events, writer } = setup({ maxQueueBytes: 3000, concurrency: 1 });
    store.hold(); // the store takes nothing for now
    const t0 = performance.now();
    const results = [1000, 1000, 1000, 1, 500].map((b) => writer.offer(info(), wav(b)));
    expect(performance.now() - t0).toBeLessThan(500); // synchronous: the store has not answered anything yet
    expect(results).toEqual(['queued', 'queued', 'queued', 'dropped_full', 'dropped_full']);
    expect(events.queueNow).toEqual({ samples: 3, bytes: 3000 });
    expect(events.counts.dropped_full).toBe(2);
    store.release();
    await until(() => events.queueNow.samples === 0);
    expect(writer.offer(info(), wav(3000))).toBe('queued'); // room again
    await writer.close(1000, 1000);
    expect(events.counts).toEqual({ written: 4, dropped_full: 2, dropped_error: 0, expired: 0 });
    expect(events.maxQueueBytes).toBe(3000);
  });

  it('retries a failed put with back-off and lists the sample once it is stored', async () => {
    const { store, events, writer } = setup();
    const s = info();
    store.failing.set(`${s.requestId}.wav`, 2);
    expect(writer.offer(s, wav(10))).toBe('queued');
    await writer.close(2000, 1000);
    expect(store.tries.filter((k) => k.endsWith('.wav'))).toHaveLength(3);
    expect(events.retries).toEqual({ audio: 2, manifest: 0 });
    expect(events.counts.written).toBe(1);
    expect(store.manifestLines().map((l) => l.requestId)).toEqual([s.requestId]);
  });

  it('drops a sample the store keeps refusing (dropped_error), and its manifest lists only the samples that were stored', async () => {
    const { store, events, writer } = setup();
    const [a, bad, c] = [info(), info(), info()];
    if (!a || !bad || !c) throw new Error('unreachable');
    store.failing.set(`${bad.requestId}.wav`, Infinity);
    for (const s of [a, bad, c]) writer.offer(s, wav(10));
    await writer.close(2000, 1000);
    expect(store.tries.filter((k) => k.endsWith(`${bad.requestId}.wav`))).toHaveLength(3); // maxAttempts
    expect(events.counts).toEqual({ written: 2, dropped_full: 0, dropped_error: 1, expired: 0 });
    expect(store.manifestLines().map((l) => l.requestId).sort()).toEqual([a.requestId, c.requestId].sort());
    expect(store.keys('.wav')).not.toContain(`finance/2026-11-26/jetsons-agent-abc12-${bad.requestId}.wav`);
  });

  it('counts the samples of a manifest the store keeps refusing as dropped_error', async () => {
    const { store, events, writer } = setup();
    store.failing.set('.jsonl', Infinity);
    writer.offer(info(), wav(10));
    writer.offer(info(), wav(10));
    await writer.close(2000, 1000);
    expect(events.counts).toEqual({ written: 0, dropped_full: 0, dropped_error: 2, expired: 0 });
    expect(events.retries.manifest).toBe(2);
  });

  it('never writes audio older than the retention: not on offer, not after waiting in the queue', async () => {
    const { store, events, writer, clock } = setup({ retentionSeconds: 60, concurrency: 1 });
    expect(writer.offer(info({ time: T0 - 61_000 }), wav(10))).toBe('expired');
    store.hold();
    const waiting = [info({ time: T0 - 30_000 }), info({ time: T0 - 30_000 })];
    for (const s of waiting) expect(writer.offer(s, wav(10))).toBe('queued');
    clock.now = T0 + 31_000; // both are now older than 60 s; the first is already being put
    store.release();
    await writer.close(2000, 1000);
    expect(events.counts).toEqual({ written: 1, dropped_full: 0, dropped_error: 0, expired: 2 });
    expect(store.keys('.wav')).toHaveLength(1);
    // Audio the agent itself no longer held is counted with its reason.
    const other = setup();
    expect(other.writer.offer(info(), 'expired')).toBe('expired');
    expect(other.writer.offer(info(), 'dropped_full')).toBe('dropped_full');
    expect(other.events.counts).toEqual({ written: 0, dropped_full: 1, dropped_error: 0, expired: 1 });
  });

  it('a full queue first makes room by dropping what has expired', () => {
    const { store, events, writer, clock } = setup({ retentionSeconds: 60, maxQueueBytes: 200, concurrency: 1 });
    store.hold();
    writer.offer(info({ time: T0 }), wav(100)); // in flight
    writer.offer(info({ time: T0 }), wav(100)); // waiting
    clock.now = T0 + 61_000;
    expect(writer.offer(info({ time: clock.now }), wav(100))).toBe('queued');
    expect(events.counts.expired).toBe(1);
    store.release();
  });

  it('writes a manifest flushSeconds after its first sample', async () => {
    const { store, events, writer } = setup({ flushSeconds: 1 });
    writer.offer(info(), wav(10));
    await until(() => store.keys('.wav').length === 1);
    expect(store.keys('.jsonl')).toEqual([]);
    const t0 = Date.now();
    await until(() => events.counts.written === 1, 3000);
    expect(Date.now() - t0).toBeGreaterThan(700);
    expect(store.keys('.jsonl')).toHaveLength(1);
    await writer.close(1000, 1000);
  });

  it('on close: uploads what is queued within the drain time, drops the rest (dropped_error), writes the last manifest', async () => {
    const { store, events, writer } = setup({ concurrency: 1 });
    writer.offer(info(), wav(10));
    await until(() => store.keys('.wav').length === 1);
    store.hold((k) => k.endsWith('.wav'));
    writer.offer(info(), wav(10)); // in flight when the drain time ends
    writer.offer(info(), wav(10)); // still queued
    const t0 = Date.now();
    await writer.close(200, 1000);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(events.counts).toEqual({ written: 1, dropped_full: 0, dropped_error: 2, expired: 0 });
    expect(store.manifestLines()).toHaveLength(1);
    expect(writer.offer(info(), wav(10))).toBe('dropped_error');
  });

  it('property: every offered sample is counted exactly once; manifests list exactly the stored WAVs; the queue stays within its bound', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 400 }), failures: fc.integer({ min: 0, max: 4 }), scenario: fc.constantFrom('a', 'b') }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        async (specs, concurrency, flushSamples) => {
          const { store, events, writer } = setup({ maxQueueBytes: 1000, concurrency, flushSamples, maxAttempts: 3 });
          const offered = specs.map((sp) => {
            const s = info({ scenario: sp.scenario });
            if (sp.failures > 0) store.failing.set(`${s.requestId}.wav`, sp.failures);
            return writer.offer(s, wav(sp.bytes));
          });
          await writer.close(5000, 5000);
          const c = events.counts;
          expect(c.written + c.dropped_full + c.dropped_error + c.expired).toBe(specs.length);
          expect(c.dropped_full).toBe(offered.filter((o) => o === 'dropped_full').length);
          expect(events.maxQueueBytes).toBeLessThanOrEqual(1000);
          const listed = store.manifestLines().map((l) => `${String(l.scenario)}/2026-11-26/${String(l.audio)}`).sort();
          expect(listed).toEqual(store.keys('.wav'));
          expect(listed).toHaveLength(c.written);
          expect(events.queueNow).toEqual({ samples: 0, bytes: 0 });
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('DatasetWriter promise chains', () => {
  it('an upload or a manifest write that rejects (here: event callbacks that throw) is settled and logged; the queue goes on and close() resolves', async () => {
    const store = new FakeStore();
    const events = new Recorder();
    const warnings: string[] = [];
    let batchFaults = 1;
    let samplesFaults = 1;
    const faulty: DatasetEvents = {
      samples: (result, scenario, k) => {
        if (result === 'written' && samplesFaults-- > 0) throw new Error('injected in samples()');
        events.samples(result, scenario, k);
      },
      bytesWritten: (k) => events.bytesWritten(k),
      queue: (k, b) => events.queue(k, b),
      batch: (k) => {
        if (k > 0 && batchFaults-- > 0) throw new Error('injected in batch()');
        events.batch();
      },
      retry: (o) => events.retry(o),
    };
    const writer = new DatasetWriter(store, {
      agent: 'a', pool: 'p', retentionSeconds: 600, maxQueueBytes: 10_000, flushSamples: 2, flushSeconds: 3600,
      concurrency: 1, maxAttempts: 3, backoff: { initialMs: 1, maxMs: 4 }, now: () => T0, random: () => 1,
      log: { info: () => undefined, warn: (_o, m) => void warnings.push(m) },
    }, faulty);
    for (let i = 0; i < 5; i++) expect(writer.offer(info(), wav(100))).toBe('queued');
    await until(() => store.keys('.wav').length === 5);
    await writer.close(1000, 1000);
    expect(store.closed).toBe(true);
    expect(warnings).toEqual(expect.arrayContaining(['Dataset upload failed unexpectedly', 'Dataset manifest write failed unexpectedly']));
    expect(events.queueNow).toEqual({ samples: 0, bytes: 0 });
  });
});

describe('backoffDelayMs', () => {
  it.each([
    [1, 1, 500], [2, 1, 1000], [3, 1, 2000], [7, 1, 30_000], [20, 1, 30_000], [1, 0, 250], [3, 0.5, 1500],
  ])('try %i failed, random %f → %i ms', (attempt, random, ms) => {
    expect(backoffDelayMs(attempt, { initialMs: 500, maxMs: 30_000 }, random)).toBe(ms);
  });
});
