import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ItemExponentialRateLimiter } from './rate-limiter.js';
import { WorkQueue } from './work-queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('hands out each key once however often it is added', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter());
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('re-queues a key added while in flight only once it is done', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter());
    q.add('a');
    const key = await q.get();
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(0);
    q.done(key ?? '');
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter());
    const got = q.get();
    q.add('x');
    expect(await got).toBe('x');
  });

  it('keeps the earliest of several delayed adds', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter());
    q.addAfter('a', 5000);
    q.addAfter('a', 20);
    q.addAfter('a', 4000);
    expect(q.delayedCount()).toBe(1);
    await sleep(60);
    expect(q.len()).toBe(1);
    expect(q.delayedCount()).toBe(0);
  });

  it('backs off a failing key exponentially and forgets on success', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter(20, 1000));
    q.addRateLimited('a');
    q.addRateLimited('a');
    expect(q.numRequeues('a')).toBe(2);
    await sleep(10);
    expect(q.len()).toBe(0);
    await sleep(40);
    expect(q.len()).toBe(1);
    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
  });

  it('shutDown releases waiting workers and refuses new keys', async () => {
    const q = new WorkQueue(new ItemExponentialRateLimiter());
    const waiting = q.get();
    q.addAfter('later', 10_000);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('a');
    expect(await q.get()).toBeUndefined();
    expect(q.delayedCount()).toBe(0);
  });

  it('never gives one key to two workers, and processes every key added (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 6 }),
      async (adds, workers) => {
        const q = new WorkQueue(new ItemExponentialRateLimiter());
        const active = new Set<string>();
        let overlap = false;
        const lastAdd = new Map<string, number>();
        const lastStart = new Map<string, number>();
        let tick = 0;
        const run = async () => {
          for (;;) {
            const key = await q.get();
            if (key === undefined) return;
            if (active.has(key)) overlap = true;
            active.add(key);
            lastStart.set(key, (tick += 1));
            await sleep(Math.random() * 2);
            active.delete(key);
            q.done(key);
          }
        };
        const pool = Array.from({ length: workers }, run);
        for (const k of adds) {
          lastAdd.set(k, (tick += 1));
          q.add(k);
          if (Math.random() < 0.3) await sleep(1);
        }
        while (q.len() > 0 || q.inFlight() > 0) await sleep(2);
        q.shutDown();
        await Promise.all(pool);
        expect(overlap).toBe(false);
        // Every key was processed after its last add (level-triggered: the last state is always seen).
        for (const [k, t] of lastAdd) expect(lastStart.get(k) ?? 0).toBeGreaterThan(t);
      },
    ), { numRuns: 40 });
  });
});
